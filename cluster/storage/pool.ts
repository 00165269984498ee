/** PostgreSQL connection pools and transactions. */
import pg from 'pg';
import { C2Error } from '../errors.ts';
import { isQueryReadTimeout, translateDatabaseFailure } from './pg-failures.ts';

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
  /**
   * Bounds every statement of this pool: PostgreSQL cancels one that runs longer
   * (`statement_timeout`), and when the server does not answer at all (a connection black-holed
   * by a partition or a failover, which TCP alone reports only after many minutes) the client
   * gives up {@link QUERY_READ_GRACE_MS} later and discards the connection. Both surface as
   * `C2_UNAVAILABLE`. Unset or 0: no bound (PostgreSQL's own `statement_timeout`).
   */
  readonly queryTimeoutMs?: number;
}

/**
 * How much longer than the statement timeout the client waits for an answer before it decides
 * the connection is dead: PostgreSQL's own cancellation, which leaves the connection usable,
 * normally comes first.
 */
export const QUERY_READ_GRACE_MS = 2000;

/**
 * Idle time before TCP keep-alive probes start on a connection (libuv then probes every second,
 * ten times): a pooled or listening connection whose server vanished is found dead in about
 * 20 s instead of the kernel's two hours.
 */
const KEEPALIVE_IDLE_MS = 10_000;

/** The pg settings of {@link PoolOptions.queryTimeoutMs}. */
function queryTimeoutSettings(
  timeoutMs: number | undefined,
): { statement_timeout: number; query_timeout: number } | Record<string, never> {
  return timeoutMs === undefined || timeoutMs === 0
    ? {}
    : { statement_timeout: timeoutMs, query_timeout: timeoutMs + QUERY_READ_GRACE_MS };
}

/** TCP keep-alive settings for every PostgreSQL connection of a node. */
export const PG_KEEPALIVE = {
  keepAlive: true,
  keepAliveInitialDelayMillis: KEEPALIVE_IDLE_MS,
} as const;

/** Query parameters of a connection URL whose values are secret (`pg` reads `password=`). */
const SECRET_PARAMETER = /pass|secret|token|key/i;

/** Describes a URL without its password (in the user part or the query), for messages. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    // A connection URL has no fragment: a `#` there is a password's, not percent-encoded, and
    // the parser split the password between user part, host and fragment. No part is safe.
    if (url.includes('#'))
      return `${u.protocol}//*** (not shown: a '#' in it, in a password, must be written %23)`;
    if (u.password !== '') u.password = '***';
    for (const name of [...u.searchParams.keys()])
      if (SECRET_PARAMETER.test(name)) u.searchParams.set(name, '***');
    return u.toString();
  } catch {
    return '(unparseable database URL)';
  }
}

/**
 * Why a first connection failed, as `: <reason>`, from what cannot hold a secret: PostgreSQL's
 * own refusal (`database "x" does not exist`, `password authentication failed for user "c2"`:
 * the server never repeats a password) or a system error code (`ECONNREFUSED`). A database that
 * does not exist was reported as unreachable, with the reason only in the JSON log.
 */
function whyNoConnection(cause: unknown): string {
  if (!(cause instanceof Error)) return '';
  const code = (cause as { code?: unknown }).code;
  if (typeof code !== 'string') return /timeout/i.test(cause.message) ? ': no answer in time' : '';
  if (/^[0-9A-Z]{5}$/.test(code)) return `: ${cause.message}`;
  return /^E[A-Z]+$/.test(code) ? `: ${code}` : '';
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
    ...PG_KEEPALIVE,
    ...queryTimeoutSettings(options.queryTimeoutMs),
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
    throw new C2Error(
      'C2_UNAVAILABLE',
      `cannot reach Postgres at ${redactUrl(options.url)}${whyNoConnection(cause)}`,
      { cause },
    );
  }
  return pool;
}

/** A query runner: the pool, or a client inside a transaction. */
export type Queryable = Pick<pg.Pool | pg.PoolClient, 'query'>;

/**
 * Runs `work` in a transaction and commits, or rolls back on any error and rethrows it.
 * Serialization failures and deadlocks are retried a few times, since they are expected under
 * concurrent rotations and a retry is always safe (nothing ran outside the transaction).
 * A lost or silent database connection is thrown as `C2_UNAVAILABLE` (see
 * {@link databaseUnavailable}); after a client-side read timeout the connection is discarded
 * without a ROLLBACK, which would only queue behind the statement that never got an answer
 * (PostgreSQL rolls the transaction back when the connection closes).
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
      if (isQueryReadTimeout(err)) {
        broken = true;
      } else {
        await client.query('ROLLBACK').catch(() => {
          broken = true;
        });
      }
      const code = (err as { code?: string }).code;
      if ((code === '40001' || code === '40P01') && attempt < 5) continue;
      throw translateDatabaseFailure(err);
    } finally {
      client.checkIn(broken);
    }
  }
}

/**
 * A query runner over `db` whose database availability failures are thrown as `C2_UNAVAILABLE`
 * (see {@link databaseUnavailable}); every other error passes unchanged.
 */
export function translatingFailures(db: Queryable): Queryable {
  const run = db.query.bind(db) as (...args: unknown[]) => Promise<unknown>;
  const query = (...args: unknown[]): Promise<unknown> =>
    run(...args).catch((err: unknown) => {
      throw translateDatabaseFailure(err);
    });
  // pg's overloads cannot be spelled out for a forwarder; every repository call is promise-style.
  return { query } as unknown as Queryable;
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
  const client = await pool.connect().catch((err: unknown) => {
    throw translateDatabaseFailure(err);
  });
  const ignore = (): void => undefined;
  client.on('error', ignore);
  return Object.assign(client, {
    checkIn(broken = false): void {
      client.removeListener('error', ignore);
      client.release(broken);
    },
  });
}
