/**
 * Versioned SQL migrations, safe when several nodes start at once: every runner takes the same
 * transaction-scoped advisory lock, so one applies the pending files and the others then find
 * nothing left to do.
 */
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Pool, QueryConfig } from 'pg';
import { checkOut } from './pool.ts';

/** Lock id shared by every node of every deployment (any constant works; this one spells e4c2). */
const MIGRATION_LOCK_ID = 0x65346332;

/**
 * The client-side read timeout of the statements that may run long (the longest timer Node
 * allows, about 24 days): pg reads a per-query 0 as "use the pool's".
 */
const UNBOUNDED_READ_MS = 2_147_483_647;

/** A statement whose answer the client waits for without the pool's read timeout. */
function unboundedRead(text: string, values: unknown[] = []): QueryConfig {
  // pg reads `query_timeout` per query; @types/pg does not declare it.
  const config = { text, values, query_timeout: UNBOUNDED_READ_MS };
  return config;
}

/** The bundled migration files. */
export const MIGRATIONS_DIR = new URL('./migrations', import.meta.url).pathname;

/** One migration file: `NNNN_description.sql`. */
export interface Migration {
  readonly version: number;
  readonly name: string;
  readonly sql: string;
}

/** Reads and orders the migration files of `dir`. @throws Error for a badly named file */
export async function loadMigrations(dir: string = MIGRATIONS_DIR): Promise<Migration[]> {
  const files = (await readdir(dir)).filter((f) => f.endsWith('.sql')).sort();
  const migrations: Migration[] = [];
  for (const file of files) {
    const match = /^(\d{4})_([a-z0-9_]+)\.sql$/.exec(file);
    if (match?.[1] === undefined || match[2] === undefined) {
      throw new Error(`migration file ${file} is not named NNNN_description.sql`);
    }
    migrations.push({
      version: Number(match[1]),
      name: match[2],
      sql: await readFile(join(dir, file), 'utf8'),
    });
  }
  migrations.forEach((m, i) => {
    if (m.version !== i + 1)
      throw new Error(`migration versions must be 1..N without gaps (${m.version})`);
  });
  return migrations;
}

/** SQLSTATE of a privilege the role lacks. */
const INSUFFICIENT_PRIVILEGE = '42501';

/**
 * Creates `schema` (the one the pool's `search_path` names, `E4C2_DB_SCHEMA`) when it does not
 * exist yet, so that a node pointed at a new schema starts instead of failing its first
 * migration with PostgreSQL's "no schema has been selected to create in". Serialised with the
 * migrations' lock, since two nodes creating it at once would collide. Nothing is asked of an
 * existing schema: PostgreSQL checks the CREATE privilege on the database before it looks for
 * the schema, and a deployment's role need not have it.
 * @returns whether this call created the schema
 * @throws Error naming the schema when it is missing and the role may not create it
 */
export async function ensureSchema(pool: Pool, schema: string): Promise<boolean> {
  const client = await checkOut(pool);
  try {
    await client.query('BEGIN');
    try {
      await client.query(unboundedRead('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK_ID]));
      const found = await client.query('SELECT 1 FROM pg_namespace WHERE nspname = $1', [schema]);
      if (found.rowCount === 0) await client.query(`CREATE SCHEMA ${quoteIdentifier(schema)}`);
      await client.query('COMMIT');
      return found.rowCount === 0;
    } catch (err) {
      await client.query('ROLLBACK');
      if ((err as { code?: unknown }).code === INSUFFICIENT_PRIVILEGE) {
        throw new Error(
          `the database schema "${schema}" (E4C2_DB_SCHEMA) does not exist and the database role may not create it: create it (CREATE SCHEMA ${quoteIdentifier(schema)}) or grant the role CREATE on the database`,
          { cause: err },
        );
      }
      throw err;
    }
  } finally {
    client.checkIn();
  }
}

/** `name` as a quoted SQL identifier. */
function quoteIdentifier(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

/**
 * Applies every pending migration in the pool's current schema, each in its own transaction.
 * @returns the versions applied by this call (empty when the schema was up to date)
 */
export async function migrate(pool: Pool, migrations?: readonly Migration[]): Promise<number[]> {
  const all = migrations ?? (await loadMigrations());
  const applied: number[] = [];
  const client = await checkOut(pool);
  try {
    for (const migration of all) {
      await client.query('BEGIN');
      try {
        // A migration may rebuild a large table, and a node waits here while another migrates:
        // neither is bounded by the pool's statement timeout (E4C2_DB_QUERY_TIMEOUT_MS).
        await client.query('SET LOCAL statement_timeout = 0');
        await client.query(unboundedRead('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK_ID]));
        await client.query(`CREATE TABLE IF NOT EXISTS schema_migrations (
          version integer PRIMARY KEY,
          name text NOT NULL,
          applied_at timestamptz NOT NULL DEFAULT now()
        )`);
        const done = await client.query('SELECT 1 FROM schema_migrations WHERE version = $1', [
          migration.version,
        ]);
        if (done.rowCount === 0) {
          await client.query(unboundedRead(migration.sql));
          await client.query('INSERT INTO schema_migrations (version, name) VALUES ($1, $2)', [
            migration.version,
            migration.name,
          ]);
          applied.push(migration.version);
        }
        await client.query('COMMIT');
      } catch (err) {
        await client.query('ROLLBACK');
        throw new Error(`migration ${migration.version} (${migration.name}) failed`, {
          cause: err,
        });
      }
    }
  } finally {
    client.checkIn();
  }
  return applied;
}
