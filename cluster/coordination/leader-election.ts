/**
 * Leader election for cluster-wide singletons (the automation scheduler): a heartbeat lease in
 * Redis picks one leader, and an epoch in Postgres fences it. A node that wins the lease claims a
 * new epoch; every write the leader makes checks, in its own transaction, that the epoch is still
 * current, so a deposed leader (paused process, partition, lost Redis key) can no longer change
 * anything once a successor has claimed.
 *
 * Failover bound: the lease expires at most `ttlMs` after the dead leader's last renewal; followers
 * try every `ttlMs / 3`; so another node leads at most `ttlMs + ttlMs / 3` after the leader died
 * (plus a Redis and a Postgres round trip). A leader that steps down cleanly releases the lease,
 * and a follower takes over within `ttlMs / 3`.
 */
import { randomBytes } from 'node:crypto';
import { monotonicClock, type MonotonicClock } from './lock-service.ts';
import { ACQUIRE, EXTEND, RELEASE, runScript, type RedlockClient } from './redlock-scripts.ts';

/** The lease half of an election: who may lead right now. Implementations must not reject. */
export interface LeaderLease {
  /** Takes the lease if free (or already ours). @returns whether it is ours now */
  tryAcquire(ttlMs: number): Promise<boolean>;
  /** Extends the lease if still ours. @returns whether it is still ours */
  renew(ttlMs: number): Promise<boolean>;
  /** Gives it up if ours. */
  release(): Promise<void>;
}

/** The fence half: epochs in the database of record. */
export interface EpochStore {
  /** Claims a new epoch for `nodeId` (waits for the previous leader's fenced transactions). */
  claimEpoch(nodeId: string): Promise<string>;
  /** Records a heartbeat. @returns false when the epoch is no longer current */
  heartbeat(epoch: string): Promise<boolean>;
}

/** A lease on one Redis key (compare-and-set scripts: only the holder extends or deletes it). */
export class RedisLeaderLease implements LeaderLease {
  readonly #value = randomBytes(16).toString('hex');

  /**
   * @param redis - an ioredis client (a dedicated connection is best: a blocked one delays renewals)
   * @param key - the lease key, with the deployment's prefix (e.g. `e4c2:automation:leader`)
   */
  constructor(
    private readonly redis: RedlockClient,
    readonly key: string,
  ) {}

  async tryAcquire(ttlMs: number): Promise<boolean> {
    return (await this.#run(ACQUIRE, [this.#value, ttlMs])) === 1;
  }

  async renew(ttlMs: number): Promise<boolean> {
    return (await this.#run(EXTEND, [this.#value, ttlMs])) === 1;
  }

  async release(): Promise<void> {
    await this.#run(RELEASE, [this.#value]);
  }

  async #run(script: typeof ACQUIRE, args: (string | number)[]): Promise<number> {
    try {
      return await runScript(this.redis, script, this.key, args);
    } catch {
      return 0; // Redis unreachable: treat as "not ours"; the local validity window decides
    }
  }
}

/** A lease that is always granted: single-node mode, where this process is the only candidate. */
export class InProcessLeaderLease implements LeaderLease {
  tryAcquire(): Promise<boolean> {
    return Promise.resolve(true);
  }
  renew(): Promise<boolean> {
    return Promise.resolve(true);
  }
  release(): Promise<void> {
    return Promise.resolve();
  }
}

/** The leadership this node holds. */
export interface Leadership {
  readonly epoch: string;
  readonly nodeId: string;
}

/** Options of {@link LeaderElection}. */
export interface LeaderElectionOptions {
  readonly lease: LeaderLease;
  readonly epochs: EpochStore;
  /** This node's id (logs, the leader record). */
  readonly nodeId: string;
  /** Lease time to live. Default 10 000 ms. */
  readonly ttlMs?: number;
  /** Monotonic clock (tests inject one). */
  readonly clock?: MonotonicClock;
  /** Told on every change (leader with an epoch, or not leader). */
  readonly onChange?: (leadership: Leadership | undefined) => void;
  /** Told about unexpected failures (Postgres errors while claiming). */
  readonly onError?: (err: unknown) => void;
}

/** Default lease time to live. */
export const DEFAULT_LEADER_TTL_MS = 10_000;

/** The failover bound documented in docs/automation.md, for a lease TTL and a scheduler tick. */
export function failoverBoundMs(ttlMs: number, tickMs: number): number {
  return ttlMs + Math.ceil(ttlMs / 3) + tickMs;
}

/**
 * Runs the election loop: followers try to take the lease every `ttl/3`; the leader renews it as
 * often, and steps down when a renewal fails, when its local validity window (acquisition time
 * plus TTL minus a drift margin) passes, or when Postgres says another node claimed a newer epoch.
 */
export class LeaderElection {
  readonly #o: Required<Omit<LeaderElectionOptions, 'onChange' | 'onError'>> &
    Pick<LeaderElectionOptions, 'onChange' | 'onError'>;
  #leadership: Leadership | undefined;
  #validUntil = 0;
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<void> | undefined;
  #stopped = false;

  constructor(options: LeaderElectionOptions) {
    this.#o = {
      ttlMs: DEFAULT_LEADER_TTL_MS,
      clock: monotonicClock,
      ...options,
    };
  }

  /** The lease TTL in force. */
  get ttlMs(): number {
    return this.#o.ttlMs;
  }

  /** The leadership, only while this node holds a valid lease; undefined otherwise. */
  current(): Leadership | undefined {
    if (this.#leadership === undefined) return undefined;
    if (this.#o.clock.now() >= this.#validUntil) return undefined;
    return this.#leadership;
  }

  /** Starts campaigning (first attempt at once). */
  start(): void {
    this.#stopped = false;
    this.#schedule(0);
  }

  /** One election step (tests call it directly instead of {@link start}). */
  async step(): Promise<Leadership | undefined> {
    const { lease, epochs, ttlMs, clock } = this.#o;
    const drift = Math.ceil(ttlMs * 0.01) + 2;
    const t0 = clock.now();
    if (this.#leadership !== undefined && t0 < this.#validUntil) {
      if ((await lease.renew(ttlMs)) && (await this.#heartbeat(this.#leadership.epoch))) {
        this.#validUntil = t0 + ttlMs - drift;
        return this.#leadership;
      }
      this.#stepDown();
      await lease.release();
      return undefined;
    }
    if (this.#leadership !== undefined) this.#stepDown();
    if (!(await lease.tryAcquire(ttlMs))) return undefined;
    try {
      const epoch = await epochs.claimEpoch(this.#o.nodeId);
      this.#validUntil = t0 + ttlMs - drift;
      this.#leadership = { epoch, nodeId: this.#o.nodeId };
      this.#o.onChange?.(this.#leadership);
      return this.#leadership;
    } catch (err) {
      this.#o.onError?.(err);
      await lease.release();
      return undefined;
    }
  }

  /** Stops campaigning and releases the lease if held (a successor then takes over quickly). */
  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    await this.#running;
    if (this.#leadership !== undefined) {
      this.#stepDown();
      await this.#o.lease.release();
    }
  }

  async #heartbeat(epoch: string): Promise<boolean> {
    try {
      return await this.#o.epochs.heartbeat(epoch);
    } catch (err) {
      // Postgres unreachable: keep the lease (writes are fenced anyway) and try again next step.
      this.#o.onError?.(err);
      return true;
    }
  }

  #stepDown(): void {
    this.#leadership = undefined;
    this.#validUntil = 0;
    this.#o.onChange?.(undefined);
  }

  #schedule(delayMs: number): void {
    if (this.#stopped) return;
    this.#timer = setTimeout(() => {
      this.#running = this.step()
        .catch((err: unknown) => {
          this.#o.onError?.(err);
          return undefined;
        })
        .then(() => {
          this.#running = undefined;
          this.#schedule(Math.max(50, Math.floor(this.#o.ttlMs / 3)));
        });
    }, delayMs);
    this.#timer.unref();
  }
}
