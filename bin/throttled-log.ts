/**
 * A log line for errors that repeat while a dependency is down (a client reconnecting every
 * second): the first is logged, then at most one per interval with the count of those left out.
 */

/** Where a throttled line goes (a bound pino method). */
export type LogLine = (fields: Record<string, unknown>, message: string) => void;

/** A function that logs `err` under `message`, at most once per `everyMs`. */
export function throttledErrorLog(
  log: LogLine,
  message: string,
  everyMs: number,
  now: () => number = Date.now,
): (err: unknown) => void {
  let lastAt = -Infinity;
  let leftOut = 0;
  return (err) => {
    const at = now();
    if (at - lastAt < everyMs) {
      leftOut += 1;
      return;
    }
    log({ err, ...(leftOut > 0 ? { leftOut } : {}) }, message);
    lastAt = at;
    leftOut = 0;
  };
}
