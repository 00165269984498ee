/**
 * Waiting on a dependency for a bounded time. A connection that a failover or a partition
 * black-holed neither answers nor fails, for minutes; the watchdogs and checks that must notice
 * it wait for an answer only so long.
 */

/** What {@link settleWithin} gives when the promise has not settled in time. */
export const NO_ANSWER: unique symbol = Symbol('no answer');

/**
 * How `promise` settled within `timeoutMs`, or {@link NO_ANSWER}. A rejection is an answer (the
 * dependency, or its client, noticed something); it is returned, never thrown. The timer is
 * cleared as soon as the promise settles; the promise itself is left to settle whenever it does.
 */
export async function settleWithin<T>(
  promise: Promise<T>,
  timeoutMs: number,
): Promise<PromiseSettledResult<T> | typeof NO_ANSWER> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<typeof NO_ANSWER>((resolve) => {
    timer = setTimeout(() => {
      resolve(NO_ANSWER);
    }, timeoutMs);
  });
  const settled = promise.then(
    (value): PromiseSettledResult<T> => ({ status: 'fulfilled', value }),
    (reason: unknown): PromiseSettledResult<T> => ({ status: 'rejected', reason }),
  );
  try {
    return await Promise.race([settled, late]);
  } finally {
    clearTimeout(timer);
  }
}
