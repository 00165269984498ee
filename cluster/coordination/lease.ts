/**
 * The lease lifecycle both lock services share: automatic extension, loss detection, the abort
 * signal, and a release that never throws. Keeping it in one place is what makes the Redlock and
 * in-process services behave the same way behind `LockService`.
 */
import { C2Error, C2ErrorCode } from '../errors.ts';
import type { Lease, LeaseLossReason, LockEventListener, MonotonicClock } from './lock-service.ts';

/** Outcome of one extension of a held lock. @internal */
export type ExtendResult =
  /** Extended; `validUntil` is on the service's monotonic clock. */
  | { readonly outcome: 'extended'; readonly validUntil: number }
  /** The store says the lock is no longer ours: no retry can help. */
  | { readonly outcome: 'lost' }
  /** No quorum (errors or timeouts): worth retrying while the lease is still valid. */
  | { readonly outcome: 'failed'; readonly failedInstances: readonly number[] };

/** Outcome of a release. @internal */
export interface ReleaseResult {
  /** Indexes of instances that errored or timed out (empty: clean release). */
  readonly failedInstances: readonly number[];
  /** The first failure, for the `release-failed` event. */
  readonly error: unknown;
}

/** A release under way. @internal */
export interface Releasing {
  /**
   * Resolves when every instance has answered or timed out, with the failures for the
   * `released` / `release-failed` event. Must not reject.
   */
  readonly settled: Promise<ReleaseResult>;
}

/** What a lock store offers for one acquired lock. Implementations must not reject. @internal */
export interface HeldLock {
  extend(ttlMs: number): Promise<ExtendResult>;
  /**
   * Releases the lock. Resolves as soon as another caller can take it (with Redlock: a quorum
   * no longer holds our key), not when the last instance has answered: a hung or unreachable
   * minority must not add its command timeout to every locked operation.
   */
  release(): Promise<Releasing>;
}

/** Everything {@link runLeased} needs. @internal */
export interface LeaseParams {
  readonly resource: string;
  readonly ttlMs: number;
  /** End of validity on `clock`, as computed at acquisition. */
  readonly validUntil: number;
  readonly held: HeldLock;
  readonly clock: MonotonicClock;
  readonly retryDelayMs: number;
  readonly emit: LockEventListener;
}

/** Why a lease was lost, in the words of the error message. */
const LOSS_EXPLANATION: Readonly<Record<LeaseLossReason, string>> = {
  expired:
    'it expired before an extension was confirmed (lock instances unreachable or slow, or this process stalled)',
  taken: 'the lock store reports it held by another caller or gone',
};

/**
 * Extend when this fraction of the TTL is left: early enough that one failed extension can be
 * retried before expiry, late enough not to hammer the store.
 */
const EXTEND_AT_REMAINING = 1 / 3;

/**
 * Runs `work` under an already acquired lock, then releases it (errors reported, never thrown).
 * Implements the lease semantics documented on `LockService.withLock`.
 * @internal
 */
export async function runLeased<T>(
  params: LeaseParams,
  work: (lease: Lease) => Promise<T>,
): Promise<T> {
  const lease = new ActiveLease(params);
  try {
    return await work(lease);
  } finally {
    lease.finish();
    // Awaited until the lock is free for others, so the next holder is not made to wait for our
    // TTL when the store is healthy; bounded because every store call is (command timeout), and
    // it never throws. The instances still out are reported when they answer or time out.
    const { settled } = await params.held.release();
    const heldMs = lease.heldMs();
    void settled.then(({ failedInstances, error }) => {
      if (failedInstances.length === 0) {
        params.emit({ type: 'released', resource: params.resource, heldMs });
      } else {
        params.emit({
          type: 'release-failed',
          resource: params.resource,
          heldMs,
          failedInstances,
          error,
        });
      }
    });
  }
}

/** One lease: timers for extension and expiry, and the abort signal. */
class ActiveLease implements Lease {
  readonly resource: string;
  readonly #p: LeaseParams;
  readonly #controller = new AbortController();
  readonly #acquiredAt: number;
  #validUntil: number;
  #extendTimer: NodeJS.Timeout | undefined;
  #expiryTimer: NodeJS.Timeout | undefined;
  #error: C2Error | undefined;

  constructor(params: LeaseParams) {
    this.#p = params;
    this.resource = params.resource;
    this.#acquiredAt = params.clock.now();
    this.#validUntil = params.validUntil;
    this.#arm(this.#extendDelay());
  }

  get signal(): AbortSignal {
    return this.#controller.signal;
  }

  assertHeld(): void {
    // Timers can fire late (a stalled event loop is exactly the case that matters), so check the
    // clock here too instead of trusting that the expiry timer has already run.
    this.#checkExpiry();
    if (this.#error !== undefined) throw this.#error;
  }

  remainingMs(): number {
    if (this.#controller.signal.aborted) return 0;
    return Math.max(0, Math.floor(this.#validUntil - this.#p.clock.now()));
  }

  heldMs(): number {
    return Math.round(this.#p.clock.now() - this.#acquiredAt);
  }

  /** Ends the lease when `work` has settled: no more extensions, and the signal aborts. */
  finish(): void {
    this.#clearTimers();
    if (this.#controller.signal.aborted) return;
    this.#error = new C2Error(C2ErrorCode.C2_INTERNAL, 'lock lease used after withLock returned', {
      details: { resource: this.resource },
    });
    this.#controller.abort(this.#error);
  }

  #extendDelay(): number {
    const extendAt = this.#validUntil - this.#p.ttlMs * EXTEND_AT_REMAINING;
    return Math.max(0, extendAt - this.#p.clock.now());
  }

  #arm(extendInMs: number): void {
    this.#clearTimers();
    this.#extendTimer = setTimeout(() => void this.#extend(), extendInMs);
    // Aborts the signal on time even while an extension call is still out.
    const expiresIn = Math.max(0, this.#validUntil - this.#p.clock.now());
    this.#expiryTimer = setTimeout(() => this.#checkExpiry(), Math.ceil(expiresIn) + 1);
  }

  #clearTimers(): void {
    clearTimeout(this.#extendTimer);
    clearTimeout(this.#expiryTimer);
  }

  /** True when the lease is over (now or before). */
  #checkExpiry(): boolean {
    if (this.#controller.signal.aborted) return true;
    if (this.#p.clock.now() < this.#validUntil) return false;
    this.#lose('expired');
    return true;
  }

  async #extend(): Promise<void> {
    // Never extend a lease that has already lapsed: someone else may hold the lock by now, and
    // silently carrying on would hide the gap from the work.
    if (this.#checkExpiry()) return;
    let result: ExtendResult;
    try {
      result = await this.#p.held.extend(this.#p.ttlMs);
    } catch {
      // Stores report failures as results; this only guards against a bug turning into an
      // unhandled rejection from a timer callback. The retry below still runs.
      result = { outcome: 'failed', failedInstances: [] };
    }
    if (this.#controller.signal.aborted) return; // finished or lost meanwhile
    switch (result.outcome) {
      case 'extended':
        if (result.validUntil <= this.#p.clock.now()) {
          this.#lose('expired');
          return;
        }
        this.#validUntil = result.validUntil;
        this.#p.emit({
          type: 'extended',
          resource: this.resource,
          remainingMs: this.remainingMs(),
        });
        this.#arm(this.#extendDelay());
        return;
      case 'lost':
        this.#lose('taken');
        return;
      case 'failed': {
        this.#p.emit({
          type: 'extend-failed',
          resource: this.resource,
          failedInstances: result.failedInstances,
        });
        if (this.#checkExpiry()) return;
        // Retry while still valid; the expiry timer aborts the signal if no retry succeeds.
        const left = this.#validUntil - this.#p.clock.now();
        this.#arm(Math.min(this.#p.retryDelayMs, Math.max(0, left)));
        return;
      }
    }
  }

  #lose(reason: LeaseLossReason): void {
    if (this.#controller.signal.aborted) return;
    this.#clearTimers();
    const code = reason === 'taken' ? C2ErrorCode.C2_CONFLICT : C2ErrorCode.C2_UNAVAILABLE;
    // The message reaches API callers (a rotation refused with it): say which lock and why.
    this.#error = new C2Error(
      code,
      `lock lease lost on resource "${this.resource}": ${LOSS_EXPLANATION[reason]}`,
      { details: { resource: this.resource, reason } },
    );
    this.#controller.abort(this.#error);
    this.#p.emit({ type: 'lost', resource: this.resource, reason, heldMs: this.heldMs() });
  }
}
