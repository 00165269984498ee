/**
 * The checks behind a node's readiness, each bounded in time: a dependency that does not answer
 * (a black-holed connection waits for its own much longer timeouts) counts as not ready at once,
 * so `/readyz` answers within the bound and says which dependency is missing, instead of
 * hanging until the prober gives up.
 */
import { NO_ANSWER, settleWithin } from '../settle-within.ts';

/** One named check: resolves true when its dependency is usable. */
export interface ReadinessCheck {
  readonly name: string;
  readonly ok: () => Promise<boolean>;
  /**
   * False for a dependency that is reported but does not make the process unready: the process
   * still serves without it (an API node without the queue Redis: commits wait in the outbox).
   */
  readonly required?: boolean;
}

/** Whether every required check of `checks` passed (`results` by check name). */
export function requiredChecksPass(
  checks: readonly ReadinessCheck[],
  results: Readonly<Record<string, boolean>>,
): boolean {
  return checks.every((check) => check.required === false || results[check.name] === true);
}

/** How long one check may take before it counts as failed. */
export const READINESS_CHECK_TIMEOUT_MS = 2000;

/** `check` within `timeoutMs`: false when it rejects or has not answered in time. */
async function bounded(check: ReadinessCheck, timeoutMs: number): Promise<boolean> {
  const outcome = await settleWithin(check.ok(), timeoutMs);
  return outcome !== NO_ANSWER && outcome.status === 'fulfilled' && outcome.value;
}

/** Runs every check at once, each within `timeoutMs`; the result per name. */
export async function runReadinessChecks(
  checks: readonly ReadinessCheck[],
  timeoutMs: number = READINESS_CHECK_TIMEOUT_MS,
): Promise<Record<string, boolean>> {
  const results = await Promise.all(
    checks.map(async (check) => [check.name, await bounded(check, timeoutMs)] as const),
  );
  return Object.fromEntries(results);
}
