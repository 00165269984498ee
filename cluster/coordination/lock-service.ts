/**
 * The lock port the domain uses to serialize work per resource (DESIGN R2), and the types its
 * implementations share.
 *
 * A lock here is an *efficiency* lock: it makes concurrent rotations of one topic queue instead of
 * racing. It is never the safety mechanism. A holder can lose its lease without noticing in time
 * (GC pause, stalled event loop, partition), so every write it protects must still be fenced by the
 * Postgres version compare-and-set (DESIGN R1).
 */
import { C2Error, C2ErrorCode } from '../errors.ts';

/**
 * The caller's view of a held lock, valid only inside the `work` callback of
 * {@link LockService.withLock}.
 */
export interface Lease {
  /** The resource this lease is for (as passed to `withLock`). */
  readonly resource: string;
  /**
   * Aborted when the lease is lost (it expired, could not be extended, or another holder has the
   * lock) and when `withLock` returns. `signal.reason` is the same {@link C2Error} that
   * {@link Lease.assertHeld} throws. Pass it to cancellable I/O; nothing stops the work by itself.
   */
  readonly signal: AbortSignal;
  /**
   * Throws unless the lease is still believed to be held. Call it right before every side effect.
   * A pass is a best-effort statement about *now*, not a guarantee for the next write: the fence
   * is the Postgres compare-and-set.
   *
   * @throws C2Error `C2_CONFLICT` ('lock lease lost on resource "…": …', naming the resource
   *   and why) when the lock store says another holder has the lock or our key is gone;
   *   `C2_UNAVAILABLE` (the same message, saying it expired) when the lease ran out
   *   without a successful extension; `C2_INTERNAL` when called after `withLock` returned.
   */
  assertHeld(): void;
  /** Milliseconds of validity left by the local monotonic clock, 0 once lost or released. */
  remainingMs(): number;
}

/** Serializes work per resource across every process sharing the same lock store. */
export interface LockService {
  /**
   * Acquires the lock on `resource`, runs `work` while keeping the lease alive (it is extended
   * automatically when a third of `ttlMs` is left), then releases it and returns `work`'s result
   * (or rethrows its error). A lease lost during `work` aborts `lease.signal`; `withLock` still
   * returns `work`'s outcome, because only `work` knows whether a side effect happened (and the
   * Postgres compare-and-set has fenced it). Release failures are reported through `onEvent` and
   * never thrown: the key expires by itself.
   *
   * @param resource - what to serialize on, e.g. `topic:<name>`; 1 to {@link MAX_RESOURCE_LENGTH}
   *   characters. It appears in errors, events and lock keys, so it must never hold a secret.
   * @param ttlMs - lease duration in whole milliseconds, {@link MIN_TTL_MS} to
   *   {@link MAX_TTL_MS}; the lock frees itself this long after its holder stops extending it
   * @param work - the critical section; it should check `lease.assertHeld()` before side effects
   * @throws C2Error `C2_UNAVAILABLE` naming the resource when the lock cannot be acquired within
   *   the service's `acquireTimeoutMs` (held elsewhere, or too few lock instances answered);
   *   `C2_VALIDATION` for a malformed resource or TTL; otherwise whatever `work` throws.
   */
  withLock<T>(resource: string, ttlMs: number, work: (lease: Lease) => Promise<T>): Promise<T>;
}

/** Why a lease ended before its work did. */
export type LeaseLossReason =
  /** The validity ran out with no successful extension (store unreachable, or event loop stalled). */
  | 'expired'
  /** The store answered that our lock is gone or belongs to someone else. */
  | 'taken';

/**
 * What the lock services report, for logs and metrics (prom-client is wired later). Contains
 * resource names and counts only, never lock values or secrets. Resource names have unbounded
 * cardinality: use them in logs, not as metric labels.
 */
export type LockEvent =
  | {
      /** The lock was acquired; `waitMs` is the acquire latency. */
      readonly type: 'acquired';
      readonly resource: string;
      readonly waitMs: number;
      /** Failed attempts before success: the contention count (in-process: 1 if it queued). */
      readonly failedAttempts: number;
    }
  | {
      /** Acquisition gave up after `acquireTimeoutMs`; `withLock` throws C2_UNAVAILABLE. */
      readonly type: 'acquire-timeout';
      readonly resource: string;
      readonly waitMs: number;
      readonly failedAttempts: number;
    }
  | {
      /** One Redlock acquisition attempt failed and will be retried if time is left. */
      readonly type: 'attempt-failed';
      readonly resource: string;
      readonly attempt: number;
      /** Instances that granted the lock in this attempt (fewer than the quorum, or too late). */
      readonly granted: number;
      /** Instances that answered that someone else holds the lock. */
      readonly heldElsewhere: number;
      /** Indexes of instances that errored or timed out. */
      readonly failedInstances: readonly number[];
      /**
       * Of `failedInstances`, those that did not answer within the command timeout (hung, or a
       * client that queues commands while disconnected); the others failed at once.
       */
      readonly timedOutInstances: readonly number[];
      /** A quorum granted the lock but its validity had already run out on arrival. */
      readonly expiredOnArrival: boolean;
    }
  | { readonly type: 'extended'; readonly resource: string; readonly remainingMs: number }
  | {
      /** An extension did not reach a quorum; it is retried while the lease is still valid. */
      readonly type: 'extend-failed';
      readonly resource: string;
      readonly failedInstances: readonly number[];
    }
  | {
      readonly type: 'lost';
      readonly resource: string;
      readonly reason: LeaseLossReason;
      readonly heldMs: number;
    }
  | { readonly type: 'released'; readonly resource: string; readonly heldMs: number }
  | {
      /** Release was not confirmed everywhere; swallowed, the keys expire by themselves. */
      readonly type: 'release-failed';
      readonly resource: string;
      readonly heldMs: number;
      readonly failedInstances: readonly number[];
      readonly error: unknown;
    };

/** Receives {@link LockEvent}s. Must not throw (a throw is swallowed) and should be cheap. */
export type LockEventListener = (event: LockEvent) => void;

/**
 * A monotonic millisecond clock. Lease validity is measured on it, never on `Date.now()`, so a
 * wall-clock step (NTP correction, manual change) neither extends nor shortens a lease.
 */
export interface MonotonicClock {
  now(): number;
}

/** The default {@link MonotonicClock}: `performance.now()`. */
export const monotonicClock: MonotonicClock = { now: () => performance.now() };

/** Options every {@link LockService} implementation accepts. */
export interface LockServiceOptions {
  /** Longest wait for a lock before `withLock` throws C2_UNAVAILABLE. Default 5000 ms. */
  readonly acquireTimeoutMs?: number;
  /**
   * Pause between attempts (Redlock acquisition, and a failed extension); a random
   * `0..retryJitterMs` is added so contenders do not retry in lockstep. Default 50 ms.
   */
  readonly retryDelayMs?: number;
  /** Upper bound of the random part of the retry pause. Default 50 ms. */
  readonly retryJitterMs?: number;
  /** Receives events for logs and metrics. */
  readonly onEvent?: LockEventListener;
  /** @internal Tests only: the monotonic clock. */
  readonly clock?: MonotonicClock;
}

/** The lock key prefix; a namespace so a lock can never collide with a data key. */
export const LOCK_KEY_PREFIX = 'e4c2:lock:';
/** Shortest accepted lease, in ms. */
export const MIN_TTL_MS = 10;
/** Longest accepted lease, in ms (one hour; longer work should not hold a lock). */
export const MAX_TTL_MS = 3_600_000;
/** Longest accepted resource name, in characters. */
export const MAX_RESOURCE_LENGTH = 512;

/** {@link LockServiceOptions} with defaults applied and values checked. */
export interface ResolvedLockOptions {
  readonly acquireTimeoutMs: number;
  readonly retryDelayMs: number;
  readonly retryJitterMs: number;
  readonly emit: LockEventListener;
  readonly clock: MonotonicClock;
}

/**
 * Applies defaults and validates the common options.
 * @throws C2Error `C2_CONFIG` naming every invalid option
 * @internal
 */
export function resolveLockOptions(options: LockServiceOptions): ResolvedLockOptions {
  const problems: string[] = [];
  const num = (name: string, value: number | undefined, fallback: number): number => {
    const v = value ?? fallback;
    if (!Number.isFinite(v) || v < 0) problems.push(`${name} must be a finite number >= 0`);
    return v;
  };
  const resolved: ResolvedLockOptions = {
    acquireTimeoutMs: num('acquireTimeoutMs', options.acquireTimeoutMs, 5000),
    retryDelayMs: num('retryDelayMs', options.retryDelayMs, 50),
    retryJitterMs: num('retryJitterMs', options.retryJitterMs, 50),
    emit: safeListener(options.onEvent),
    clock: options.clock ?? monotonicClock,
  };
  if (problems.length > 0) {
    throw new C2Error(C2ErrorCode.C2_CONFIG, `invalid lock options: ${problems.join('; ')}`);
  }
  return resolved;
}

/**
 * Checks the arguments of `withLock`.
 * @throws C2Error `C2_VALIDATION`
 * @internal
 */
export function validateLockRequest(resource: string, ttlMs: number): void {
  if (resource.length === 0 || resource.length > MAX_RESOURCE_LENGTH) {
    throw new C2Error(
      C2ErrorCode.C2_VALIDATION,
      `lock resource must be 1 to ${MAX_RESOURCE_LENGTH} characters`,
      { details: { length: resource.length } },
    );
  }
  if (!Number.isInteger(ttlMs) || ttlMs < MIN_TTL_MS || ttlMs > MAX_TTL_MS) {
    throw new C2Error(
      C2ErrorCode.C2_VALIDATION,
      `lock TTL must be a whole number of ms from ${MIN_TTL_MS} to ${MAX_TTL_MS}`,
      { details: { resource, ttlMs } },
    );
  }
}

/** A pause of `delayMs` plus up to `jitterMs` at random. @internal */
export function jittered(delayMs: number, jitterMs: number): number {
  return delayMs + Math.floor(Math.random() * (jitterMs + 1));
}

/** Resolves after `ms`. @internal */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** The error `withLock` throws when it gives up waiting. @internal */
export function acquireTimeoutError(
  resource: string,
  why: string,
  details: Readonly<Record<string, number>>,
): C2Error {
  return new C2Error(
    C2ErrorCode.C2_UNAVAILABLE,
    `could not acquire the lock on resource "${resource}": ${why}`,
    { details: { resource, ...details } },
  );
}

// A listener bug must never break locking (nor a release, which must not throw).
function safeListener(listener: LockEventListener | undefined): LockEventListener {
  if (listener === undefined) return () => undefined;
  return (event) => {
    try {
      listener(event);
    } catch {
      // swallowed on purpose: observability is best effort
    }
  };
}
