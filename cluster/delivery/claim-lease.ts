/**
 * A process's own view of how long its device claims last (DESIGN R5), on its monotonic clock.
 *
 * A claim is a row lease in PostgreSQL: it ends at the database's `now()` + TTL, and renewals
 * move that end while the batch works. A process that stops renewing in time — paused (a long GC
 * pause, a stopped VM) or cut off from PostgreSQL — loses its claims without being told, and
 * another node may then send the same devices a newer key. If the first process then published
 * what it had planned before, the device would get the older key after the newer one, and a
 * stock E4 device applies whatever it gets: it cannot check a fence. So a process publishes only
 * while its own clock says the claims still hold.
 *
 * The lease is measured from the moment just before each claim or renewal statement was sent, so
 * it always ends before the database's (the statement runs after that moment), less a margin for
 * the two clocks' rates. Once it has lapsed it stays lapsed: a renewal that succeeds later does
 * not say whether another node took some of the devices in between.
 *
 * This narrows the window to the time between the check and the socket write; closing it would
 * need a fence the device checks, which stock E4 devices do not have.
 */

/** The share of the TTL kept as a margin, at most {@link MAX_MARGIN_MS}. */
const MARGIN_SHARE = 0.1;
const MAX_MARGIN_MS = 1000;

/** A batch's claims, as this process may rely on them. */
export class ClaimLease {
  readonly #ttlMs: number;
  readonly #marginMs: number;
  readonly #now: () => number;
  #validUntil: number;
  #lapsed = false;

  /**
   * Starts the lease: call just before the claim statement is sent.
   * @param now - a monotonic clock in ms (`performance.now` by default; tests inject one)
   */
  constructor(ttlMs: number, now: () => number = () => performance.now()) {
    this.#ttlMs = ttlMs;
    this.#marginMs = Math.min(MAX_MARGIN_MS, ttlMs * MARGIN_SHARE);
    this.#now = now;
    this.#validUntil = now() + ttlMs;
  }

  /** The clock the lease runs on: read it just before sending a renewal. */
  now(): number {
    return this.#now();
  }

  /**
   * A renewal sent at `sentAt` succeeded. It extends the lease only if the lease still held when
   * the renewal came back; otherwise the lease has lapsed for good.
   */
  renewed(sentAt: number): void {
    if (!this.held) return;
    this.#validUntil = Math.max(this.#validUntil, sentAt + this.#ttlMs);
  }

  /** Whether the claims still hold by this process's clock (false for good once lapsed). */
  get held(): boolean {
    if (!this.#lapsed && this.#now() >= this.#validUntil - this.#marginMs) this.#lapsed = true;
    return !this.#lapsed;
  }
}

/** Reported (not thrown) when a batch stopped publishing because its claims lapsed. */
export class ClaimsLapsedError extends Error {
  constructor() {
    super(
      'device claims lapsed before the batch was done (this process was paused, or cut off from ' +
        'PostgreSQL, for longer than the claim TTL): its devices are left to the next claim',
    );
    this.name = 'ClaimsLapsedError';
  }
}
