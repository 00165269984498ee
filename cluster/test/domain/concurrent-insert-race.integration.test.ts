/**
 * A client's and a topic's names each have a second unique column derived from them (`e4_id`,
 * `topic_hash`). Concurrent creations of one name raced on that column: the insert's conflict
 * clause covered the name only, so a loser that reached the derived column's index first failed
 * with a unique violation (a 500) instead of taking the existing-row path (seen once in CI).
 * Many rounds of concurrent creations make the race likely; every call must succeed.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { startHarness, type C2Harness } from '../support/c2-harness.ts';

const ctx = { actor: 'test' };
const ROUNDS = 40;
const CALLS = 8;

void describe('concurrent creation of one name, many rounds', () => {
  let h: C2Harness;
  before(async () => {
    h = await startHarness({ start: false });
  });
  after(async () => {
    await h.close();
  });

  void it('NewClient: no call fails', async () => {
    for (let round = 0; round < ROUNDS; round++) {
      const name = `race-client-${randomBytes(4).toString('hex')}`;
      const results = await Promise.allSettled(
        Array.from({ length: CALLS }, () =>
          h.service.newClient(ctx, name, new Uint8Array(randomBytes(32))),
        ),
      );
      const failed = results.filter((r) => r.status === 'rejected');
      assert.deepEqual(failed, [], `round ${round}: no call failed`);
    }
  });

  void it('NewTopic: no call fails', async () => {
    for (let round = 0; round < ROUNDS; round++) {
      const name = `race/topic-${randomBytes(4).toString('hex')}`;
      const results = await Promise.allSettled(
        Array.from({ length: CALLS }, () => h.service.newTopic(ctx, name)),
      );
      const failed = results.filter((r) => r.status === 'rejected');
      assert.deepEqual(failed, [], `round ${round}: no call failed`);
    }
  });
});
