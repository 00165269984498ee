/**
 * What a run's verdict covers: per invariant, whether it was checked and held, was violated, or
 * did not apply to the run (and why). R5 and A1 are judged only in some runs (chaos/in-flight.ts,
 * chaos/automation-check.ts), so "no violation" alone would let a PASS claim what nobody checked.
 */
import { INVARIANT_NAMES, type InvariantId, type Violation } from './checker.ts';
import type { RunRecord } from './history.ts';
import { harmless } from './in-flight.ts';

/** One invariant's outcome in a run. */
export type InvariantStatus =
  | { readonly status: 'passed' }
  | { readonly status: 'violated' }
  | { readonly status: 'not applicable'; readonly reason: string };

/** Every invariant, in the order the checker reports them. */
export const INVARIANT_IDS = Object.keys(INVARIANT_NAMES) as readonly InvariantId[];

/** Why R5 is not judged in `run`, or `undefined` when it is (see chaos/in-flight.ts). */
function inFlightNotJudged(run: RunRecord): string | undefined {
  if (run.networkCopies !== 1)
    return `the run's faults duplicate PUBLISH packets or make the broker redeliver (${run.networkCopies} network copies), so two close copies are legitimate`;
  const fault = run.faults.find((f) => !harmless(f));
  if (fault === undefined) return undefined;
  return `fault "${fault.target}" can delay or repeat a PUBLISH or let a device claim lapse under a running worker, so two close copies are legitimate`;
}

/** Why `invariant` does not apply to `run`, or `undefined` when the checker judged it. */
function notApplicable(run: RunRecord, invariant: InvariantId): string | undefined {
  if (invariant === 'R5') return inFlightNotJudged(run);
  if (invariant === 'A1' && run.automation === undefined)
    return 'the scenario runs no automation rule (only automation-leader-kill does)';
  return undefined;
}

/**
 * Each invariant's status in `run`, given the checker's `violations` on it (a violated invariant
 * is reported violated even where it would not apply: the checker's word stands).
 */
export function invariantStatuses(
  run: RunRecord,
  violations: readonly Violation[],
): Record<InvariantId, InvariantStatus> {
  const violated = new Set(violations.map((v) => v.invariant));
  const statuses = {} as Record<InvariantId, InvariantStatus>;
  for (const id of INVARIANT_IDS) {
    const reason = violated.has(id) ? undefined : notApplicable(run, id);
    statuses[id] = violated.has(id)
      ? { status: 'violated' }
      : reason === undefined
        ? { status: 'passed' }
        : { status: 'not applicable', reason };
  }
  return statuses;
}

/**
 * One line for the console: which invariants were checked and held, which were violated, which
 * did not apply (`checked I1-I9 (passed); R5 not applicable: …; A1 not applicable: …`).
 */
export function describeStatuses(statuses: Readonly<Record<InvariantId, InvariantStatus>>): string {
  const having = (s: InvariantStatus['status']): InvariantId[] =>
    INVARIANT_IDS.filter((id) => statuses[id].status === s);
  const parts = [`passed ${having('passed').join(',') || 'none'}`];
  const violated = having('violated');
  if (violated.length > 0) parts.push(`violated ${violated.join(',')}`);
  for (const id of having('not applicable')) {
    const s = statuses[id];
    if (s.status === 'not applicable') parts.push(`${id} not applicable: ${s.reason}`);
  }
  return parts.join('; ');
}
