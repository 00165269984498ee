/**
 * The Redlock instances of a node as an operator sees them. Rotations go on with one of three
 * instances down, so nothing fails while the quorum degrades: without this, the first sign of a
 * lost instance would be the rotations refused when a second one goes. Each instance's
 * connection is followed (ioredis `ready` and `close`), a change is logged with the count left and
 * the quorum, the `c2_lock_instances` / `c2_lock_quorum` gauges are set at scrape time, and
 * `/readyz` reports `redlock` (informational: reads and the other calls still work without it).
 *
 * "Up" is the connection's state, not a fresh ping: an instance that hangs keeps a connection that
 * looks ready until the connection watchdog (`E4C2_REDIS_SILENCE_MS`) resets it.
 */
import type { Logger } from 'pino';
import type { ReadinessCheck } from '../cluster/telemetry/index.ts';

/** What is needed of an ioredis connection. */
export interface InstanceConnection {
  /** ioredis' connection state; `ready` counts as up. */
  readonly status: string;
  on(event: 'ready' | 'close', listener: () => void): unknown;
}

/** One instance: a name for logs (`redlock-2`), its `host:port` (never the URL: it may hold a password). */
export interface LockInstance {
  readonly name: string;
  readonly host: string;
  readonly connection: InstanceConnection;
}

/** Counts, logs and reports the Redlock instances of one node. */
export class RedlockInstances {
  readonly quorum: number;
  readonly #instances: readonly LockInstance[];
  readonly #logger: Logger;
  readonly #wasUp: boolean[];
  /** Set by {@link RedlockInstances.stop}: the node closes the connections itself. */
  #stopped = false;

  /** Starts following the connections; changes are logged from now on. */
  constructor(instances: readonly LockInstance[], logger: Logger) {
    this.#instances = instances;
    this.#logger = logger;
    this.quorum = Math.floor(instances.length / 2) + 1;
    this.#wasUp = instances.map((i) => i.connection.status === 'ready');
    instances.forEach((instance, index) => {
      instance.connection.on('ready', () => {
        this.#changed(index, true);
      });
      // A reconnect loop closes again and again: only the first close after `ready` is news.
      instance.connection.on('close', () => {
        this.#changed(index, false);
      });
    });
  }

  /**
   * Stops logging changes, before the node's shutdown closes the connections: an instance the
   * node leaves is not lost, and a warning (or, by the second one, an error) at every orderly
   * stop would page for nothing in each rolling upgrade.
   */
  stop(): void {
    this.#stopped = true;
  }

  /** Instances whose connection is ready now. */
  up(): number {
    return this.#instances.filter((i) => i.connection.status === 'ready').length;
  }

  /** `name (host:port)` of each instance whose connection is not ready, for logs. */
  down(): string[] {
    return this.#instances
      .filter((i) => i.connection.status !== 'ready')
      .map((i) => `${i.name} (${i.host})`);
  }

  /** Total number of instances. */
  get total(): number {
    return this.#instances.length;
  }

  /** `/readyz` entry `redlock`: false while fewer than a quorum are up; never makes the node unready. */
  readiness(): ReadinessCheck {
    return {
      name: 'redlock',
      ok: () => Promise.resolve(this.up() >= this.quorum),
      required: false,
    };
  }

  #changed(index: number, up: boolean): void {
    const instance = this.#instances[index];
    if (this.#stopped || instance === undefined || this.#wasUp[index] === up) return;
    this.#wasUp[index] = up;
    const answering = this.up();
    const fields = {
      redis: instance.name,
      host: instance.host,
      up: answering,
      total: this.total,
      quorum: this.quorum,
    };
    if (up) {
      this.#logger.info(fields, 'Redlock instance connected');
    } else if (answering >= this.quorum) {
      this.#logger.warn(
        fields,
        'Redlock instance lost; rotations go on with the quorum left, one fewer failure tolerated',
      );
    } else {
      this.#logger.error(
        fields,
        'Redlock instance lost; too few left for the quorum: rotations fail with UNAVAILABLE until one is back',
      );
    }
  }
}
