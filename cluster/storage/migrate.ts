/**
 * Versioned SQL migrations, safe when several nodes start at once: every runner takes the same
 * transaction-scoped advisory lock, so one applies the pending files and the others then find
 * nothing left to do.
 */
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Pool } from 'pg';
import { checkOut } from './pool.ts';

/** Lock id shared by every node of every deployment (any constant works; this one spells e4c2). */
const MIGRATION_LOCK_ID = 0x65346332;

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
        await client.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK_ID]);
        await client.query(`CREATE TABLE IF NOT EXISTS schema_migrations (
          version integer PRIMARY KEY,
          name text NOT NULL,
          applied_at timestamptz NOT NULL DEFAULT now()
        )`);
        const done = await client.query('SELECT 1 FROM schema_migrations WHERE version = $1', [
          migration.version,
        ]);
        if (done.rowCount === 0) {
          await client.query(migration.sql);
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
