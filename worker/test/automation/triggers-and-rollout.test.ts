import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { C2Error } from '../../../cluster/errors.ts';
import { checkRuleDraft, checkTrigger } from '../../../cluster/domain/automation-rules.ts';
import type { CountableEvent, TargetSpec } from '../../../cluster/storage/index.ts';
import { RolloutGate } from '../../automation/rollout-policy.ts';
import {
  countEvents,
  eventMatchesTargets,
  memberRemovals,
  settledEvents,
} from '../../automation/trigger-evaluation.ts';

const T0 = Date.parse('2026-05-01T10:00:00Z');
const ev = (
  seq: number,
  type: string,
  clientName: string | null,
  topic: string | null,
  at = T0,
): CountableEvent => ({ seq: String(seq), at: new Date(at), type, clientName, topic });
const topicTarget = (match: TargetSpec['match'], expr: string): TargetSpec => ({
  id: 'g',
  kind: 'topic',
  match,
  expr,
});

void describe('event counting', () => {
  void it('stops before a young gap and passes an old one', () => {
    const events = [ev(1, 'x', null, null), ev(3, 'x', null, null, T0 + 9000)];
    assert.deepEqual(
      settledEvents('0', events, T0 + 10_000).events.map((e) => e.seq),
      ['1'],
    );
    assert.equal(settledEvents('0', events, T0 + 10_000).cursor, '1');
    assert.deepEqual(settledEvents('0', events, T0 + 30_000).cursor, '3');
  });

  void it('fires every threshold-th matching event and carries the remainder', () => {
    const trigger = {
      id: 't',
      kind: 'event',
      event: 'client.subscribed',
      threshold: 3,
    } as const;
    const events = [1, 2, 3, 4, 5, 6, 7].map((i) =>
      ev(i, i === 4 ? 'client.unsubscribed' : 'client.subscribed', `dev-${i}`, 'plant/a'),
    );
    const r = countEvents(trigger, [], events, 1);
    // counter starts at 1: events 1, 2 reach 3 (fires at seq 2); 3, 5, 6 reach 3 (fires at 6); 7 left.
    assert.deepEqual(
      r.firings.map((f) => f.seq),
      ['2', '6'],
    );
    assert.equal(r.counter, 1);
  });

  void it('counts only events of the targets (prefix and a real pattern)', () => {
    const events = [ev(1, 'a', 'dev', 'plant/a/temp'), ev(2, 'a', 'dev', 'office/b')];
    assert.equal(
      events.filter((e) => eventMatchesTargets(e, [topicTarget('prefix', 'plant/')])).length,
      1,
    );
    assert.equal(
      events.filter((e) => eventMatchesTargets(e, [topicTarget('pattern', '[a-z]+/b')])).length,
      1,
    );
    // The reference compared patterns with string equality; we evaluate them.
    assert.equal(
      eventMatchesTargets(ev(1, 'a', 'dev', 'plant/a/temp'), [topicTarget('pattern', 'plant/.*')]),
      true,
    );
  });

  void it('member-removed owes one rotation per unsubscribe from a target topic', () => {
    const events = [
      ev(1, 'client.unsubscribed', 'd1', 'plant/a'),
      ev(2, 'client.subscribed', 'd2', 'plant/a'),
      ev(3, 'client.unsubscribed', 'd3', 'office/x'),
    ];
    assert.deepEqual(memberRemovals([topicTarget('prefix', 'plant/')], events), [
      { seq: '1', at: new Date(T0), topic: 'plant/a' },
    ]);
  });
});

void describe('rollout gate', () => {
  void it('paces devices per minute with an injected clock', async () => {
    let now = 0;
    const slept: number[] = [];
    const gate = new RolloutGate(
      { maxDevicesPerMinute: 60 },
      0,
      () => now,
      (ms) => {
        slept.push(ms);
        now += ms;
        return Promise.resolve();
      },
    );
    const signal = new AbortController().signal;
    assert.equal(await gate.admit(60, signal), true);
    assert.equal(slept.length, 0);
    assert.equal(await gate.admit(30, signal), true);
    assert.equal(
      slept.reduce((a, b) => a + b, 0),
      30_000,
    );
  });

  void it('aborts when the failure ratio crosses the threshold, times out at the deadline', () => {
    let now = 0;
    const gate = new RolloutGate(
      { abortFailureRatio: 0.5, timeoutSeconds: 10 },
      0,
      () => now,
      () => Promise.resolve(),
    );
    gate.record(2, 1);
    assert.equal(gate.stop(), undefined);
    gate.record(1, 1);
    assert.equal(gate.stop(), 'aborted');
    const slow = new RolloutGate(
      { timeoutSeconds: 10 },
      0,
      () => now,
      () => Promise.resolve(),
    );
    now = 10_000;
    assert.equal(slow.stop(), 'timed_out');
  });
});

void describe('rule validation', () => {
  const code = (fn: () => unknown): string => {
    try {
      fn();
    } catch (err) {
      assert.ok(err instanceof C2Error, 'a C2Error');
      return err.code;
    }
    assert.fail('expected a C2Error');
  };

  void it('requires an explicit, real time zone for cron triggers', () => {
    assert.equal(
      code(() => checkTrigger({ kind: 'cron', expr: '0 * * * *' })),
      'C2_VALIDATION',
    );
    assert.equal(
      code(() => checkTrigger({ kind: 'cron', expr: '0 * * * *', timeZone: 'Mars/Olympus' })),
      'C2_VALIDATION',
    );
    assert.equal(
      code(() => checkTrigger({ kind: 'cron', expr: '61 * * * *', timeZone: 'UTC' })),
      'C2_VALIDATION',
    );
    // Absent (or '', as a missing proto field decodes): "required", not a length rule.
    for (const timeZone of [undefined, ''])
      assert.throws(() => checkTrigger({ kind: 'cron', expr: '0 * * * *', timeZone }), {
        message: /^trigger\.timeZone is required: an IANA time zone such as UTC/,
      });
    const ok = checkTrigger({ kind: 'cron', expr: '30 2 * * *', timeZone: 'Europe/Berlin' });
    assert.equal(ok.kind, 'cron');
    assert.match(ok.id, /^t-[0-9a-f]{10}$/);
  });

  void it('rejects incoherent rules and bad patterns', () => {
    assert.equal(
      code(() =>
        checkRuleDraft({
          action: 'rotate-client-key',
          triggers: [{ kind: 'member-removed' }],
        }),
      ),
      'C2_VALIDATION',
    );
    assert.equal(
      code(() =>
        checkRuleDraft({
          action: 'rotate-topic-key',
          targets: [{ kind: 'client', match: 'exact', expr: 'dev' }],
        }),
      ),
      'C2_VALIDATION',
    );
    assert.equal(
      code(() =>
        checkRuleDraft({
          action: 'rotate-topic-key',
          targets: [{ kind: 'topic', match: 'pattern', expr: '(' }],
        }),
      ),
      'C2_VALIDATION',
    );
    assert.equal(
      code(() => checkRuleDraft({ action: 'rotate-topic-key', rollout: { abortFailureRatio: 2 } })),
      'C2_VALIDATION',
    );
  });
});
