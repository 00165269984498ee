/** Migrations on the real PostgreSQL: ordering, idempotence, and several nodes starting at once. */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import type pg from 'pg';
import { createPool, ensureSchema, loadMigrations, migrate } from '../../storage/index.ts';
import { createTestSchema, TEST_DATABASE_URL } from '../support/postgres.ts';

void describe('migrations', () => {
  void it('apply once even when several nodes migrate concurrently', async () => {
    const schema = await createTestSchema(false);
    const others = await Promise.all(
      [1, 2, 3].map(() => createPool({ url: TEST_DATABASE_URL, schema: schema.schema, max: 2 })),
    );
    try {
      const results = await Promise.all([migrate(schema.pool), ...others.map((p) => migrate(p))]);
      const all = (await loadMigrations()).map((m) => m.version);
      assert.deepEqual(
        results.flat().sort((a, b) => a - b),
        all,
        'every migration applied exactly once in total',
      );
      assert.deepEqual(await migrate(schema.pool), [], 'a later run has nothing to do');
      const rows = await schema.pool.query(
        'SELECT version FROM schema_migrations ORDER BY version',
      );
      assert.deepEqual(
        rows.rows.map((r: { version: number }) => r.version),
        all,
      );
    } finally {
      await Promise.all(others.map((p) => p.end()));
      await schema.drop();
    }
  });

  void it('creates a missing schema once, even when several nodes start at once', async () => {
    const schema = `t_${randomBytes(6).toString('hex')}`;
    const pools = await Promise.all(
      [1, 2, 3].map(() => createPool({ url: TEST_DATABASE_URL, schema, max: 2 })),
    );
    const [first, second] = pools as [pg.Pool, pg.Pool, pg.Pool];
    try {
      const created = await Promise.all(pools.map((p) => ensureSchema(p, schema)));
      assert.deepEqual(
        created.filter((c) => c),
        [true],
        'exactly one of the nodes created the schema',
      );
      assert.equal(await ensureSchema(first, schema), false, 'a later start creates nothing');
      const applied = await migrate(first);
      assert.equal(applied.length, (await loadMigrations()).length, 'migrated into the new schema');
      const where = await second.query<{ schema: string; table: string | null }>(
        "SELECT current_schema() AS schema, to_regclass('clients')::text AS table",
      );
      assert.deepEqual(
        where.rows,
        [{ schema, table: 'clients' }],
        'another node sees the new schema and its tables',
      );
    } finally {
      await Promise.all(pools.map((p) => p.end()));
      const admin = await createPool({ url: TEST_DATABASE_URL, max: 1 });
      await admin.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
      await admin.end();
    }
  });

  void it('asks nothing of a role that may not create schemas, unless the schema is missing', async () => {
    const role = `e4c2_nocreate_${randomBytes(4).toString('hex')}`;
    const missing = `t_${randomBytes(6).toString('hex')}`;
    const existing = await createTestSchema(false);
    const admin = await createPool({ url: TEST_DATABASE_URL, max: 1 });
    await admin.query(`CREATE ROLE ${role} LOGIN`);
    const asRole = (schema: string): Promise<Awaited<ReturnType<typeof createPool>>> =>
      createPool({ url: TEST_DATABASE_URL.replace('postgres@', `${role}@`), schema, max: 1 });
    const existingPool = await asRole(existing.schema);
    const missingPool = await asRole(missing);
    try {
      assert.equal(await ensureSchema(existingPool, existing.schema), false);
      await assert.rejects(ensureSchema(missingPool, missing), (err: Error) => {
        assert.match(
          err.message,
          new RegExp(`schema "${missing}" \\(E4C2_DB_SCHEMA\\) does not exist`),
        );
        assert.match(err.message, /may not create it: create it \(CREATE SCHEMA/);
        return true;
      });
      const found = await admin.query('SELECT 1 FROM pg_namespace WHERE nspname = $1', [missing]);
      assert.equal(found.rowCount, 0, 'nothing was created');
    } finally {
      await Promise.all([existingPool.end(), missingPool.end()]);
      await existing.drop();
      await admin.query(`DROP ROLE ${role}`);
      await admin.end();
    }
  });

  void it('rejects badly named or gapped migration files', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'e4c2-mig-'));
    try {
      await writeFile(join(dir, '0001_first.sql'), 'SELECT 1;');
      await writeFile(join(dir, '0003_gap.sql'), 'SELECT 1;');
      await assert.rejects(loadMigrations(dir), /without gaps/);
      await writeFile(join(dir, 'bad name.sql'), 'SELECT 1;');
      await assert.rejects(loadMigrations(dir), /NNNN_description/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  void it('makes the audit log append-only', async () => {
    const schema = await createTestSchema();
    try {
      await schema.pool.query(
        `INSERT INTO audit_log (actor, operation, subject_kind, subject) VALUES ('t', 'op', 'client', 'c')`,
      );
      await assert.rejects(schema.pool.query(`UPDATE audit_log SET actor = 'x'`), /append-only/);
      await assert.rejects(schema.pool.query('DELETE FROM audit_log'), /append-only/);
    } finally {
      await schema.drop();
    }
  });

  void it('reports an unreachable database clearly, without the password', async () => {
    await assert.rejects(
      createPool({ url: 'postgres://user:hunter2secret@127.0.0.1:1/none' }),
      (err: Error) => {
        assert.match(
          err.message,
          /cannot reach Postgres at postgres:\/\/user:\*\*\*@127\.0\.0\.1:1\/none: ECONNREFUSED$/,
        );
        assert.ok(!err.message.includes('hunter2secret'));
        return true;
      },
    );
    // Reached, but the database does not exist: the server's reason is in the message (it was
    // only in the JSON log, and the message said "cannot reach").
    await assert.rejects(
      createPool({ url: `${TEST_DATABASE_URL.replace(/\/[^/?]*(\?.*)?$/, '')}/e4c2_no_such_db` }),
      (err: Error) => {
        assert.match(err.message, /: database "e4c2_no_such_db" does not exist$/);
        return true;
      },
    );
    // A password with a '#' that is not percent-encoded: the parser splits it between the user
    // part, the host and the fragment, and the fragment was shown.
    await assert.rejects(
      createPool({ url: 'postgres://postgres:p@ss#hunter4secret@127.0.0.1:1/none' }),
      (err: Error) => {
        assert.ok(!err.message.includes('hunter4secret'), err.message);
        assert.ok(!/:p@|@ss|ss#/.test(err.message), err.message);
        assert.match(err.message, /must be written %23/);
        return true;
      },
    );
    // pg also reads the password from the query.
    await assert.rejects(
      createPool({
        url: 'postgres://127.0.0.1:1/none?sslmode=disable&password=hunter3secret&sslpassword=x1',
      }),
      (err: Error) => {
        assert.match(
          err.message,
          /cannot reach Postgres at postgres:\/\/127\.0\.0\.1:1\/none\?sslmode=disable&password=\*\*\*&sslpassword=\*\*\*/,
        );
        assert.ok(!err.message.includes('hunter3secret'), err.message);
        assert.ok(!(err.stack ?? '').includes('hunter3secret'));
        return true;
      },
    );
  });
});
