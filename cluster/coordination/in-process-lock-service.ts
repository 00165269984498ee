/**
 * {@link LockService} for single-node mode (DESIGN §8): a per-resource FIFO mutex in this process,
 * with the same TTL, extension and loss semantics as {@link RedlockService}, so domain code and
 * its tests cannot tell the difference.
 */
import { runLeased, type ExtendResult, type HeldLock, type ReleaseResult } from './lease.ts';
import {
  acquireTimeoutError,
  resolveLockOptions,
  validateLockRequest,
  type Lease,
  type LockService,
  type LockServiceOptions,
  type ResolvedLockOptions,
} from './lock-service.ts';

interface Holder {
  readonly token: number;
  validUntil: number;
}

interface Waiter {
  readonly token: number;
  readonly ttlMs: number;
  readonly grant: (validUntil: number) => void;
  readonly timer: NodeJS.Timeout;
}

/** One resource's state; removed from the map when it has neither holder nor waiters. */
interface Slot {
  holder: Holder | undefined;
  readonly waiters: Waiter[];
  expiry: NodeJS.Timeout | undefined;
}

const NO_FAILURES: ReleaseResult = { failedInstances: [], error: undefined };

/**
 * A per-resource FIFO mutex whose grants are leases: a holder that lets its lease run out without
 * extending it (for example because the event loop stalled past the TTL) loses the lock, and the
 * next waiter gets it, exactly as a Redis key would expire. Only mutual exclusion *within this
 * process* is provided; use {@link RedlockService} when several C2 processes share one database.
 */
export class InProcessLockService implements LockService {
  readonly #o: ResolvedLockOptions;
  readonly #slots = new Map<string, Slot>();
  #nextToken = 0;

  /**
   * @param options - `retryDelayMs` paces retries of a failed extension (cannot happen here, kept
   *   for symmetry); `retryJitterMs` is unused
   * @throws C2Error `C2_CONFIG` for an invalid option
   */
  constructor(options: LockServiceOptions = {}) {
    this.#o = resolveLockOptions(options);
  }

  /** See {@link LockService.withLock}. `failedAttempts` in events is 1 when the call queued. */
  async withLock<T>(
    resource: string,
    ttlMs: number,
    work: (lease: Lease) => Promise<T>,
  ): Promise<T> {
    validateLockRequest(resource, ttlMs);
    const { clock, emit, retryDelayMs } = this.#o;
    const started = clock.now();
    const token = ++this.#nextToken;
    // Expire a lapsed holder *before* taking the slot: the hand-over may drop an idle slot from
    // the map, and granting on a dropped slot would let the next caller in beside us.
    const existing = this.#slots.get(resource);
    if (existing !== undefined) this.#expireHolder(resource, existing);
    const slot = this.#slot(resource);
    let validUntil: number;
    let queued = false;
    if (slot.holder === undefined && slot.waiters.length === 0) {
      validUntil = this.#grant(resource, slot, token, ttlMs);
    } else {
      queued = true;
      validUntil = await this.#enqueue(resource, slot, token, ttlMs);
    }
    emit({
      type: 'acquired',
      resource,
      waitMs: Math.round(clock.now() - started),
      failedAttempts: queued ? 1 : 0,
    });
    const held: HeldLock = {
      extend: (ms) => Promise.resolve(this.#extend(resource, token, ms)),
      release: () => {
        this.#release(resource, token);
        return Promise.resolve({ settled: Promise.resolve(NO_FAILURES) });
      },
    };
    return runLeased({ resource, ttlMs, validUntil, held, clock, retryDelayMs, emit }, work);
  }

  #slot(resource: string): Slot {
    let slot = this.#slots.get(resource);
    if (slot === undefined) {
      slot = { holder: undefined, waiters: [], expiry: undefined };
      this.#slots.set(resource, slot);
    }
    return slot;
  }

  #grant(resource: string, slot: Slot, token: number, ttlMs: number): number {
    const validUntil = this.#o.clock.now() + ttlMs;
    slot.holder = { token, validUntil };
    this.#armExpiry(resource, slot);
    return validUntil;
  }

  #enqueue(resource: string, slot: Slot, token: number, ttlMs: number): Promise<number> {
    const { clock, emit, acquireTimeoutMs } = this.#o;
    const started = clock.now();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        const index = slot.waiters.findIndex((w) => w.token === token);
        if (index >= 0) slot.waiters.splice(index, 1);
        this.#dropIfIdle(resource, slot);
        const waitMs = Math.round(clock.now() - started);
        emit({ type: 'acquire-timeout', resource, waitMs, failedAttempts: 1 });
        reject(acquireTimeoutError(resource, `still held after ${waitMs} ms`, { waitMs }));
      }, acquireTimeoutMs);
      slot.waiters.push({ token, ttlMs, grant: resolve, timer });
    });
  }

  /** Passes the lock to the first waiter, or forgets the slot. */
  #handOver(resource: string, slot: Slot): void {
    slot.holder = undefined;
    clearTimeout(slot.expiry);
    slot.expiry = undefined;
    const next = slot.waiters.shift();
    if (next === undefined) {
      this.#dropIfIdle(resource, slot);
      return;
    }
    clearTimeout(next.timer);
    next.grant(this.#grant(resource, slot, next.token, next.ttlMs));
  }

  /** Frees the lock when its holder's lease has run out, as a Redis key would expire. */
  #expireHolder(resource: string, slot: Slot): void {
    if (slot.holder !== undefined && this.#o.clock.now() >= slot.holder.validUntil) {
      this.#handOver(resource, slot);
    }
  }

  #armExpiry(resource: string, slot: Slot): void {
    clearTimeout(slot.expiry);
    const holder = slot.holder;
    if (holder === undefined) return;
    const delay = Math.ceil(Math.max(0, holder.validUntil - this.#o.clock.now())) + 1;
    slot.expiry = setTimeout(() => {
      this.#expireHolder(resource, slot);
      // Fired early by rounding, or extended meanwhile: look again later.
      if (slot.holder === holder) this.#armExpiry(resource, slot);
    }, delay);
  }

  #extend(resource: string, token: number, ttlMs: number): ExtendResult {
    const slot = this.#slots.get(resource);
    const now = this.#o.clock.now();
    if (slot?.holder?.token !== token || now >= slot.holder.validUntil) return { outcome: 'lost' };
    slot.holder.validUntil = now + ttlMs;
    this.#armExpiry(resource, slot);
    return { outcome: 'extended', validUntil: slot.holder.validUntil };
  }

  #release(resource: string, token: number): void {
    const slot = this.#slots.get(resource);
    // Release by token only: a lease that expired may already have passed to someone else.
    if (slot?.holder?.token === token) this.#handOver(resource, slot);
  }

  #dropIfIdle(resource: string, slot: Slot): void {
    if (
      slot.holder === undefined &&
      slot.waiters.length === 0 &&
      this.#slots.get(resource) === slot
    ) {
      clearTimeout(slot.expiry);
      this.#slots.delete(resource);
    }
  }
}
