/** PostgreSQL connection pools and transactions. */
import pg from 'pg';
import { C2Error } from '../errors.ts';

/** Options of {@link createPool}. */
export interface PoolOptions {
  /** postgres:// URL; may hold a password, so it never appears in errors or logs. */
  readonly url: string;
  readonly max?: number;
  /** Schema to use as search_path (tests isolate themselves with one schema each). */
  readonly schema?: string;
  readonly applicationName?: string;
  /**
   * PostgreSQL ends a session of this pool that stays idle inside a transaction for longer
   * (`idle_in_transaction_session_timeout`), releasing its row locks. A node that vanishes
   * without closing its connection (power loss, a partition) would otherwise keep the locks of
   * its open transaction until PostgreSQL's TCP keep-alive notices, two hours by default, and
   * block every rotation of that topic meanwhile. Unset or 0: PostgreSQL's own setting.
   */
  readonly idleInTransactionTimeoutMs?: number;
}

/** Describes a URL without its password, for messages. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password !== '') u.password = '***';
    return u.toString();
  } catch {
    return '(unparseable database URL)';
  }
}

/**
 * Creates a pool and checks that the database answers, so an unreachable Postgres is a clear
 * error at start-up ("cannot reach Postgres at ..."), never a hang.
 * @throws C2Error `C2_UNAVAILABLE` when the first connection fails
 */
export async function createPool(options: PoolOptions): Promise<pg.Pool> {
  const pool = new pg.Pool({
    connectionString: options.url,
    max: options.max ?? 10,
    connectionTimeoutMillis: 5000,
    application_name: options.applicationName ?? 'e4c2',
    ...(options.idleInTransactionTimeoutMs === undefined || options.idleInTransactionTimeoutMs === 0
      ? {}
      : { idle_in_transaction_session_timeout: options.idleInTransactionTimeoutMs }),
    ...(options.schema === undefined ? {} : { options: `-c search_path=${options.schema}` }),
  });
  // An idle client that dies (Postgres restart) must not crash the process: the pool drops it.
  pool.on('error', () => undefined);
  try {
    await pool.query('SELECT 1');
  } catch (cause) {
    await pool.end().catch(() => undefined);
    throw new C2Error('C2_UNAVAILABLE', `cannot reach Postgres at ${redactUrl(options.url)}`, {
      cause,
    });
  }
  return pool;
}

/** A query runner: the pool, or a client inside a transaction. */
export type Queryable = Pick<pg.Pool | pg.PoolClient, 'query'>;

/**
 * Runs `work` in a transaction and commits, or rolls back on any error and rethrows it.
 * Serialization failures and deadlocks are retried a few times, since they are expected under
 * concurrent rotations and a retry is always safe (nothing ran outside the transaction).
 */
export async function withTransaction<T>(
  pool: pg.Pool,
  work: (tx: pg.PoolClient) => Promise<T>,
): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    const client = await checkOut(pool);
    let broken = false;
    try {
      await client.query('BEGIN');
      const result = await work(client);
      await client.query('COMMIT');
      return result;
    } catch (err) {
      await client.query('ROLLBACK').catch(() => {
        broken = true;
      });
      const code = (err as { code?: string }).code;
      if ((code === '40001' || code === '40P01') && attempt < 5) continue;
      throw err;
    } finally {
      client.checkIn(broken);
    }
  }
}

/** A checked-out client that cannot crash the process, and its way back to the pool. */
export type CheckedOutClient = pg.PoolClient & { checkIn(broken?: boolean): void };

/**
 * `pool.connect()` with an `'error'` listener for the time the client is out. pg-pool removes
 * its own listener on checkout, so a server that dies mid-query (a Postgres restart, a failover)
 * would otherwise emit an unhandled `'error'` and kill the process (found by the chaos suite).
 * The query in flight still fails with the error; `checkIn(true)` discards the connection.
 */
export async function checkOut(pool: pg.Pool): Promise<CheckedOutClient> {
  const client = await pool.connect();
  const ignore = (): void => undefined;
  client.on('error', ignore);
  return Object.assign(client, {
    checkIn(broken = false): void {
      client.removeListener('error', ignore);
      client.release(broken);
    },
  });
}
