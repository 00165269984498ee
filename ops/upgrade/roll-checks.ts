/**
 * The checks of an upgrade practice, over its record alone (pure: a record saved as JSON is
 * judged the same again). The chaos suite's invariants judge what the devices applied and the
 * final state (chaos/checker.ts: every device on each topic's newest key (I1), never an older
 * version after a newer one (I2), no command more often than the retransmission cap (I7), each
 * automation slot fired once (A1), ...); its availability budget (I9), made for faults, gives way
 * to the roll's own rule: a call may fail only when a node it reached was stopping, and a refused
 * rotation must succeed on retry. No node may log a warning or an error, or die unasked. Devices
 * that draw their own identity keys have checks of their own (own-key-checks.ts).
 */
import { checkRun, INVARIANT_NAMES } from '../../chaos/checker.ts';
import type { Operation } from '../../chaos/history.ts';
import type { ExtraCall, RollRecord, RollStep } from './roll-history.ts';
import { checkOwnKeys } from './own-key-checks.ts';
import { describeServer } from './served-by.ts';

/** One broken rule, named and explained. */
export interface RollViolation {
  /** `I2 (no regression)`, `calls`, `node logs`, `crashes`. */
  readonly check: string;
  readonly message: string;
}

/**
 * How a call refused by a stopping node ends: the connection refused or cut, or the node's 503
 * while it drains. Anything else (a 4xx, a 500) is a failure of the release, not of the roll.
 */
const REFUSED = /ECONNREFUSED|ECONNRESET|socket hang up|HTTP 503/;

/** Slack around a step's window: the balancer's probes and the caller's clock lag a little. */
export const REFUSAL_SLACK_MS = 1000;

/** The chaos invariants that do not apply: I9's budget is for faults (see the file's comment). */
const NOT_APPLIED: ReadonlySet<string> = new Set(['I9']);

/** Whether `at` falls within a step's window, with the slack. */
function within(step: RollStep, at: number): boolean {
  return at >= step.stoppingAt - REFUSAL_SLACK_MS && at <= step.readyAt + REFUSAL_SLACK_MS;
}

/**
 * Whether a failed call is one a stopping node refused: it ended as a refusal does, and it was
 * made while an API node it could have reached was being replaced (the node it named, or any API
 * node for a call through the balancer).
 */
export function refusedByStoppingNode(
  call: Pick<Operation, 'invokedAt' | 'error' | 'via'>,
  steps: readonly RollStep[],
): boolean {
  if (call.error === undefined || !REFUSED.test(call.error)) return false;
  return steps.some(
    (s) =>
      s.role === 'api' &&
      within(s, call.invokedAt) &&
      (call.via === undefined || call.via === s.http),
  );
}

/** A failed call for a violation: what, through which node of which release, when, and why. */
function describeCall(c: Operation | ExtraCall, steps: readonly RollStep[]): string {
  const op = c.kind === 'new-client' ? undefined : c;
  const what = [c.kind, op?.topic, c.client].filter(Boolean).join(' ');
  const server = op === undefined ? undefined : describeServer(op, steps);
  const via =
    op?.via === undefined
      ? ' via the balancer'
      : ` via ${op.via}${server === undefined ? '' : ` (${server})`}`;
  return `${what}${via} at +${c.invokedAt} ms: ${c.outcome} (${c.error ?? 'no error given'})`;
}

/** Failed calls that no stopping node explains, and refused rotations never done on retry. */
function checkCalls(record: RollRecord, out: RollViolation[]): void {
  const calls: Array<Operation | ExtraCall> = [...record.run.operations, ...record.extraCalls];
  for (const c of calls) {
    if (c.outcome === 'ok') continue;
    if (!refusedByStoppingNode(c, record.steps)) {
      out.push({
        check: 'calls',
        message: `failed outside a stopping node: ${describeCall(c, record.steps)}`,
      });
      continue;
    }
    const requestId = 'requestId' in c ? c.requestId : undefined;
    if (requestId === undefined) continue;
    const retried = record.run.operations.some(
      (o) => o.requestId === requestId && o.outcome === 'ok' && o.invokedAt > c.invokedAt,
    );
    if (!retried)
      out.push({
        check: 'calls',
        message: `refused and never done on retry (request ${requestId}): ${describeCall(c, record.steps)}`,
      });
  }
}

/** Every violation of the record, chaos invariants first. */
export function checkRoll(record: RollRecord): RollViolation[] {
  const out: RollViolation[] = checkRun(record.run)
    .filter((v) => !NOT_APPLIED.has(v.invariant))
    .map((v) => ({
      check: `${v.invariant} (${INVARIANT_NAMES[v.invariant]})`,
      message: v.message,
    }));
  checkCalls(record, out);
  out.push(...checkOwnKeys(record));
  for (const l of record.nodeLines)
    out.push({
      check: 'node logs',
      message: `${l.node} (${l.release} release) at +${l.at} ms: ${l.line}`,
    });
  for (const c of record.crashes) out.push({ check: 'crashes', message: c });
  return out;
}
