/**
 * Orderly start and stop of a process's resources: whoever starts a resource registers how to
 * close it, and shutdown closes them in reverse order, each step bounded, every step attempted
 * even when an earlier one failed (failures are logged, not thrown).
 */

import { StopSignals } from '../runtime/stop-signals.ts';

/** The slice of a logger the lifecycle uses. */
export interface LifecycleLogger {
  info(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

interface Step {
  readonly name: string;
  readonly close: () => Promise<void> | void;
}

/** Lifecycle state. */
export type LifecycleState = 'running' | 'stopping' | 'stopped';

/** Owns the shutdown of one process. */
export class Lifecycle {
  readonly #steps: Step[] = [];
  #state: LifecycleState = 'running';
  #stopped: Promise<boolean> | undefined;

  /** @param logger - where step failures and timings go */
  constructor(private readonly logger: LifecycleLogger) {}

  /** Current state. */
  get state(): LifecycleState {
    return this.#state;
  }

  /** Registers a resource's close function; closed in reverse registration order. */
  add(name: string, close: () => Promise<void> | void): void {
    this.#steps.push({ name, close });
  }

  /**
   * Closes everything in reverse order within `timeoutMs` in total. Idempotent.
   * @returns true when every step finished in time without error
   */
  shutdown(timeoutMs: number, reason = 'shutdown'): Promise<boolean> {
    this.#stopped ??= this.#run(timeoutMs, reason);
    return this.#stopped;
  }

  async #run(timeoutMs: number, reason: string): Promise<boolean> {
    this.#state = 'stopping';
    this.logger.info({ reason, steps: this.#steps.length }, 'shutting down');
    const deadline = Date.now() + timeoutMs;
    let clean = true;
    for (const step of [...this.#steps].reverse()) {
      const left = Math.max(1, deadline - Date.now());
      let timer: NodeJS.Timeout | undefined;
      try {
        await Promise.race([
          Promise.resolve().then(step.close),
          new Promise((_, reject) => {
            timer = setTimeout(() => {
              reject(new Error(`did not finish within the shutdown grace period`));
            }, left);
          }),
        ]);
      } catch (err) {
        clean = false;
        this.logger.error({ step: step.name, err }, 'shutdown step failed');
      } finally {
        clearTimeout(timer);
      }
    }
    this.#state = 'stopped';
    this.logger.info({ clean }, 'stopped');
    return clean;
  }

  /**
   * Shuts down on SIGTERM and SIGINT (only composition roots call this), then exits: 0 after a
   * clean stop, 1 otherwise. A second signal, half a second or more after the first, forces an
   * immediate exit (a copy of the first, as npm forwards one, does not: see StopSignals).
   * @param signals - the process's stop signals so far (a signal held during start-up counts)
   */
  installSignalHandlers(timeoutMs: number, signals = new StopSignals()): void {
    const onSignal = (signal: NodeJS.Signals): void => {
      const meaning = signals.receive();
      if (meaning === 'again') process.exit(130);
      if (meaning === 'copy') return;
      void this.shutdown(timeoutMs, signal).then((clean) => process.exit(clean ? 0 : 1));
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
  }
}
