/** The automation invariant on hand-written observations: it holds, and each way it breaks. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { checkAutomation, type ObservedFiring } from '../automation-check.ts';

const at = (s: number): string => new Date(Date.UTC(2026, 10, 26, 5, 0, s)).toISOString();
const firing = (s: number, extra: Partial<ObservedFiring> = {}): ObservedFiring => ({
  id: `f${s}`,
  dueAt: at(s),
  status: 'succeeded',
  coalesced: 0,
  ...extra,
});
const messages = (firings: ObservedFiring[], finalKeyVersion: number): string[] =>
  checkAutomation({ intervalMs: 1000, firings, finalKeyVersion }).map((v) => v.message);

void describe('checkAutomation (A1)', () => {
  void it('holds for consecutive slots, each succeeded, one rotation each', () => {
    assert.deepEqual(messages([firing(1), firing(2), firing(3)], 4), []);
    // A catch-up due at the third slot after the last firing merged those three slots.
    assert.deepEqual(messages([firing(1), firing(4, { coalesced: 3 })], 3), []);
  });

  void it('reports a slot fired twice', () => {
    const twice = messages([firing(1), firing(2), { ...firing(2), id: 'g2' }], 4);
    assert.ok(
      twice.some((m) => /fired twice/.test(m)),
      twice.join('; '),
    );
  });

  void it('reports a skipped slot', () => {
    assert.deepEqual(messages([firing(1), firing(3)], 3), [
      `1 slot(s) between ${at(1)} and ${at(3)} never fired`,
    ]);
  });

  void it('reports a firing that acted twice or not at all, and an unfinished one', () => {
    assert.match(messages([firing(1), firing(2)], 4)[0] ?? '', /2 firing\(s\) but 3 rotation/);
    assert.match(messages([firing(1), firing(2)], 2)[0] ?? '', /2 firing\(s\) but 1 rotation/);
    assert.match(messages([firing(1, { status: 'pending' })], 2)[0] ?? '', /ended pending/);
    assert.deepEqual(messages([], 1), ['the rule never fired']);
  });

  void it('leaves out the last firings the final disabling stopped before their target', () => {
    const stopped = (n: number): ObservedFiring => firing(n, { status: 'aborted', done: 0 });
    assert.deepEqual(messages([firing(1), firing(2), stopped(3), stopped(4)], 3), []);
    // Aborted anywhere else, or after rotating, is still a violation.
    assert.match(
      messages([firing(1), stopped(2), firing(3)], 3).join('; '),
      /ended aborted, not succeeded/,
    );
    assert.match(
      messages([firing(1), firing(2, { status: 'aborted', done: 1 })], 3).join('; '),
      /ended aborted, not succeeded/,
    );
    assert.deepEqual(messages([stopped(1)], 1), ['the rule never fired']);
  });
});
