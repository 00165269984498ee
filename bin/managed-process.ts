/**
 * The local cluster's child processes (nodes, Redlock `redis-server`): started in a process group
 * of their own, their output passed on line by line, their exit observed, stopped with SIGTERM
 * then SIGKILL.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

/** The repository root: children run `bin/start.ts` from there. */
const ROOT = fileURLToPath(new URL('..', import.meta.url));

/** One line of a child's output. */
export type ChildOutput = (name: string, stream: 'stdout' | 'stderr', line: string) => void;

/** How a process ended. */
export interface ExitStatus {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

export function describeExit(status: ExitStatus): string {
  return status.signal !== null ? `signal ${status.signal}` : `exit code ${status.code ?? '?'}`;
}

export interface ProcessSpec {
  readonly name: string;
  readonly command: string;
  readonly args: readonly string[];
  readonly env: NodeJS.ProcessEnv;
  /**
   * The directory it runs in. Default: this checkout's root. The upgrade practice runs nodes of
   * another release from that release's checkout (ops/upgrade/).
   */
  readonly cwd?: string;
}

/** One child process, its output prefixed, its exit observed. */
export class ManagedProcess {
  readonly exited: Promise<ExitStatus>;
  #status: ExitStatus | undefined;
  /** Why the process could not be started (ENOENT: the binary is missing). */
  spawnError: string | undefined;
  /** Set when the launcher itself stops or kills the process. */
  expected = false;

  private constructor(
    readonly spec: ProcessSpec,
    readonly child: ChildProcess,
  ) {
    this.exited = new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        this.#status = { code, signal };
        resolve(this.#status);
      });
      child.once('error', (err: NodeJS.ErrnoException) => {
        // spawn failed (binary missing): no 'exit' follows
        this.spawnError = `cannot run ${spec.command}: ${err.code ?? err.message}`;
        this.#status ??= { code: 127, signal: null };
        resolve(this.#status);
      });
    });
  }

  static spawn(spec: ProcessSpec, output: ChildOutput): ManagedProcess {
    const child = spawn(spec.command, [...spec.args], {
      cwd: spec.cwd ?? ROOT,
      env: spec.env,
      stdio: ['ignore', 'pipe', 'pipe'],
      // Its own process group: a Ctrl-C in the terminal reaches the launcher only, which then
      // stops the children in order.
      detached: true,
    });
    for (const stream of ['stdout', 'stderr'] as const) {
      createInterface({ input: child[stream], crlfDelay: Infinity }).on('line', (line) => {
        output(spec.name, stream, line);
      });
    }
    return new ManagedProcess(spec, child);
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  get running(): boolean {
    return this.#status === undefined && this.child.pid !== undefined;
  }

  get status(): ExitStatus | undefined {
    return this.#status;
  }

  /** Sends a signal; false when the process is gone. */
  signal(signal: NodeJS.Signals): boolean {
    if (!this.running) return false;
    try {
      return this.child.kill(signal);
    } catch {
      return false;
    }
  }

  /** SIGTERM, then SIGKILL after `graceMs`; resolves once the process exited. */
  async stop(graceMs: number): Promise<ExitStatus> {
    this.expected = true;
    if (!this.running) return this.exited;
    this.signal('SIGTERM');
    let timer: NodeJS.Timeout | undefined;
    const killed = new Promise<void>((resolve) => {
      timer = setTimeout(() => {
        this.signal('SIGKILL');
        resolve();
      }, graceMs);
    });
    await Promise.race([this.exited, killed]);
    clearTimeout(timer);
    return this.exited;
  }
}

/** Waits until `check` passes, the process exits or `timeoutMs` elapses. */
export async function waitReady(
  proc: ManagedProcess,
  check: () => Promise<boolean>,
  timeoutMs: number,
  signal: AbortSignal | undefined,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (signal?.aborted === true) throw new Error('start-up interrupted');
    if (!proc.running) {
      const status = await proc.exited; // settled: a spawn error is known by then
      if (proc.spawnError !== undefined) throw new Error(`${proc.spec.name}: ${proc.spawnError}`);
      throw new Error(
        `${proc.spec.name} exited during start-up (${describeExit(status)}); see its output above`,
      );
    }
    if (await check()) return;
    if (Date.now() > deadline)
      throw new Error(`${proc.spec.name} was not ready within ${Math.round(timeoutMs / 1000)} s`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
