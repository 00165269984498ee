/**
 * Active health checks of the load balancer: every backend's `/readyz` (its operations listener,
 * `E4C2_METRICS_ADDR`) is probed on a fixed interval over a fresh connection, with a deadline.
 * `fall` consecutive failures take a backend out, `rise` consecutive successes bring it back; the
 * first answer after start decides at once. A proxy that cannot connect to a backend reports it
 * ({@link HealthChecker.markDown}): the backend is out at once and comes back through the probes.
 *
 * With the defaults (250 ms interval, 500 ms deadline, fall 2) a dead backend (connection
 * refused) is out within about 0.5 s and a hung one within about 1.5 s.
 */
import { request } from 'node:http';

/** Timing of the probes. */
export interface HealthCheckOptions {
  /** Pause between the end of one probe of a backend and the start of the next. */
  readonly intervalMs: number;
  /** Deadline of one probe (connect, answer and body). */
  readonly timeoutMs: number;
  /** Consecutive failures that take a backend out. */
  readonly fall: number;
  /** Consecutive successes that bring it back. */
  readonly rise: number;
}

/** The defaults of {@link HealthCheckOptions}. */
export const DEFAULT_HEALTH_CHECK: HealthCheckOptions = {
  intervalMs: 250,
  timeoutMs: 500,
  fall: 2,
  rise: 2,
};

/** A backend to probe. */
export interface HealthTarget {
  readonly name: string;
  /** `http://host:port/readyz`. */
  readonly url: string;
}

/** `unknown` until the first probe answered; only `up` backends receive connections. */
export type HealthState = 'unknown' | 'up' | 'down';

/** A change of state, for logs. */
export interface HealthChange {
  readonly name: string;
  readonly state: 'up' | 'down';
  /** Why: `ready`, `HTTP 503`, `ECONNREFUSED`, `timeout`, `connect failed: ...`. */
  readonly reason: string;
}

/** Longest body read from a probe: `/readyz` answers a small JSON report. */
const MAX_PROBE_BODY = 64 * 1024;

interface Tracked {
  readonly target: HealthTarget;
  state: HealthState;
  successes: number;
  failures: number;
  reason: string;
  timer: NodeJS.Timeout | undefined;
  probe: AbortController | undefined;
}

/**
 * One probe: resolves with `undefined` when ready, else with the reason. Never rejects.
 * @param signal - abandons the probe (it then resolves with `aborted`)
 */
export function probeReadiness(
  url: string,
  timeoutMs: number,
  signal?: AbortSignal,
): Promise<string | undefined> {
  return new Promise((resolve) => {
    let settled = false;
    const finish = (reason: string | undefined): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      req.destroy();
      resolve(reason);
    };
    const onAbort = (): void => {
      finish('aborted');
    };
    const req = request(url, { method: 'GET', agent: false }, (res) => {
      let size = 0;
      res.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size > MAX_PROBE_BODY) finish('answer too large');
      });
      res.on('end', () => {
        finish(res.statusCode === 200 ? undefined : `HTTP ${res.statusCode ?? '?'}`);
      });
      res.on('error', (err: NodeJS.ErrnoException) => {
        finish(err.code ?? err.message);
      });
    });
    const timer = setTimeout(() => {
      finish('timeout');
    }, timeoutMs);
    req.on('error', (err: NodeJS.ErrnoException) => {
      finish(err.code ?? err.message);
    });
    if (signal?.aborted === true) onAbort();
    else signal?.addEventListener('abort', onAbort, { once: true });
    req.end();
  });
}

/** Probes a set of backends until closed. */
export class HealthChecker {
  readonly #tracked = new Map<string, Tracked>();
  readonly #options: HealthCheckOptions;
  readonly #onChange: (change: HealthChange) => void;
  #closed = false;

  /**
   * @param targets - backends, by unique name
   * @param onChange - called on every change of state
   */
  constructor(
    targets: readonly HealthTarget[],
    options: Partial<HealthCheckOptions> = {},
    onChange: (change: HealthChange) => void = () => undefined,
  ) {
    this.#options = { ...DEFAULT_HEALTH_CHECK, ...options };
    const o = this.#options;
    if (!(o.intervalMs > 0 && o.timeoutMs > 0 && o.fall >= 1 && o.rise >= 1)) {
      throw new RangeError('health checks need a positive interval and timeout, fall and rise ≥ 1');
    }
    this.#onChange = onChange;
    for (const target of targets) {
      if (this.#tracked.has(target.name))
        throw new RangeError(`duplicate backend name ${target.name}`);
      this.#tracked.set(target.name, {
        target,
        state: 'unknown',
        successes: 0,
        failures: 0,
        reason: 'not probed yet',
        timer: undefined,
        probe: undefined,
      });
    }
  }

  /** Runs a first probe of every backend (so the state is known), then keeps probing. */
  async start(): Promise<void> {
    await Promise.all([...this.#tracked.values()].map((t) => this.#probe(t)));
  }

  async #probe(t: Tracked): Promise<void> {
    if (this.#closed) return;
    t.probe = new AbortController();
    const reason = await probeReadiness(t.target.url, this.#options.timeoutMs, t.probe.signal);
    t.probe = undefined;
    if (this.#isClosed()) return;
    this.#record(t, reason);
    t.timer = setTimeout(() => {
      t.timer = undefined;
      void this.#probe(t);
    }, this.#options.intervalMs);
  }

  #record(t: Tracked, failure: string | undefined): void {
    if (failure === undefined) {
      t.failures = 0;
      t.successes += 1;
      if (t.state !== 'up' && (t.state === 'unknown' || t.successes >= this.#options.rise))
        this.#set(t, 'up', 'ready');
    } else {
      t.successes = 0;
      t.failures += 1;
      t.reason = failure;
      if (t.state !== 'down' && (t.state === 'unknown' || t.failures >= this.#options.fall))
        this.#set(t, 'down', failure);
    }
  }

  #set(t: Tracked, state: 'up' | 'down', reason: string): void {
    t.state = state;
    t.reason = reason;
    this.#onChange({ name: t.target.name, state, reason });
  }

  /** Read through a method: `close()` may run while a probe awaits. */
  #isClosed(): boolean {
    return this.#closed;
  }

  /** Passive check: a proxy could not connect. The backend is out until `rise` probes pass. */
  markDown(name: string, reason: string): void {
    const t = this.#tracked.get(name);
    if (t === undefined || this.#closed) return;
    t.successes = 0;
    if (t.state !== 'down') this.#set(t, 'down', reason);
  }

  /** The state of a backend (`unknown` for a name it does not track). */
  state(name: string): HealthState {
    return this.#tracked.get(name)?.state ?? 'unknown';
  }

  /** Every backend with its state and the reason of the last change or failure. */
  snapshot(): Array<{ name: string; state: HealthState; reason: string }> {
    return [...this.#tracked.values()].map((t) => ({
      name: t.target.name,
      state: t.state,
      reason: t.reason,
    }));
  }

  /** Stops probing; idempotent. */
  close(): void {
    this.#closed = true;
    for (const t of this.#tracked.values()) {
      clearTimeout(t.timer);
      t.timer = undefined;
      t.probe?.abort();
    }
  }
}
