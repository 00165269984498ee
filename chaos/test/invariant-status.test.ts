/**
 * A summary says what its verdict covers: per invariant, passed, violated, or not applicable and
 * why. R5 and A1 apply to some runs only, so a PASS must not read as "every invariant held" when
 * one of them was never judged.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Violation } from '../checker.ts';
import type { FaultRecord, RunRecord } from '../history.ts';
import { describeStatuses, INVARIANT_IDS } from '../invariant-status.ts';
import { parseChaosArgs, summarize } from '../main.ts';
import type { ScenarioResult } from '../run-scenario.ts';

const fault = (target: string): FaultRecord => ({
  id: 0,
  kind: target.split(' ')[0] ?? '',
  target,
  startedAt: 5,
  endedAt: 7,
});

/** The summary of a run of `record`'s shape that found `violations`. */
function summaryOf(
  record: Partial<RunRecord>,
  violations: Violation[] = [],
): Record<string, { status: string; reason?: string }> {
  const args = parseChaosArgs(['--scenario', 'worker-crash', '--duration', '8']);
  assert.ok(args !== undefined);
  const result = {
    record: {
      scenario: 'worker-crash',
      seed: 1,
      networkCopies: 1,
      operations: [],
      applies: [],
      faults: [],
      final: {},
      ...record,
    },
    schedule: [],
    violations,
  } as unknown as ScenarioResult;
  return summarize(result, args)['invariants'] as Record<
    string,
    { status: string; reason?: string }
  >;
}

const statusOf = (invariants: Record<string, { status: string }>): Record<string, string> =>
  Object.fromEntries(Object.entries(invariants).map(([id, s]) => [id, s.status]));

const automation = { intervalMs: 1000, firings: [], finalKeyVersion: 1 };

void describe('the invariants of a summary', () => {
  void it('lists every invariant, passed when the run judged it and found nothing', () => {
    const invariants = summaryOf({ faults: [fault('kill-node api-1')], automation });
    assert.deepEqual(Object.keys(invariants), [...INVARIANT_IDS]);
    assert.deepEqual(
      statusOf(invariants),
      Object.fromEntries(INVARIANT_IDS.map((id) => [id, 'passed'])),
    );
  });

  void it('marks R5 not applicable, naming the fault, when a worker was killed', () => {
    const invariants = summaryOf({
      faults: [fault('kill-node api-1'), fault('kill-node worker-1')],
    });
    assert.equal(invariants['R5']?.status, 'not applicable');
    assert.match(
      invariants['R5'].reason ?? '',
      /"kill-node worker-1" can delay or repeat a PUBLISH/,
    );
    assert.equal(invariants['I1']?.status, 'passed');
  });

  void it('marks R5 not applicable where the network duplicates', () => {
    const invariants = summaryOf({ networkCopies: 2 });
    assert.equal(invariants['R5']?.status, 'not applicable');
    assert.match(invariants['R5'].reason ?? '', /2 network copies/);
  });

  void it('marks A1 not applicable in a run without an automation rule', () => {
    const invariants = summaryOf({});
    assert.deepEqual(invariants['A1'], {
      status: 'not applicable',
      reason: 'the scenario runs no automation rule (only automation-leader-kill does)',
    });
    assert.equal(invariants['R5']?.status, 'passed', 'no fault at all: R5 judged');
  });

  void it('marks a violated invariant violated, the others as they were', () => {
    const v: Violation = { invariant: 'I4', message: 'two rotations', operations: [1, 2] };
    const invariants = statusOf(summaryOf({ automation }, [v, { ...v }]));
    assert.equal(invariants['I4'], 'violated');
    assert.equal(invariants['I3'], 'passed');
    assert.equal(invariants['A1'], 'passed');
  });

  void it('says it all in one console line', () => {
    const line = describeStatuses(
      summaryOf({ faults: [fault('pause-node worker-2')] }, [
        { invariant: 'I9', message: 'x', operations: [] },
      ]) as Parameters<typeof describeStatuses>[0],
    );
    assert.equal(
      line,
      'passed I1,I2,I3,I4,I5,I6,I7,I8; violated I9; ' +
        'R5 not applicable: fault "pause-node worker-2" can delay or repeat a PUBLISH or let a device claim lapse under a running worker, so two close copies are legitimate; ' +
        'A1 not applicable: the scenario runs no automation rule (only automation-leader-kill does)',
    );
  });
});
