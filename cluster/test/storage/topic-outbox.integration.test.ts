/**
 * A rotation's outbox entries on the real PostgreSQL (migration 0008): one row per chunk of
 * members naming the topic and the chunk's id range, not one per member. A claim turns a chunk
 * into its members whose membership is still pending, takes as many chunks as fit in its limit
 * of devices (at least one), and says when it reached a limit, so several claimers share a
 * fan-out chunk by chunk.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import type { Queryable } from '../../storage/index.ts';
import { PgJournal } from '../../storage/pg-journal.ts';
import { TOPIC_OUTBOX_CHUNK } from '../../storage/pg-memberships.ts';
import { startHarness, type C2Harness } from '../support/c2-harness.ts';
import { assertNoSeqScan } from '../support/explain.ts';

const ctx = { actor: 'test' };

interface OutboxRow {
  client_id: string | null;
  topic_id: string | null;
  first_client_id: string | null;
  last_client_id: string | null;
}

void describe('topic outbox rows', () => {
  let h: C2Harness;
  before(async () => {
    h = await startHarness({ start: false });
  });
  after(async () => {
    await h.close();
  });

  async function outboxRows(): Promise<OutboxRow[]> {
    return (
      await h.schema.pool.query<OutboxRow>(
        `SELECT client_id::text, topic_id::text, first_client_id::text, last_client_id::text
         FROM outbox ORDER BY id`,
      )
    ).rows;
  }

  /** A topic whose `count` members are up to date, with an empty outbox. */
  async function topicWithMembers(
    count: number,
  ): Promise<{ name: string; id: string; members: string[] }> {
    const name = `outbox-${randomBytes(4).toString('hex')}`;
    await h.service.newTopic(ctx, name);
    const topic = await h.store.read.topics.byName(name);
    assert.ok(topic);
    // Clients and memberships in bulk: the API would take a while for a thousand devices.
    const members = (
      await h.schema.pool.query<{ id: string }>(
        `INSERT INTO clients (name, e4_id, key_version)
         SELECT $1 || '-' || g, decode(md5($1 || g), 'hex'), 1 FROM generate_series(1, $2) g
         RETURNING id::text`,
        [name, count],
      )
    ).rows.map((r) => r.id);
    await h.schema.pool.query(
      `INSERT INTO device_topics (client_id, topic_hash, topic_id, desired_version, delivered_version)
       SELECT c, $2, $3, $4, $4 FROM unnest($1::bigint[]) AS u(c)`,
      [members, Buffer.from(topic.topicHash), topic.id, topic.keyVersion],
    );
    await h.schema.pool.query('DELETE FROM outbox');
    return { name, id: topic.id, members };
  }

  void it('a rotation writes one row per chunk; a claim gives the members still pending', async () => {
    const { name, id, members } = await topicWithMembers(4);
    const rotated = await h.service.rotateTopicKey(ctx, name);
    assert.equal(rotated.members, 4);
    const sorted = [...members].sort((a, b) => Number(a) - Number(b));
    assert.deepEqual(await outboxRows(), [
      { client_id: null, topic_id: id, first_client_id: sorted[0], last_client_id: sorted[3] },
    ]);
    // One member got the new version already (a sweep, another node): it is not handed out.
    const [done, ...pending] = members;
    await h.schema.pool.query(
      'UPDATE device_topics SET delivered_version = desired_version WHERE client_id = $1',
      [done],
    );
    const claimed = await new PgJournal(h.schema.pool).claimOutboxRows(500);
    assert.deepEqual([claimed.rows, claimed.full], [1, true], 'one chunk: the chunk limit');
    assert.deepEqual([...claimed.clientIds].sort(), [...pending].sort());
    assert.deepEqual(await outboxRows(), []);
    const again = await new PgJournal(h.schema.pool).claimOutboxRows(500);
    assert.deepEqual([again.rows, again.clientIds, again.full], [0, [], false]);
  });

  void it('a large topic is shared out chunk by chunk, each member once', async () => {
    const count = 2 * TOPIC_OUTBOX_CHUNK + 100;
    const { name, members } = await topicWithMembers(count);
    await h.service.rotateTopicKey(ctx, name);
    const rows = await outboxRows();
    assert.equal(rows.length, 3, 'two full chunks and the rest');
    const journal = new PgJournal(h.schema.pool);
    const first = await journal.claimOutboxRows(TOPIC_OUTBOX_CHUNK);
    assert.deepEqual(
      [first.rows, first.clientIds.length, first.full],
      [1, TOPIC_OUTBOX_CHUNK, true],
    );
    const rest = await journal.claimOutboxRows(2 * TOPIC_OUTBOX_CHUNK);
    assert.deepEqual(
      [rest.rows, rest.clientIds.length, rest.full],
      [2, TOPIC_OUTBOX_CHUNK + 100, true],
    );
    const all = [...first.clientIds, ...rest.clientIds];
    assert.equal(new Set(all).size, count);
    assert.deepEqual(new Set(all), new Set(members));
    const none = await journal.claimOutboxRows(TOPIC_OUTBOX_CHUNK);
    assert.deepEqual([none.rows, none.full], [0, false]);
  });

  void it('turns a chunk into its members by an index range scan, not a scan of them all', async () => {
    const { name } = await topicWithMembers(20_000);
    await h.service.rotateTopicKey(ctx, name);
    await h.schema.pool.query('ANALYZE device_topics');
    await h.schema.pool.query('ANALYZE outbox');
    let claimSql = '';
    let claimParams: unknown[] = [];
    const recording: Queryable = {
      query: ((text: string, params: unknown[]) => {
        claimSql = text;
        claimParams = params;
        return h.schema.pool.query(text, params);
      }) as Queryable['query'],
    };
    const claimed = await new PgJournal(recording).claimOutboxRows(TOPIC_OUTBOX_CHUNK);
    assert.equal(claimed.clientIds.length, TOPIC_OUTBOX_CHUNK);
    await assertNoSeqScan(h.schema.pool, claimSql, claimParams, 'device_topics');
    await h.schema.pool.query('DELETE FROM outbox');
  });

  void it('a rotation of a topic without members writes no row', async () => {
    const { name } = await topicWithMembers(0);
    const rotated = await h.service.rotateTopicKey(ctx, name);
    assert.equal(rotated.members, 0);
    assert.deepEqual(await outboxRows(), []);
  });

  void it('device rows and chunk rows are claimed together, each up to its limit', async () => {
    const { name, members } = await topicWithMembers(3);
    const {
      members: [loner],
    } = await topicWithMembers(1);
    await h.service.rotateTopicKey(ctx, name);
    await h.schema.pool.query(`INSERT INTO outbox (client_id, reason) VALUES ($1, 'test')`, [
      loner,
    ]);
    const claimed = await new PgJournal(h.schema.pool).claimOutboxRows(10);
    assert.equal(claimed.rows, 2, 'the device row and the chunk');
    assert.equal(claimed.full, true, 'one chunk is all a claim of 10 devices may take');
    assert.deepEqual(new Set(claimed.clientIds), new Set([...members, loner]));
  });
});
