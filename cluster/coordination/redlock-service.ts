/**
 * {@link LockService} over N independent Redis instances with the Redlock algorithm
 * (redis.io "Distributed Locks with Redis"): a lock is held when a majority of instances granted
 * it and the time spent getting there, plus a clock-drift allowance, is less than the TTL.
 *
 * Implemented here rather than taken from npm: the `redlock` package's last release is a 2022
 * beta with known bugs, and the maintained fork has no per-command timeout (a hung instance
 * stalls an attempt), no re-check for locks that expire on arrival, and a retry count where we
 * need a wait deadline. See README.md.
 */
import { randomBytes } from 'node:crypto';
import { C2Error, C2ErrorCode } from '../errors.ts';
import {
  runLeased,
  type ExtendResult,
  type HeldLock,
  type Releasing,
  type ReleaseResult,
} from './lease.ts';
import {
  acquireTimeoutError,
  jittered,
  LOCK_KEY_PREFIX,
  resolveLockOptions,
  sleep,
  validateLockRequest,
  type Lease,
  type LockService,
  type LockServiceOptions,
  type ResolvedLockOptions,
} from './lock-service.ts';
import {
  ACQUIRE,
  EXTEND,
  RELEASE,
  runScript,
  type LuaScript,
  type RedlockClient,
} from './redlock-scripts.ts';

/** Options of {@link RedlockService}. */
export interface RedlockOptions extends LockServiceOptions {
  /**
   * One client per *independent* Redis instance (not replicas of one another: asynchronous
   * replication can hand a lock to two holders after a failover). An odd count, typically 1, 3
   * or 5; the quorum is `floor(N/2) + 1`. The service borrows the clients and never closes them.
   */
  readonly clients: readonly RedlockClient[];
  /**
   * Share of the TTL assumed lost to clock-rate differences between this process and the Redis
   * instances; the local validity is `TTL - elapsed - (round(TTL * driftFactor) + 2 ms)`.
   * Default 0.01, allowed 0 to 0.5.
   */
  readonly driftFactor?: number;
  /**
   * Longest wait for one instance's answer to one command; a slower instance counts as a "no"
   * vote for that command, so a hung or unreachable instance never stalls the caller. Default
   * 250 ms.
   */
  readonly commandTimeoutMs?: number;
  /** Key namespace, without braces. Default {@link LOCK_KEY_PREFIX} (`e4c2:lock:`). */
  readonly keyPrefix?: string;
}

/** Votes of the instances on one command. */
interface Tally {
  readonly granted: number;
  readonly refused: number;
  readonly failed: readonly number[];
  /** Of `failed`, the instances that did not answer within the command timeout. */
  readonly timedOut: readonly number[];
  readonly error: unknown;
}

/** The vote of an instance that did not answer within the command timeout. */
class CommandTimeout extends Error {}

/**
 * The Redis key of a resource's lock: `<prefix>{<resource>}`. The braces are a Redis Cluster hash
 * tag, so any future key of the same resource (a fencing counter, say) lands in the same slot.
 * `%`, `{` and `}` in the name are percent-escaped so the tag is always the whole name and
 * distinct names never share a key.
 */
export function lockKey(resource: string, prefix: string = LOCK_KEY_PREFIX): string {
  const tag = resource.replace(/[%{}]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
  return `${prefix}{${tag}}`;
}

/**
 * Redlock over 1, 3 or 5 (any odd number of) independent Redis instances.
 *
 * Guarantees, with bounded clock drift and network delay: while a lease is valid by the local
 * monotonic clock, no other caller of the same instances holds a valid lease on the resource.
 * Not guaranteed: that the holder notices in time that its lease ended. The Postgres
 * compare-and-set is the fence (DESIGN R1/R2).
 */
export class RedlockService implements LockService {
  readonly #clients: readonly RedlockClient[];
  readonly #quorum: number;
  readonly #driftFactor: number;
  readonly #commandTimeoutMs: number;
  readonly #keyPrefix: string;
  readonly #o: ResolvedLockOptions;

  /**
   * No I/O happens here; the clients may still be connecting.
   * @throws C2Error `C2_CONFIG` for an empty, even or duplicated client list, or an invalid option
   */
  constructor(options: RedlockOptions) {
    this.#o = resolveLockOptions(options);
    const problems: string[] = [];
    const n = options.clients.length;
    if (n === 0 || n % 2 === 0) {
      // An even N tolerates no more failures than N-1 and needs one more vote: never useful.
      problems.push(`clients must be an odd number of independent instances (got ${n})`);
    }
    if (new Set(options.clients).size !== n) problems.push('clients must be distinct');
    this.#driftFactor = options.driftFactor ?? 0.01;
    if (!(this.#driftFactor >= 0 && this.#driftFactor <= 0.5)) {
      problems.push('driftFactor must be from 0 to 0.5');
    }
    this.#commandTimeoutMs = options.commandTimeoutMs ?? 250;
    if (!(Number.isFinite(this.#commandTimeoutMs) && this.#commandTimeoutMs > 0)) {
      problems.push('commandTimeoutMs must be a positive number');
    }
    this.#keyPrefix = options.keyPrefix ?? LOCK_KEY_PREFIX;
    if (/[{}]/.test(this.#keyPrefix)) problems.push('keyPrefix must not contain braces');
    if (problems.length > 0) {
      throw new C2Error(C2ErrorCode.C2_CONFIG, `invalid Redlock options: ${problems.join('; ')}`);
    }
    this.#clients = [...options.clients];
    this.#quorum = Math.floor(n / 2) + 1;
  }

  /** Votes needed for a grant or an extension: `floor(N/2) + 1`. */
  get quorum(): number {
    return this.#quorum;
  }

  /** See {@link LockService.withLock}. */
  async withLock<T>(
    resource: string,
    ttlMs: number,
    work: (lease: Lease) => Promise<T>,
  ): Promise<T> {
    validateLockRequest(resource, ttlMs);
    const key = lockKey(resource, this.#keyPrefix);
    // One unguessable value per withLock call: extend and release act only on keys holding it.
    const value = randomBytes(16).toString('hex');
    const validUntil = await this.#acquire(resource, key, value, ttlMs);
    const held: HeldLock = {
      extend: (ms) => this.#extend(key, value, ms),
      release: () => this.#release(key, value),
    };
    const { clock, retryDelayMs, emit } = this.#o;
    return runLeased({ resource, ttlMs, validUntil, held, clock, retryDelayMs, emit }, work);
  }

  /** @returns the end of validity on the monotonic clock */
  async #acquire(resource: string, key: string, value: string, ttlMs: number): Promise<number> {
    const { clock, emit, acquireTimeoutMs, retryDelayMs, retryJitterMs } = this.#o;
    const started = clock.now();
    const deadline = started + acquireTimeoutMs;
    let failedAttempts = 0;
    let lastFailed = 0;
    let expiredOnArrival = false;
    // Bounded by the deadline: every attempt and cleanup is bounded by the command timeout.
    for (;;) {
      const attemptStart = clock.now();
      const tally = await this.#vote(ACQUIRE, key, [value, ttlMs], 'granted').early;
      // Validity counts from *this* attempt's start (the bug of redlock 5.0.0-beta.2 was to
      // count from the first attempt's), minus the drift allowance.
      const validUntil = attemptStart + ttlMs - this.#drift(ttlMs);
      const quorum = tally.granted >= this.#quorum;
      if (quorum && validUntil > clock.now()) {
        emit({
          type: 'acquired',
          resource,
          waitMs: Math.round(clock.now() - started),
          failedAttempts,
        });
        return validUntil;
      }
      failedAttempts += 1;
      lastFailed = tally.failed.length;
      // A quorum that arrives after the validity ran out is no lock at all (node-redlock #296).
      expiredOnArrival = quorum;
      emit({
        type: 'attempt-failed',
        resource,
        attempt: failedAttempts,
        granted: tally.granted,
        heldElsewhere: tally.refused,
        failedInstances: tally.failed,
        timedOutInstances: tally.timedOut,
        expiredOnArrival,
      });
      // Remove what we got on a minority, so it does not block others for a whole TTL. Instances
      // that timed out may still apply our SET later; the release follows it on the same
      // connection, so it is cleaned up too. Not needed when every instance plainly refused. Only
      // a quorum's answers are awaited: a hung minority must not slow every retry down.
      if (tally.granted > 0 || tally.failed.length > 0) await this.#release(key, value);
      const left = deadline - clock.now();
      if (left <= 0) break;
      await sleep(Math.min(left, jittered(retryDelayMs, retryJitterMs)));
    }
    const waitMs = Math.round(clock.now() - started);
    emit({ type: 'acquire-timeout', resource, waitMs, failedAttempts });
    const n = this.#clients.length;
    const answered = n - lastFailed;
    const why =
      answered < this.#quorum
        ? `only ${answered} of ${n} lock instances answered (quorum ${this.#quorum})`
        : expiredOnArrival
          ? `lock instances answered too slowly for a ${ttlMs} ms TTL`
          : `still held elsewhere after ${waitMs} ms`;
    throw acquireTimeoutError(resource, why, { waitMs, attempts: failedAttempts, answered });
  }

  async #extend(key: string, value: string, ttlMs: number): Promise<ExtendResult> {
    const start = this.#o.clock.now();
    const tally = await this.#vote(EXTEND, key, [value, ttlMs], 'granted').early;
    if (tally.granted >= this.#quorum) {
      return { outcome: 'extended', validUntil: start + ttlMs - this.#drift(ttlMs) };
    }
    // A majority saying "not yours" is final; errors and timeouts are worth a retry.
    if (tally.refused > this.#clients.length - this.#quorum) return { outcome: 'lost' };
    return { outcome: 'failed', failedInstances: tally.failed };
  }

  /** Resolves once a quorum answered (the lock is free for others); see {@link Releasing}. */
  async #release(key: string, value: string): Promise<Releasing> {
    const vote = this.#vote(RELEASE, key, [value], 'answered');
    await vote.early;
    const settled = vote.all.then((tally): ReleaseResult => ({
      failedInstances: tally.failed,
      error: tally.error,
    }));
    return { settled };
  }

  /** Redis expiry precision (1 ms) plus the clock-rate allowance; same formula as Redlock. */
  #drift(ttlMs: number): number {
    return Math.round(ttlMs * this.#driftFactor) + 2;
  }

  /**
   * Runs `s` on every instance in parallel. Neither promise rejects: an error or timeout is a
   * vote in `failed`. `all` resolves when every instance has answered or timed out. `early`
   * resolves sooner when `until` is met: `granted` once a quorum granted (the validity clock is
   * already running, and a hung minority must not delay the caller), `answered` once a quorum
   * answered at all (for a release: the key is then ours on a minority at most, so others can
   * take the lock); if never met, together with `all`.
   */
  #vote(
    s: LuaScript,
    key: string,
    args: readonly (string | number)[],
    until: 'granted' | 'answered',
  ): { readonly early: Promise<Tally>; readonly all: Promise<Tally> } {
    const n = this.#clients.length;
    let granted = 0;
    let refused = 0;
    let settled = 0;
    let error: unknown;
    const failed: number[] = [];
    const timedOut: number[] = [];
    const tally = (): Tally => ({
      granted,
      refused,
      failed: [...failed].sort((a, b) => a - b),
      timedOut: [...timedOut].sort((a, b) => a - b),
      error,
    });
    let resolveEarly: (t: Tally) => void = () => undefined;
    let resolveAll: (t: Tally) => void = () => undefined;
    const early = new Promise<Tally>((resolve) => {
      resolveEarly = resolve;
    });
    const all = new Promise<Tally>((resolve) => {
      resolveAll = resolve;
    });
    let earlyDone = false;
    const onSettled = (): void => {
      settled += 1;
      const met =
        (until === 'granted' && granted >= this.#quorum) ||
        (until === 'answered' && granted + refused >= this.#quorum);
      if (!earlyDone && (met || settled === n)) {
        earlyDone = true;
        resolveEarly(tally());
      }
      if (settled === n) resolveAll(tally());
    };
    this.#clients.forEach((client, index) => {
      void this.#call(client, s, key, args).then(
        (reply) => {
          if (reply === 1) granted += 1;
          else refused += 1;
          onSettled();
        },
        (err: unknown) => {
          failed.push(index);
          if (err instanceof CommandTimeout) timedOut.push(index);
          error ??= err;
          onSettled();
        },
      );
    });
    return { early, all };
  }

  async #call(
    client: RedlockClient,
    s: LuaScript,
    key: string,
    args: readonly (string | number)[],
  ): Promise<number> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        reject(
          new CommandTimeout(`lock instance did not answer within ${this.#commandTimeoutMs} ms`),
        );
      }, this.#commandTimeoutMs);
    });
    try {
      // The losing command is not cancelled (Redis has no cancel); the race only stops waiting.
      return await Promise.race([runScript(client, s, key, args), timeout]);
    } finally {
      clearTimeout(timer);
    }
  }
}
