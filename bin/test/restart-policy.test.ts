// `npm run cluster --restart`'s backoff: when a node that keeps dying is left down.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { nextRestart, RESTART_POLICY } from '../cluster-args.ts';

/** The delays of the restarts a node gets when every run lasts `ranMs`, until it is left down. */
function delays(ranMs: number, bound = 20): number[] {
  const out: number[] = [];
  let streak = 0;
  for (let i = 0; i < bound; i++) {
    const next = nextRestart(streak, ranMs);
    if (next === undefined) break;
    out.push(next.delayMs);
    streak = next.streak;
  }
  return out;
}

void describe('restart policy', () => {
  void it('a node whose start fails at once backs off, doubling, and is left down after five', () => {
    assert.deepEqual(delays(200), [1000, 2000, 4000, 8000, 16000]);
  });

  void it('a start that takes seconds to fail is left down too (it looped for ever)', () => {
    // Each try ran 20 s: five restarts spread over minutes. A window of restart times never
    // filled, and the delay fell back as old restarts left it.
    assert.equal(delays(20_000).length, RESTART_POLICY.maxInStreak);
  });

  void it('a node that ran a minute before it died starts a new streak', () => {
    assert.deepEqual(nextRestart(RESTART_POLICY.maxInStreak, RESTART_POLICY.stableMs), {
      delayMs: 1000,
      streak: 1,
    });
    assert.equal(nextRestart(RESTART_POLICY.maxInStreak, RESTART_POLICY.stableMs - 1), undefined);
  });

  void it('never waits longer than the cap', () => {
    const policy = { ...RESTART_POLICY, maxInStreak: 10 };
    assert.equal(nextRestart(9, 0, policy)?.delayMs, RESTART_POLICY.maxDelayMs);
  });
});
