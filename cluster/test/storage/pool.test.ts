/**
 * Transactions when the database connection dies mid-query (a Postgres restart or failover):
 * the transaction fails with an error, the process survives, and the pool recovers.
 * Regression test: pg-pool drops its 'error' listener on checkout, and the unhandled 'error'
 * event of a terminated connection used to crash API nodes (found by the chaos suite).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { C2Error } from '../../errors.ts';
import { withTransaction } from '../../storage/pool.ts';
import { createTestSchema, TEST_DATABASE_URL, type TestSchema } from '../support/postgres.ts';

void describe('withTransaction', () => {
  let schema: TestSchema;
  let admin: pg.Client;
  before(async () => {
    schema = await createTestSchema(false);
    admin = new pg.Client({ connectionString: TEST_DATABASE_URL });
    await admin.connect();
  });
  after(async () => {
    await admin.end();
    await schema.drop();
  });

  void it('fails cleanly when its connection is terminated mid-query, and the pool recovers', async () => {
    const uncaught: unknown[] = [];
    const onUncaught = (err: unknown): void => {
      uncaught.push(err);
    };
    process.on('uncaughtException', onUncaught);
    try {
      const running = withTransaction(schema.pool, async (tx) => {
        const { rows } = await tx.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
        const pid = rows[0]?.pid;
        setTimeout(() => {
          void admin.query('SELECT pg_terminate_backend($1)', [pid]);
        }, 100);
        await tx.query('SELECT pg_sleep(10)');
      });
      // Reported as the database being unavailable (retry), the driver's error kept as cause.
      await assert.rejects(running, (err: unknown) => {
        assert.ok(C2Error.is(err, 'C2_UNAVAILABLE'), String(err));
        assert.match(String(err.cause), /terminat/i);
        return true;
      });
      // Give a late 'error' event the chance to surface.
      await new Promise((resolve) => setTimeout(resolve, 200));
      assert.deepEqual(uncaught, []);
      const answer = await withTransaction(schema.pool, (tx) =>
        tx.query<{ one: number }>('SELECT 1 AS one'),
      );
      assert.equal(answer.rows[0]?.one, 1);
    } finally {
      process.off('uncaughtException', onUncaught);
    }
  });
});
