/**
 * The migrated schema's indexes, on the real PostgreSQL: every foreign key can be followed from
 * the referenced row without reading the whole referencing table (client and topic removals
 * cascade through them).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createTestSchema, type TestSchema } from '../support/postgres.ts';

void describe('schema indexes', () => {
  let db: TestSchema;
  before(async () => {
    db = await createTestSchema();
  });
  after(async () => {
    await db.drop();
  });

  void it('back every foreign key with an index that leads with its columns', async () => {
    // An index serves a foreign key when its first columns are exactly the key's columns, in
    // any order. Without one, every delete or key change of a referenced row reads the whole
    // referencing table (ON DELETE CASCADE included).
    const unindexed = await db.pool.query<{ tbl: string; conname: string }>(
      `SELECT c.conrelid::regclass::text AS tbl, c.conname
         FROM pg_constraint c
        WHERE c.contype = 'f' AND c.connamespace = current_schema()::regnamespace
          AND NOT EXISTS (
            SELECT 1 FROM pg_index i
             WHERE i.indrelid = c.conrelid
               AND (i.indkey::int2[])[0:cardinality(c.conkey) - 1] @> c.conkey
               AND (i.indkey::int2[])[0:cardinality(c.conkey) - 1] <@ c.conkey)
        ORDER BY 1, 2`,
    );
    const keys = await db.pool.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM pg_constraint
        WHERE contype = 'f' AND connamespace = current_schema()::regnamespace`,
    );
    assert.ok((keys.rows[0]?.n ?? 0) >= 10, 'the query sees the schema and its foreign keys');
    assert.deepEqual(
      unindexed.rows.map((r) => `${r.tbl}.${r.conname}`),
      [],
      'foreign keys without an index',
    );
  });

  void it("removes a client without reading every device's traffic rows", async () => {
    // 5,000 devices seen on 4 topics: the table a public-key fleet's monitor fills.
    await db.pool.query(
      `INSERT INTO clients (name, e4_id, key_version)
       SELECT 'dev-' || g, decode(lpad(to_hex(g), 32, '0'), 'hex'), 1
         FROM generate_series(1, 5000) g`,
    );
    await db.pool.query(
      `INSERT INTO topics (name, topic_hash, key_version)
       SELECT 'topic-' || g, decode(lpad(to_hex(g), 32, '0'), 'hex'), 1
         FROM generate_series(1, 4) g`,
    );
    await db.pool.query(
      `INSERT INTO device_topic_traffic (client_id, topic_id, key_version, last_at)
       SELECT c.id, t.id, 1, now() FROM clients c CROSS JOIN topics t`,
    );
    await db.pool.query('ANALYZE device_topic_traffic');
    // The cascade runs inside PostgreSQL, out of EXPLAIN's sight: its scans are counted instead.
    // A backend reports its counts when idle; force that, then read a fresh snapshot.
    const session = await db.pool.connect();
    try {
      const scans = async (): Promise<number> => {
        await session.query('SELECT pg_stat_force_next_flush()');
        await session.query('SELECT pg_stat_clear_snapshot()');
        const r = await session.query<{ n: string }>(
          `SELECT seq_scan AS n FROM pg_stat_user_tables WHERE relid = 'device_topic_traffic'::regclass`,
        );
        return Number(r.rows[0]?.n);
      };
      const before = await scans();
      const removed = await session.query(`DELETE FROM clients WHERE name = 'dev-2500'`);
      assert.equal(removed.rowCount, 1);
      assert.equal(await scans(), before, 'sequential scans of device_topic_traffic');
      const left = await session.query<{ n: number }>(
        'SELECT count(*)::int AS n FROM device_topic_traffic',
      );
      assert.equal(left.rows[0]?.n, 4999 * 4, "the client's rows went with it, and only those");
    } finally {
      session.release();
    }
  });
});
