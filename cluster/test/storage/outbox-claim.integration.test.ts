/**
 * Claiming outbox rows on the real PostgreSQL: the oldest rows first, each claimed once even by
 * concurrent claimers, and through the primary key: a plan that scans the whole outbox makes a
 * fan-out's claims quadratic in its size (every 500-row claim of a 100,000-device fan-out read
 * every waiting row).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { withTransaction, type Queryable } from '../../storage/index.ts';
import { PgJournal } from '../../storage/pg-journal.ts';
import { createTestSchema, type TestSchema } from '../support/postgres.ts';
import { assertNoSeqScan } from '../support/explain.ts';

void describe('outbox claims', () => {
  let db: TestSchema;
  before(async () => {
    db = await createTestSchema();
  });
  after(async () => {
    await db.drop();
  });

  async function fill(count: number): Promise<void> {
    await db.pool.query('DELETE FROM outbox');
    await db.pool.query(
      `INSERT INTO outbox (client_id, reason) SELECT g, 'test' FROM generate_series(1, $1) g`,
      [count],
    );
    await db.pool.query('ANALYZE outbox');
  }

  void it('reads the outbox through its primary key, not a scan of every waiting row', async () => {
    await fill(20_000);
    let claimSql: string | undefined;
    let claimParams: unknown[] = [];
    const recording: Queryable = {
      query: ((text: string, params: unknown[]) => {
        claimSql = text;
        claimParams = params;
        return db.pool.query(text, params);
      }) as Queryable['query'],
    };
    const claimed = await new PgJournal(recording).claimOutboxRows(500);
    assert.equal(claimed.rows, 500);
    assert.ok(claimSql !== undefined);
    await assertNoSeqScan(db.pool, claimSql, claimParams, 'outbox', 2);
  });

  void it('claims the oldest rows first, and concurrent claimers never the same row', async () => {
    await fill(3_000);
    const claims = await Promise.all(
      Array.from({ length: 6 }, () =>
        withTransaction(db.pool, async (tx) => {
          const journal = new PgJournal(tx);
          const mine: string[] = [];
          for (;;) {
            const { clientIds } = await journal.claimOutboxRows(250);
            if (clientIds.length === 0) return mine;
            mine.push(...clientIds);
          }
        }),
      ),
    );
    const all = claims.flat().map(Number);
    assert.equal(all.length, 3_000);
    assert.equal(new Set(all).size, 3_000);
    const single = await new PgJournal(db.pool).claimOutboxRows(10);
    assert.equal(single.rows, 0);
    await fill(30);
    const first = await new PgJournal(db.pool).claimOutboxRows(10);
    // Which rows, not in which order they come back.
    assert.deepEqual(
      first.clientIds.map(Number).sort((a, b) => a - b),
      [1, 2, 3, 4, 5, 6, 7, 8, 9, 10],
    );
  });
});
