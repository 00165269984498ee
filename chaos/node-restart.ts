/**
 * Restarting a node the way an orchestrator does: again after a failed start-up (the database
 * may still be down), every second, within one deadline. Each attempt may wait for readiness, so
 * a count of attempts alone bounded nothing (60 tries of up to 60 s each: an hour). A try that
 * failed stops what it started before the next one (or before giving up), as an orchestrator
 * kills a container that fails its start-up probe: left running, a node not ready in time kept
 * its ports (every later try failed with "still running") and could take work meanwhile.
 */
import type { LocalCluster } from '../bin/cluster.ts';

/** How long, in all, a node's restart may take: attempts, their readiness waits and the pauses. */
export const RESTART_DEADLINE_MS = 60_000;
/** The pause between two attempts. */
export const RESTART_RETRY_MS = 1000;
/** Attempts at most, however quickly they fail. */
export const MAX_RESTART_ATTEMPTS = 60;

/**
 * How long a failed try's process gets to stop on SIGTERM before SIGKILL: above the suite's
 * `E4C2_SHUTDOWN_TIMEOUT_MS` (3 s), so a node that does answer SIGTERM ends cleanly.
 */
export const RESTART_STOP_GRACE_MS = 5000;

/** One try at restarting a node, and how to stop what a failed try started. */
export interface RestartAttempt {
  /** Starts the node and waits until it is ready, at most `readyWithinMs`. */
  readonly start: (readyWithinMs: number) => Promise<unknown>;
  /** Stops whatever the failed try left running (nothing, when its process already exited). */
  readonly abandon: () => Promise<unknown>;
}

/** Restart tries of `name` on a local cluster; a failed one's process is stopped, SIGKILL at worst. */
export function clusterRestartAttempt(
  cluster: Pick<LocalCluster, 'restart' | 'stopNode'>,
  name: string,
  graceMs: number = RESTART_STOP_GRACE_MS,
): RestartAttempt {
  return {
    start: (readyWithinMs) => cluster.restart(name, readyWithinMs),
    abandon: () => cluster.stopNode(name, graceMs),
  };
}

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
 * Calls `attempt.start(readyWithinMs)` until it resolves; each attempt is given what is left of
 * the deadline to become ready, and no attempt starts once the deadline has passed. After a failed
 * attempt, `attempt.abandon()` has stopped what it started before the next one, or the failure.
 * @throws Error naming the node, the attempts, the deadline and the last attempt's failure
 */
export async function restartWithin(
  name: string,
  attempt: RestartAttempt,
  limits: RestartLimits = RESTART_LIMITS,
): Promise<void> {
  const started = Date.now();
  const deadline = started + limits.deadlineMs;
  for (let tries = 1; ; tries++) {
    try {
      await attempt.start(Math.max(1, deadline - Date.now()));
      return;
    } catch (err) {
      // Its failure is the one to report; a stop that fails too is said beside it.
      const stopFailure = await attempt.abandon().then(
        () => '',
        (stopErr: unknown) => `; stopping it failed: ${(stopErr as Error).message}`,
      );
      const outOfTime = Date.now() + limits.retryMs >= deadline;
      if (outOfTime || tries >= limits.maxAttempts || stopFailure !== '') {
        const why =
          stopFailure !== ''
            ? 'not restarted (a failed attempt could not be stopped)'
            : outOfTime
              ? `not restarted within its deadline of ${limits.deadlineMs / 1000} s`
              : `not restarted in ${limits.maxAttempts} attempts`;
        throw new Error(
          `${name} ${why} (${tries} attempt(s) over ${((Date.now() - started) / 1000).toFixed(1)} s); the last: ${(err as Error).message}${stopFailure}`,
        );
      }
      await new Promise((r) => setTimeout(r, limits.retryMs));
    }
  }
}
