/**
 * The automation invariant (A1) of the `automation-leader-kill` scenario: an interval rule
 * rotating one topic, whose engine leader is killed and paused while firings are due. Over the
 * recorded firings and the topic's final key version it checks that every due slot from the
 * first firing until shortly before the rule was disabled fired exactly once (never twice, also
 * not at a due time off the rule's grid; never skipped, whoever led), that every firing finished,
 * and that each firing rotated the topic exactly once. Firings that the rule's disabling at the
 * end stopped before their target (aborted, nothing done) are left out when they were due just
 * before it.
 */
import type { Violation } from './checker.ts';

/** One firing as `GET /v1/automation/firings` reports it. */
export interface ObservedFiring {
  readonly id: string;
  readonly dueAt: string;
  readonly status: string;
  /**
   * Slots this firing stands for: 1 normally, n for a catch-up that merged n slots (due at the
   * last of them); 0 in hand-written histories means 1.
   */
  readonly coalesced: number;
  /** Targets it rotated (absent in histories recorded before it was kept). */
  readonly done?: number;
}

/** What the scenario observed. */
export interface AutomationObservation {
  readonly intervalMs: number;
  readonly firings: readonly ObservedFiring[];
  /** The topic's key version at the end (1 at creation, +1 per rotation). */
  readonly finalKeyVersion: number;
  /** When every fault had healed (wall clock, ISO); absent in older histories. */
  readonly healedAt?: string;
  /** When the probe asked to disable the rule (wall clock, ISO); absent in older histories. */
  readonly disabledAt?: string;
}

/**
 * How long after the heal a correct engine has surely caught up with every slot due so far: a
 * restarted worker starts (a few seconds), the 2 s leader lease of a killed or paused leader
 * lapses, the next 1 s tick plans the backlog, and its firings run. The probe waits longer than
 * this after the heal before it disables the rule (chaos/automation-probe.ts).
 */
export const AUTOMATION_RECOVERY_MS = 10_000;

/**
 * Slots due this close to the disabling may not have fired, or may have been stopped by it
 * (aborted, nothing done): a slot is planned at the first 1 s tick after it is due, then run.
 */
export const AUTOMATION_END_GRACE_MS = 5000;

const violation = (message: string): Violation => ({ invariant: 'A1', message, operations: [] });

/**
 * The end of the span in which every due slot must have fired and succeeded: `disabledAt` less
 * the grace, when the rule was disabled long enough after the heal for a correct engine to have
 * caught up; else `undefined` (an older history, or a disabling too early to judge the tail).
 */
function requiredUntil(observed: AutomationObservation): number | undefined {
  if (observed.healedAt === undefined || observed.disabledAt === undefined) return undefined;
  const healed = Date.parse(observed.healedAt);
  const disabled = Date.parse(observed.disabledAt);
  if (!Number.isFinite(healed) || !Number.isFinite(disabled)) return undefined;
  if (disabled - healed < AUTOMATION_RECOVERY_MS) return undefined;
  return disabled - AUTOMATION_END_GRACE_MS;
}

/** Checks A1; an empty list means it held. */
export function checkAutomation(observed: AutomationObservation): Violation[] {
  const out: Violation[] = [];
  const interval = observed.intervalMs;
  const all = [...observed.firings].sort((a, b) => a.dueAt.localeCompare(b.dueAt));
  const seen = new Map<string, string>();
  for (const f of all) {
    const other = seen.get(f.dueAt);
    if (other !== undefined)
      out.push(violation(`slot ${f.dueAt} fired twice (firings ${other} and ${f.id})`));
    seen.set(f.dueAt, f.id);
  }
  // Every slot of an interval rule lies on one grid: the engine plans `cursor + k * interval`
  // and saves the last slot as the next cursor, in one transaction. A firing off the grid of the
  // first one was planned by a second leader from a cursor of its own: a slot fired twice, with
  // a due time the UNIQUE (rule, dueAt) constraint cannot catch.
  const first = all[0];
  if (first !== undefined)
    for (const f of all) {
      const offset = Date.parse(f.dueAt) - Date.parse(first.dueAt);
      if (((offset % interval) + interval) % interval !== 0)
        out.push(
          violation(
            `firing ${f.id} is due at ${f.dueAt}, off the rule's grid (every ${interval} ms from ${first.dueAt}): a slot fired a second time`,
          ),
        );
    }
  // The probe ends by disabling the rule, which stops the firings not yet past their target:
  // the last ones may end aborted having rotated nothing, but only those due within the grace
  // before the disabling when it is known (else any trailing ones, as older histories allow).
  const until = requiredUntil(observed);
  let end = all.length;
  while (
    end > 0 &&
    all[end - 1]?.status === 'aborted' &&
    all[end - 1]?.done === 0 &&
    (until === undefined || Date.parse(all[end - 1]?.dueAt ?? '') > until)
  )
    end--;
  const firings = all.slice(0, end);
  if (firings.length === 0) return [...out, violation('the rule never fired')];
  for (const f of firings)
    if (f.status !== 'succeeded')
      out.push(violation(`firing ${f.id} (slot ${f.dueAt}) ended ${f.status}, not succeeded`));
  for (let i = 1; i < firings.length; i++) {
    const previous = firings[i - 1];
    const current = firings[i];
    if (previous === undefined || current === undefined) continue;
    const gap = Date.parse(current.dueAt) - Date.parse(previous.dueAt);
    const slots = Math.round(gap / interval);
    // A firing stands for the slots it merged (1 normally): a catch-up due at slot n after the
    // cursor merged slots 1..n.
    const stands = Math.max(1, current.coalesced);
    if (slots > stands)
      out.push(
        violation(
          `${slots - stands} slot(s) between ${previous.dueAt} and ${current.dueAt} never fired`,
        ),
      );
    else if (slots < stands && slots >= 1)
      out.push(
        violation(
          `firing ${current.id} at ${current.dueAt} merged ${stands} slots but only ${slots} were due since ${previous.dueAt}: ${stands - slots} slot(s) fired twice`,
        ),
      );
  }
  // Slots due after the last firing and well before the disabling never fired: the engine
  // stopped planning (a span between the first and the last firing alone would not show it).
  const last = firings.at(-1);
  if (until !== undefined && last !== undefined) {
    const missing = Math.floor((until - Date.parse(last.dueAt)) / interval);
    if (missing > 0)
      out.push(
        violation(
          `${missing} slot(s) due after the last firing (${last.dueAt}) and before ${new Date(until).toISOString()} (${AUTOMATION_END_GRACE_MS} ms before the rule was disabled, ${observed.disabledAt ?? '?'}, itself more than ${AUTOMATION_RECOVERY_MS} ms after the heal) never fired`,
        ),
      );
  }
  const rotations = observed.finalKeyVersion - 1;
  if (rotations !== firings.length)
    out.push(
      violation(
        `${firings.length} firing(s) but ${rotations} rotation(s) of the topic: each firing must rotate it exactly once`,
      ),
    );
  return out;
}
