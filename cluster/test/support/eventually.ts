/** Polls until a condition holds, for state that settles asynchronously (delivery bookkeeping). */

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
