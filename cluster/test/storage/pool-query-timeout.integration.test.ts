/**
 * A node's statements are bounded (`queryTimeoutMs`): a statement that runs too long is
 * cancelled by PostgreSQL, and a connection that never answers (its server gone behind a
 * partition or a failover: TCP says nothing for many minutes) is given up and replaced. Both are
 * `C2_UNAVAILABLE`, and the pool goes on. Real PostgreSQL, reached directly or through a
 * forwarder that can turn into a black hole.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type pg from 'pg';
import { C2Error } from '../../errors.ts';
import {
  createPool,
  migrate,
  PgC2Store,
  PgDataKeyStore,
  QUERY_READ_GRACE_MS,
  withTransaction,
} from '../../storage/index.ts';
import { BlackholeProxy } from '../support/blackhole-proxy.ts';
import { pendingAfter } from '../support/eventually.ts';
import { createTestSchema, TEST_DATABASE_URL, type TestSchema } from '../support/postgres.ts';

/** The bound these tests give their pools. */
const TIMEOUT_MS = 500;

/** `TEST_DATABASE_URL` pointed at `port` on loopback. */
function urlThrough(port: number): string {
  const url = new URL(TEST_DATABASE_URL);
  url.hostname = '127.0.0.1';
  url.port = String(port);
  return url.toString();
}

/** Asserts that `promise` rejects with `C2_UNAVAILABLE`; returns the error. */
async function rejectsUnavailable(promise: Promise<unknown>): Promise<C2Error> {
  const err = await promise.then(
    () => assert.fail('expected C2_UNAVAILABLE, got a result'),
    (e: unknown) => e,
  );
  assert.ok(C2Error.is(err, 'C2_UNAVAILABLE'), `expected C2_UNAVAILABLE, got ${String(err)}`);
  return err;
}

void describe('pool: bounded statements', () => {
  let db: TestSchema;
  let pools: pg.Pool[] = [];
  let proxies: BlackholeProxy[] = [];
  before(async () => {
    db = await createTestSchema();
  });
  after(async () => {
    for (const proxy of proxies) await proxy.close();
    for (const pool of pools) await pool.end().catch(() => undefined);
    pools = [];
    proxies = [];
    await db.drop();
  });

  async function pool(
    options: { queryTimeoutMs?: number; through?: BlackholeProxy } = {},
  ): Promise<pg.Pool> {
    const p = await createPool({
      url: options.through === undefined ? TEST_DATABASE_URL : urlThrough(options.through.port),
      schema: db.schema,
      max: 1,
      ...(options.queryTimeoutMs === undefined ? {} : { queryTimeoutMs: options.queryTimeoutMs }),
    });
    pools.push(p);
    return p;
  }

  async function proxy(): Promise<BlackholeProxy> {
    const url = new URL(TEST_DATABASE_URL);
    const p = await BlackholeProxy.start({ host: url.hostname, port: Number(url.port || 5432) });
    proxies.push(p);
    return p;
  }

  async function backendPid(p: pg.Pool): Promise<number> {
    const result = await p.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
    const pid = result.rows[0]?.pid;
    assert.ok(pid !== undefined, 'a backend pid');
    return pid;
  }

  void it('a statement over the bound is cancelled by PostgreSQL; the connection stays', async () => {
    const bounded = await pool({ queryTimeoutMs: TIMEOUT_MS });
    const pid = await backendPid(bounded);
    const err = await rejectsUnavailable(
      withTransaction(bounded, (tx) => tx.query('SELECT pg_sleep(5)')),
    );
    assert.match(err.message, /E4C2_DB_QUERY_TIMEOUT_MS/);
    assert.equal((err.cause as { code?: string }).code, '57014', 'query_canceled');
    // The server's cancellation leaves the connection usable: the same session goes on.
    assert.equal(await backendPid(bounded), pid);
  });

  void it('a connection that never answers is given up, without a ROLLBACK, and replaced', async () => {
    const hole = await proxy();
    const bounded = await pool({ queryTimeoutMs: TIMEOUT_MS, through: hole });
    const pid = await backendPid(bounded);
    /** Every statement the transaction's client was asked to run after the link went silent. */
    const asked: string[] = [];
    const transaction = withTransaction(bounded, async (tx) => {
      const query = tx.query.bind(tx) as (text: string) => Promise<unknown>;
      Object.assign(tx, {
        query: (text: string) => {
          asked.push(text);
          return query(text);
        },
      });
      hole.blackhole(true);
      await tx.query('SELECT 1');
    });
    // Bounded: without the timeout this waits for ever (the last test).
    assert.equal(
      await pendingAfter(transaction, TIMEOUT_MS + QUERY_READ_GRACE_MS + 5000),
      false,
      'the transaction gave up',
    );
    const err = await rejectsUnavailable(transaction);
    assert.match(err.message, /did not answer in time/);
    assert.match(Buffer.concat(hole.droppedFromClients).toString('latin1'), /SELECT 1/);
    // A ROLLBACK would only queue behind the silent SELECT and wait out a second timeout.
    assert.deepEqual(asked, ['SELECT 1'], 'no ROLLBACK');
    hole.blackhole(false);
    // The dead connection was discarded: the pool opens a new session and goes on.
    assert.notEqual(await backendPid(bounded), pid);
    assert.equal(bounded.totalCount, 1);
  });

  void it('reads outside a transaction are bounded and reported the same way', async () => {
    const hole = await proxy();
    const bounded = await pool({ queryTimeoutMs: TIMEOUT_MS, through: hole });
    const store = new PgC2Store(bounded);
    assert.equal(await store.read.clients.count(), 0);
    hole.blackhole(true);
    await rejectsUnavailable(store.read.clients.count());
    // So are the key vault's reloads of its data keys.
    await rejectsUnavailable(new PgDataKeyStore(bounded).list());
    hole.blackhole(false);
    assert.equal(await store.read.clients.count(), 0);
  });

  void it('a statement that fails for another reason keeps its own error', async () => {
    const bounded = await pool({ queryTimeoutMs: TIMEOUT_MS });
    const err = await withTransaction(bounded, (tx) => tx.query('SELECT * FROM no_such_table'))
      .then(() => undefined)
      .catch((e: unknown) => e);
    assert.ok(!C2Error.is(err), 'not turned into a C2Error');
    assert.equal((err as { code?: string }).code, '42P01');
  });

  void it('migrations are not bounded', async () => {
    const fresh = await createTestSchema(false);
    try {
      const bounded = await createPool({
        url: TEST_DATABASE_URL,
        schema: fresh.schema,
        max: 1,
        queryTimeoutMs: 200,
      });
      try {
        const applied = await migrate(bounded, [
          { version: 1, name: 'slow', sql: 'SELECT pg_sleep(1)' },
        ]);
        assert.deepEqual(applied, [1]);
      } finally {
        await bounded.end();
      }
    } finally {
      await fresh.drop();
    }
  });

  void it('without the bound, a connection that never answers keeps the caller waiting', async () => {
    const hole = await proxy();
    const unbounded = await pool({ through: hole });
    await backendPid(unbounded);
    hole.blackhole(true);
    const query = unbounded.query('SELECT 1');
    assert.equal(
      await pendingAfter(query, TIMEOUT_MS + QUERY_READ_GRACE_MS + 1000),
      true,
      'still waiting',
    );
    // Only the connection's end releases it.
    await hole.close();
    await assert.rejects(query);
  });
});
