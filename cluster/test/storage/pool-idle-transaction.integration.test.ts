/**
 * A node that goes silent inside a transaction (power loss, a partition: PostgreSQL sees an open
 * connection that says nothing) must not hold its row locks for long: the pool asks PostgreSQL to
 * end such sessions after `idleInTransactionTimeoutMs`. Real PostgreSQL.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type pg from 'pg';
import { createPool } from '../../storage/index.ts';
import { createTestSchema, TEST_DATABASE_URL, type TestSchema } from '../support/postgres.ts';

void describe('pool: sessions idle in a transaction', () => {
  let db: TestSchema;
  before(async () => {
    db = await createTestSchema(false);
    await db.pool.query('CREATE TABLE counters (id int PRIMARY KEY, n int NOT NULL)');
    await db.pool.query('INSERT INTO counters VALUES (1, 0)');
  });
  after(async () => {
    await db.drop();
  });

  /** Locks the row in a transaction on `pool`, then goes silent; returns the held client. */
  async function lockAndGoSilent(pool: pg.Pool): Promise<pg.PoolClient> {
    const client = await pool.connect();
    // The pool's own error listener is gone while checked out: PostgreSQL ending the session
    // must not crash the test process.
    client.on('error', () => undefined);
    await client.query('BEGIN');
    await client.query('SELECT n FROM counters WHERE id = 1 FOR UPDATE');
    return client;
  }

  /** Updates the row from the test's own pool, waiting at most `waitMs` for its lock. */
  async function updateWithin(waitMs: number): Promise<void> {
    const other = await db.pool.connect();
    try {
      await other.query(`SET lock_timeout = ${waitMs}`);
      await other.query('UPDATE counters SET n = n + 1 WHERE id = 1');
    } finally {
      await other.query('RESET lock_timeout');
      other.release();
    }
  }

  void it('ends a silent transaction after the timeout, releasing its locks', async () => {
    const silent = await createPool({
      url: TEST_DATABASE_URL,
      schema: db.schema,
      max: 1,
      idleInTransactionTimeoutMs: 1000,
    });
    try {
      const held = await lockAndGoSilent(silent);
      // Without the timeout this waits for the lock and fails after 10 s (the next test).
      await updateWithin(10_000);
      await assert.rejects(held.query('SELECT 1'), 'the silent session was ended');
      held.release(true);
      // The pool itself goes on with a fresh connection.
      const row = await silent.query<{ n: number }>('SELECT n FROM counters WHERE id = 1');
      assert.equal(row.rows[0]?.n, 1);
    } finally {
      await silent.end();
    }
  });

  void it("without it, a silent transaction keeps its locks (PostgreSQL's default)", async () => {
    const silent = await createPool({ url: TEST_DATABASE_URL, schema: db.schema, max: 1 });
    try {
      const held = await lockAndGoSilent(silent);
      await assert.rejects(updateWithin(1500), /lock timeout/);
      await held.query('ROLLBACK');
      held.release();
    } finally {
      await silent.end();
    }
  });
});
