/**
 * The workload's stop condition (`chaos/workload-window.ts`): it runs past the duration while a
 * fault is still healing, so that I9 judges calls over its whole window (the first fault to the
 * heal), and stops at the bound however long a heal takes.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { WORKLOAD_OVERRUN_MS, workloadStop } from '../workload-window.ts';

void describe('workloadStop', () => {
  void it('runs on past the duration until every fault healed, within its bound', () => {
    let now = 0;
    let healed = false;
    const stop = workloadStop({ elapsed: () => now, stopAt: 8000, faultsHealed: () => healed });
    assert.equal(stop(), false, 'within the duration');
    now = 8000;
    assert.equal(stop(), false, 'the duration is over, but a killed node is still restarting');
    now = 20_000;
    assert.equal(stop(), false, 'still restarting');
    healed = true;
    assert.equal(stop(), true, 'healed: the window is over');
    // Healed early: the workload still runs for the whole duration.
    now = 3000;
    assert.equal(stop(), false, 'healed before the duration is over');
  });

  void it('stops at the bound when a heal never returns', () => {
    let now = 0;
    const stop = workloadStop({ elapsed: () => now, stopAt: 8000, faultsHealed: () => false });
    now = 8000 + WORKLOAD_OVERRUN_MS - 1;
    assert.equal(stop(), false);
    now = 8000 + WORKLOAD_OVERRUN_MS;
    assert.equal(stop(), true);
  });
});
