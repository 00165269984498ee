/**
 * Whether a node may send commands now: connected to the broker, and past a settling delay after
 * each reconnection. Right after the broker comes back, devices with a clean session have not
 * subscribed again yet; the broker would acknowledge a command for such a device and drop it, and
 * the C2 would record it delivered. So neither the sweep nor a job nor the outbox relay sends
 * before the delay has passed.
 */
export class SendGate {
  #sendableAt = 0;

  /**
   * @param connected - whether the publisher is connected now
   * @param now - the clock, in milliseconds
   */
  constructor(
    private readonly connected: () => boolean,
    private readonly now: () => number = Date.now,
  ) {}

  /** The publisher connected again: sending waits `delayMs` from now. */
  reconnected(delayMs: number): void {
    this.#sendableAt = this.now() + delayMs;
  }

  /** True when connected and settled. */
  get open(): boolean {
    return this.connected() && this.now() >= this.#sendableAt;
  }
}
