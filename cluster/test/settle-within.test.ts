// settleWithin: how a promise settled within a bound, or NO_ANSWER; never throws, leaves no timer.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { NO_ANSWER, settleWithin } from '../settle-within.ts';

const timers = (): number => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;

void describe('settleWithin', () => {
  void it('gives the value of a promise that fulfils in time, and clears its timer', async () => {
    const before = timers();
    assert.deepEqual(await settleWithin(Promise.resolve(7), 60_000), {
      status: 'fulfilled',
      value: 7,
    });
    assert.equal(timers(), before, 'no timer left behind');
  });

  void it('gives a rejection in time as an answer, without throwing', async () => {
    const err = new Error('refused');
    assert.deepEqual(await settleWithin(Promise.reject(err), 60_000), {
      status: 'rejected',
      reason: err,
    });
  });

  void it('gives NO_ANSWER for a promise still pending at the bound', async () => {
    const never = new Promise<never>(() => undefined);
    const started = Date.now();
    assert.equal(await settleWithin(never, 50), NO_ANSWER);
    assert.ok(Date.now() - started >= 40, 'waited for the bound');
  });

  void it('is not fooled by a late settlement', async () => {
    const late = new Promise<string>((resolve) => setTimeout(resolve, 200, 'late'));
    assert.equal(await settleWithin(late, 20), NO_ANSWER);
    assert.equal(await late, 'late', 'the promise itself settles whenever it does');
  });
});
