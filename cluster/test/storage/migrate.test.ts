/** Migrations on the real PostgreSQL: ordering, idempotence, and several nodes starting at once. */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { createPool, loadMigrations, migrate } from '../../storage/index.ts';
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
      assert.deepEqual(results.flat().sort(), all, 'every migration applied exactly once in total');
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
          /cannot reach Postgres at postgres:\/\/user:\*\*\*@127\.0\.0\.1:1/,
        );
        assert.ok(!err.message.includes('hunter2secret'));
        return true;
      },
    );
  });
});
