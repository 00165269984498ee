/**
 * Test isolation for PostgreSQL: each test file gets its own schema in the `test` database of
 * the machine's Postgres (TEST_DATABASE_URL overrides), dropped in `after`.
 */
import { randomBytes } from 'node:crypto';
import type pg from 'pg';
import { createPool, migrate } from '../../storage/index.ts';

/** The database tests use. */
export const TEST_DATABASE_URL =
  process.env['TEST_DATABASE_URL'] ?? 'postgres://postgres@127.0.0.1:5432/test';

/** A private, migrated schema and a pool bound to it. */
export interface TestSchema {
  readonly pool: pg.Pool;
  readonly schema: string;
  /** Drops the schema and closes the pool. */
  drop(): Promise<void>;
}

/** Creates a fresh schema; `migrated` (default true) applies the C2 migrations to it. */
export async function createTestSchema(migrated = true): Promise<TestSchema> {
  const schema = `t_${randomBytes(6).toString('hex')}`;
  const admin = await createPool({ url: TEST_DATABASE_URL, max: 1 });
  await admin.query(`CREATE SCHEMA ${schema}`);
  await admin.end();
  const pool = await createPool({ url: TEST_DATABASE_URL, schema, max: 5 });
  if (migrated) await migrate(pool);
  return {
    pool,
    schema,
    async drop() {
      await pool.end();
      const cleanup = await createPool({ url: TEST_DATABASE_URL, max: 1 });
      await cleanup.query(`DROP SCHEMA ${schema} CASCADE`);
      await cleanup.end();
    },
  };
}
