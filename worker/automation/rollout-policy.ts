/**
 * The rollout policy of one automated firing: at most N devices per minute (a token bucket with a
 * one-minute burst), abort when the failure ratio crosses a threshold, and a deadline after which
 * the remaining targets are given up.
 */
import type { RolloutPolicy } from '../../cluster/storage/index.ts';

/** Why a firing must stop before its next target. */
export type RolloutStop = 'aborted' | 'timed_out';

/** Waits `ms`, or less when `signal` aborts. */
export type Sleep = (ms: number, signal: AbortSignal) => Promise<void>;

/** Failure ratios are judged only once this many devices were attempted (one failure is noise). */
export const MIN_DEVICES_FOR_RATIO = 1;

/** Paces and judges the targets of one firing. */
export class RolloutGate {
  readonly #policy: RolloutPolicy;
  readonly #clock: () => number;
  readonly #sleep: Sleep;
  readonly #deadline: number | undefined;
  #tokens: number;
  #refilledAt: number;
  #attempted = 0;
  #failed = 0;
  #deliveryFailed = 0;

  /**
   * @param policy - the rule's rollout policy
   * @param startedAt - when the firing started (its first attempt, kept across leaders)
   */
  constructor(policy: RolloutPolicy, startedAt: number, clock: () => number, sleep: Sleep) {
    this.#policy = policy;
    this.#clock = clock;
    this.#sleep = sleep;
    this.#deadline =
      policy.timeoutSeconds === undefined ? undefined : startedAt + policy.timeoutSeconds * 1000;
    this.#tokens = policy.maxDevicesPerMinute ?? 0;
    this.#refilledAt = clock();
  }

  /** Devices attempted and failed so far. */
  get counts(): { readonly attempted: number; readonly failed: number } {
    return { attempted: this.#attempted, failed: this.#failed + this.#deliveryFailed };
  }

  /** Whether the firing must stop now, and why. */
  stop(): RolloutStop | undefined {
    const ratio = this.#policy.abortFailureRatio;
    if (
      ratio !== undefined &&
      this.#attempted >= MIN_DEVICES_FOR_RATIO &&
      (this.#failed + this.#deliveryFailed) / this.#attempted > ratio
    )
      return 'aborted';
    if (this.#deadline !== undefined && this.#clock() >= this.#deadline) return 'timed_out';
    return undefined;
  }

  /**
   * Waits until `devices` more devices fit the rate (a target larger than a minute's budget waits
   * for a full bucket, then goes alone). Returns early, without admitting, when the deadline
   * passes or `signal` aborts.
   * @returns whether the devices were admitted
   */
  async admit(devices: number, signal: AbortSignal): Promise<boolean> {
    const rate = this.#policy.maxDevicesPerMinute;
    if (rate === undefined) return true;
    const need = Math.min(Math.max(devices, 1), rate);
    for (;;) {
      this.#refill(rate);
      if (this.#tokens >= need) {
        this.#tokens -= Math.max(devices, 1);
        return true;
      }
      const waitMs = Math.ceil(((need - this.#tokens) * 60_000) / rate);
      const left =
        this.#deadline === undefined ? waitMs : Math.min(waitMs, this.#deadline - this.#clock());
      if (left <= 0 || signal.aborted) return false;
      await this.#sleep(left, signal);
      // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- it may abort while awaiting
      if (signal.aborted) return false;
    }
  }

  /** Records the outcome of one target. */
  record(attempted: number, failed: number): void {
    this.#attempted += attempted;
    this.#failed += failed;
  }

  /**
   * Sets the devices whose delivery of this firing's keys has failed so far (deliveries fail
   * after the rotation committed, so the figure is refreshed before each target).
   */
  setDeliveryFailed(failed: number): void {
    this.#deliveryFailed = failed;
  }

  #refill(rate: number): void {
    const now = this.#clock();
    this.#tokens = Math.min(rate, this.#tokens + ((now - this.#refilledAt) * rate) / 60_000);
    this.#refilledAt = now;
  }
}
