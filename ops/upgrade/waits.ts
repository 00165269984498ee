/** The waits of an upgrade practice: a retried task, and a pause an abort cuts short. */

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Repeats `task` every 500 ms until it returns true (resolves true) or `timeoutMs` passed. */
export async function until(task: () => Promise<boolean>, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await task().catch(() => false)) return true;
    if (Date.now() > deadline) return false;
    await sleep(500);
  }
}

/** Waits `ms`, or less when `signal` aborts meanwhile (the caller then checks it). */
export function pause(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done);
  });
}
