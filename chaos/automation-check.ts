/**
 * The automation invariant (A1) of the `automation-leader-kill` scenario: an interval rule
 * rotating one topic, whose engine leader is killed and paused while firings are due. Over the
 * recorded firings and the topic's final key version it checks that every due slot between the
 * first and the last fired exactly once (never twice, never skipped, whoever led), that every
 * firing finished, and that each firing rotated the topic exactly once. Firings that the rule's
 * disabling at the end stopped before their target (aborted, nothing done) are left out.
 */
import type { Violation } from './checker.ts';

/** One firing as `GET /v1/automation/firings` reports it. */
export interface ObservedFiring {
  readonly id: string;
  readonly dueAt: string;
  readonly status: string;
  /** Slots merged into this firing (catch-up of an old backlog); 0 normally. */
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
}

const violation = (message: string): Violation => ({ invariant: 'A1', message, operations: [] });

/** Checks A1; an empty list means it held. */
export function checkAutomation(observed: AutomationObservation): Violation[] {
  const out: Violation[] = [];
  const all = [...observed.firings].sort((a, b) => a.dueAt.localeCompare(b.dueAt));
  const seen = new Map<string, string>();
  for (const f of all) {
    const other = seen.get(f.dueAt);
    if (other !== undefined)
      out.push(violation(`slot ${f.dueAt} fired twice (firings ${other} and ${f.id})`));
    seen.set(f.dueAt, f.id);
  }
  // The probe ends by disabling the rule, which stops the firings not yet past their target:
  // the last ones may end aborted having rotated nothing. Anywhere else, aborted is a violation.
  let end = all.length;
  while (end > 0 && all[end - 1]?.status === 'aborted' && all[end - 1]?.done === 0) end--;
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
    const slots = Math.round(gap / observed.intervalMs);
    // A coalesced firing stands for the slots it merged.
    if (slots > 1 + current.coalesced)
      out.push(
        violation(
          `${slots - 1 - current.coalesced} slot(s) between ${previous.dueAt} and ${current.dueAt} never fired`,
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
