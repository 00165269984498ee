/** Polls until a condition holds, for state that settles asynchronously (delivery bookkeeping). */
import { NO_ANSWER, settleWithin } from '../../settle-within.ts';

/**
 * Re-runs `check` until it stops throwing, then returns its value; rethrows its last error
 * after `timeoutMs`.
 */
export async function eventually<T>(
  check: () => Promise<T> | T,
  timeoutMs = 10_000,
  intervalMs = 50,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await check();
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, intervalMs));
    }
  }
}

/**
 * Whether `promise` is still pending after `ms` (it is left running): for checks that something
 * settles within a bound, or does not.
 */
export async function pendingAfter(promise: Promise<unknown>, ms: number): Promise<boolean> {
  return (await settleWithin(promise, ms)) === NO_ANSWER;
}
