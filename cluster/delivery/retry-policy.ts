/** Capped retransmission (DESIGN R6): attempts, exponential backoff with full jitter, a deadline. */

/** Limits of one device's delivery streak. */
export interface RetryPolicy {
  readonly maxAttempts: number;
  readonly initialBackoffMs: number;
  readonly maxBackoffMs: number;
  /** Total time a streak of failures may last before the delivery is marked failed. */
  readonly deadlineMs: number;
}

/**
 * Delay before retry number `attempt` (1 = the first retry): a uniformly random value in
 * [0, min(max, initial * 2^(attempt-1))] ("full jitter"), so retries of many devices spread out.
 */
export function backoffDelay(
  policy: RetryPolicy,
  attempt: number,
  random: () => number = Math.random,
): number {
  const ceiling = Math.min(
    policy.maxBackoffMs,
    policy.initialBackoffMs * 2 ** Math.max(0, attempt - 1),
  );
  return Math.floor(random() * ceiling);
}

/** True when another attempt is allowed after `failures` consecutive failures since `startedAt`. */
export function mayRetry(
  policy: RetryPolicy,
  failures: number,
  startedAt: number,
  now: number,
  nextDelay: number,
): boolean {
  return failures < policy.maxAttempts && now + nextDelay - startedAt <= policy.deadlineMs;
}
