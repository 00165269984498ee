/**
 * A node's restart is bounded in time, not only in attempts: an attempt that waits for readiness
 * as long as it may cannot make the restart outlast its deadline, and the failure says why. A
 * failed attempt's process is stopped before the next attempt and before the failure.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { restartWithin, type RestartAttempt } from '../node-restart.ts';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Attempts that call `start`; nothing to stop after a failure. */
const starting = (start: RestartAttempt['start']): RestartAttempt => ({
  start,
  abandon: () => Promise.resolve(),
});

/** A start-up that never gets ready: it waits as long as it is allowed (or 1 s), then fails. */
async function neverReady(readyWithinMs: number | undefined): Promise<never> {
  await sleep(Math.min(readyWithinMs ?? 1000, 1000));
  throw new Error(`worker-1 was not ready within ${readyWithinMs ?? 1000} ms`);
}

void describe('restarting a node', () => {
  void it('tries again after a failed start-up, until one succeeds', async () => {
    let attempts = 0;
    await restartWithin(
      'worker-1',
      starting(() => {
        attempts += 1;
        return attempts < 3 ? Promise.reject(new Error('exited during start-up')) : sleep(1);
      }),
      { deadlineMs: 2000, retryMs: 10, maxAttempts: 60 },
    );
    assert.equal(attempts, 3);
  });

  void it('gives up at its deadline, however long each attempt may wait', async () => {
    const waits: number[] = [];
    await assert.rejects(
      restartWithin(
        'worker-1',
        starting((readyWithinMs) => {
          waits.push(readyWithinMs);
          return neverReady(readyWithinMs);
        }),
        { deadlineMs: 400, retryMs: 50, maxAttempts: 10 },
      ),
      /^Error: worker-1 not restarted within its deadline of 0\.4 s \(1 attempt\(s\) over [\d.]+ s\); the last: worker-1 was not ready within \d+ ms$/,
    );
    assert.ok(
      waits.every((w) => w <= 400),
      `readiness waits ${waits.join(', ')} ms`,
    );
  });

  void it('gives up after its last attempt, however fast they fail', async () => {
    let attempts = 0;
    await assert.rejects(
      restartWithin(
        'api-2',
        starting(() => {
          attempts += 1;
          return Promise.reject(new Error('api-2 is still running'));
        }),
        { deadlineMs: 10_000, retryMs: 1, maxAttempts: 5 },
      ),
      /^Error: api-2 not restarted in 5 attempts \(5 attempt\(s\) over [\d.]+ s\); the last: api-2 is still running$/,
    );
    assert.equal(attempts, 5);
  });

  void it('stops what a failed attempt started, before the next attempt and before failing', async () => {
    // A node that is never ready in time: each attempt starts a process, which stays running
    // until stopped (a second start while one runs is what LocalCluster refuses).
    const steps: string[] = [];
    let running = 0;
    const attempt: RestartAttempt = {
      start: async () => {
        steps.push(`start with ${running} running`);
        running += 1;
        await sleep(1);
        throw new Error('worker-1 was not ready within 0 s');
      },
      abandon: async () => {
        await sleep(1);
        if (running > 0) steps.push('stop');
        running = 0;
      },
    };
    await assert.rejects(
      restartWithin('worker-1', attempt, { deadlineMs: 10_000, retryMs: 1, maxAttempts: 3 }),
      /^Error: worker-1 not restarted in 3 attempts .*the last: worker-1 was not ready within 0 s$/,
    );
    assert.deepEqual(steps, [
      'start with 0 running',
      'stop',
      'start with 0 running',
      'stop',
      'start with 0 running',
      'stop',
    ]);
    assert.equal(running, 0, 'nothing left running once it failed');
  });

  void it('gives up when a failed attempt cannot be stopped, saying both', async () => {
    let starts = 0;
    await assert.rejects(
      restartWithin(
        'api-1',
        {
          start: () => {
            starts += 1;
            return Promise.reject(new Error('api-1 was not ready within 1 s'));
          },
          abandon: () => Promise.reject(new Error('no node api-1')),
        },
        { deadlineMs: 10_000, retryMs: 1, maxAttempts: 5 },
      ),
      /^Error: api-1 not restarted \(a failed attempt could not be stopped\) \(1 attempt\(s\) over [\d.]+ s\); the last: api-1 was not ready within 1 s; stopping it failed: no node api-1$/,
    );
    assert.equal(starts, 1, 'no attempt beside a process that may still run');
  });
});
