/**
 * backup.sh names its files by the second: two backups within one second (a retry, two cron
 * entries) used to share the work file and the name, the second replacing the first's dump and
 * manifest. A fixed `date` on PATH makes them fall within the same second.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import {
  chmodSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  createTestSchema,
  TEST_DATABASE_URL,
  type TestSchema,
} from '../../cluster/test/support/postgres.ts';

const BACKUP = new URL('../backup/backup.sh', import.meta.url).pathname;

void describe('backup.sh file names', () => {
  const dir = mkdtempSync(join(tmpdir(), 'e4c2-backup-names-'));
  let schema: TestSchema;
  before(async () => {
    schema = await createTestSchema();
    fixDate();
  });
  after(async () => {
    await schema.drop();
    rmSync(dir, { recursive: true, force: true });
  });

  /** Puts a `date` on PATH that answers the same second every time. */
  function fixDate(): void {
    const fake = join(dir, 'bin');
    mkdirSync(fake);
    writeFileSync(
      join(fake, 'date'),
      '#!/bin/sh\ncase "$*" in *%Y%m%dT*) echo 20300101T000000Z ;; *) echo 2030-01-01T00:00:00Z ;; esac\n',
    );
    chmodSync(join(fake, 'date'), 0o755);
  }

  function backup(): string {
    const out = join(dir, 'out');
    const result = spawnSync('bash', [BACKUP, '-o', out, '-n', schema.schema], {
      env: {
        ...process.env,
        DATABASE_URL: TEST_DATABASE_URL,
        PATH: `${join(dir, 'bin')}:${process.env['PATH'] ?? ''}`,
      },
      encoding: 'utf8',
      timeout: 60_000,
    });
    assert.equal(result.status, 0, result.stderr);
    return result.stdout.trim();
  }

  void it('a second backup within the same second gets its own name, and the first stays', () => {
    const first = backup();
    const second = backup();
    assert.match(first, /e4c2-20300101T000000Z\.dump$/);
    assert.match(second, /e4c2-20300101T000000Z-2\.dump$/);
    assert.deepEqual(readdirSync(join(dir, 'out')).sort(), [
      'e4c2-20300101T000000Z-2.dump',
      'e4c2-20300101T000000Z-2.manifest.json',
      'e4c2-20300101T000000Z.dump',
      'e4c2-20300101T000000Z.manifest.json',
    ]);
    for (const dump of [first, second]) {
      const manifest = JSON.parse(
        readFileSync(dump.replace(/\.dump$/, '.manifest.json'), 'utf8'),
      ) as {
        file: string;
      };
      assert.equal(manifest.file, dump.split('/').pop(), 'each manifest names its own dump');
    }
  });
});
