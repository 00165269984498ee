/**
 * Restarting a node the way an orchestrator does: again after a failed start-up (the database
 * may still be down), every second, within one deadline. Each attempt may wait for readiness, so
 * a count of attempts alone bounded nothing (60 tries of up to 60 s each: an hour).
 */

/** How long, in all, a node's restart may take: attempts, their readiness waits and the pauses. */
export const RESTART_DEADLINE_MS = 60_000;
/** The pause between two attempts. */
export const RESTART_RETRY_MS = 1000;
/** Attempts at most, however quickly they fail. */
export const MAX_RESTART_ATTEMPTS = 60;

/** Limits of {@link restartWithin} (tests shorten them). */
export interface RestartLimits {
  readonly deadlineMs: number;
  readonly retryMs: number;
  readonly maxAttempts: number;
}

/** The suite's limits. */
export const RESTART_LIMITS: RestartLimits = {
  deadlineMs: RESTART_DEADLINE_MS,
  retryMs: RESTART_RETRY_MS,
  maxAttempts: MAX_RESTART_ATTEMPTS,
};

/**
 * Calls `restart(readyWithinMs)` until it resolves; each attempt is given what is left of the
 * deadline to become ready, and no attempt starts once the deadline has passed.
 * @throws Error naming the node, the attempts, the deadline and the last attempt's failure
 */
export async function restartWithin(
  name: string,
  restart: (readyWithinMs: number) => Promise<unknown>,
  limits: RestartLimits = RESTART_LIMITS,
): Promise<void> {
  const started = Date.now();
  const deadline = started + limits.deadlineMs;
  for (let attempt = 1; ; attempt++) {
    try {
      await restart(Math.max(1, deadline - Date.now()));
      return;
    } catch (err) {
      const outOfTime = Date.now() + limits.retryMs >= deadline;
      if (outOfTime || attempt >= limits.maxAttempts) {
        const why = outOfTime
          ? `not restarted within its deadline of ${limits.deadlineMs / 1000} s`
          : `not restarted in ${limits.maxAttempts} attempts`;
        throw new Error(
          `${name} ${why} (${attempt} attempt(s) over ${((Date.now() - started) / 1000).toFixed(1)} s); the last: ${(err as Error).message}`,
        );
      }
      await new Promise((r) => setTimeout(r, limits.retryMs));
    }
  }
}
