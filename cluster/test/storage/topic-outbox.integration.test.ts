/**
 * A rotation's outbox entry on the real PostgreSQL: one row naming the topic, not one per member
 * (migration 0008), which a claim turns into the members whose membership is still pending, and
 * a paging count that counts outbox rows, not devices.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { randomSymKey } from '../../../e4/index.ts';
import { PgJournal } from '../../storage/pg-journal.ts';
import { startHarness, type C2Harness } from '../support/c2-harness.ts';

const ctx = { actor: 'test' };

void describe('topic outbox rows', () => {
  let h: C2Harness;
  before(async () => {
    h = await startHarness({ start: false });
  });
  after(async () => {
    await h.close();
  });

  async function outboxRows(): Promise<
    Array<{ client_id: string | null; topic_id: string | null }>
  > {
    return (
      await h.schema.pool.query<{ client_id: string | null; topic_id: string | null }>(
        'SELECT client_id::text, topic_id::text FROM outbox ORDER BY id',
      )
    ).rows;
  }

  void it('a rotation writes one row for its topic; a claim gives the members still pending', async () => {
    const topic = `outbox-${randomBytes(4).toString('hex')}`;
    await h.service.newTopic(ctx, topic);
    const ids: string[] = [];
    for (let i = 0; i < 4; i++) {
      const name = `${topic}-dev-${i}`;
      await h.service.newClient(ctx, name, randomSymKey());
      await h.service.newTopicClient(ctx, name, topic);
      const row = await h.store.read.clients.byName(name);
      assert.ok(row);
      ids.push(row.id);
    }
    await h.schema.pool.query('DELETE FROM outbox');
    // As if every member had received the current version.
    await h.schema.pool.query(
      'UPDATE device_topics SET delivered_version = desired_version WHERE client_id = ANY($1)',
      [ids],
    );
    const topicRow = await h.store.read.topics.byName(topic);
    assert.ok(topicRow);

    const rotated = await h.service.rotateTopicKey(ctx, topic);
    assert.equal(rotated.members, 4);
    assert.deepEqual(await outboxRows(), [{ client_id: null, topic_id: topicRow.id }]);

    // One member got the new version already (a sweep, another node): it is not handed out.
    const [done, ...pending] = ids;
    await h.schema.pool.query(
      'UPDATE device_topics SET delivered_version = desired_version WHERE client_id = $1',
      [done],
    );
    const claimed = await new PgJournal(h.schema.pool).claimOutboxRows(10);
    assert.equal(claimed.rows, 1, 'paged by outbox rows');
    assert.deepEqual([...claimed.clientIds].sort(), [...pending].sort());
    assert.deepEqual(await outboxRows(), []);
    const again = await new PgJournal(h.schema.pool).claimOutboxRows(10);
    assert.deepEqual([again.rows, again.clientIds], [0, []]);
  });

  void it('a rotation of a topic without members writes no row', async () => {
    const topic = `outbox-${randomBytes(4).toString('hex')}`;
    await h.service.newTopic(ctx, topic);
    await h.schema.pool.query('DELETE FROM outbox');
    const rotated = await h.service.rotateTopicKey(ctx, topic);
    assert.equal(rotated.members, 0);
    assert.deepEqual(await outboxRows(), []);
  });
});
