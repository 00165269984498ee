// The data directory of a single-node C2: created private, documented by README.txt, and locked so
// that a second `npm start` on it fails clearly while a lock left by a dead process is taken over.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { C2Error } from '../../errors.ts';
import { DATA_DIR_LAYOUT, prepareDataDir } from '../../embedded/index.ts';
import { makeTempDir, removeTempDir } from './support.ts';

/** A pid that certainly belonged to a process that has exited. */
async function deadPid(): Promise<number> {
  const child = spawn(process.execPath, ['-e', ''], { stdio: 'ignore' });
  await once(child, 'exit');
  assert.ok(child.pid !== undefined);
  return child.pid;
}

void describe('prepareDataDir', () => {
  let root: string | undefined;
  let counter = 0;
  const fresh = (): string => join(root ?? '', `data-${++counter}`);
  before(async () => {
    root = await makeTempDir('datadir');
  });
  after(async () => {
    await removeTempDir(root);
  });

  void it('creates the directory with mode 0700, a README and a lock holding our pid', async () => {
    const path = join(fresh(), 'nested');
    const dir = await prepareDataDir(path);
    try {
      assert.equal(dir.path, path);
      assert.equal((await stat(path)).mode & 0o777, 0o700);
      const readme = await readFile(join(path, DATA_DIR_LAYOUT.readme), 'utf8');
      assert.match(readme, /single-node E4 C2/);
      assert.match(readme, /postgres\//);
      // The KEK is there too: the README must not ask for it to be backed up with the rest.
      assert.match(readme, /keep kek\.key apart from the\s+copies of the rest/);
      const lock = await readFile(join(path, DATA_DIR_LAYOUT.lock), 'utf8');
      assert.equal(lock.split('\n')[0], String(process.pid));
    } finally {
      await dir.release();
    }
    await assert.rejects(stat(join(path, DATA_DIR_LAYOUT.lock)), { code: 'ENOENT' });
    await dir.release(); // idempotent
  });

  void it('refuses a second user of the same directory with a clear message', async () => {
    const path = fresh();
    const first = await prepareDataDir(path);
    try {
      await assert.rejects(prepareDataDir(path), (err: unknown) => {
        assert.ok(C2Error.is(err, 'C2_FAILED_PRECONDITION'));
        assert.equal(
          err.message,
          `data directory ${path} is in use by process ${process.pid} (this process): stop that ` +
            `C2 first, or choose another data directory`,
        );
        return true;
      });
    } finally {
      await first.release();
    }
    const again = await prepareDataDir(path);
    await again.release();
  });

  void it('takes over a lock left by a dead process', async () => {
    const path = fresh();
    await prepareDataDir(path); // never released: its lock stays behind, as after a crash
    await writeFile(join(path, DATA_DIR_LAYOUT.lock), `${await deadPid()}\n\n`);
    const dir = await prepareDataDir(path);
    const lock = await readFile(join(path, DATA_DIR_LAYOUT.lock), 'utf8');
    assert.equal(lock.split('\n')[0], String(process.pid));
    await dir.release();
  });

  void it('takes over a lock whose pid now belongs to another process (pid reuse)', async (t) => {
    const stat0 = await readFile(`/proc/${process.pid}/stat`, 'utf8').catch(() => undefined);
    if (stat0 === undefined) {
      t.skip('needs /proc');
      return;
    }
    const path = fresh();
    const first = await prepareDataDir(path);
    // Our own (live) pid, but a start time that is not ours: the recorded owner is long gone.
    await writeFile(join(path, DATA_DIR_LAYOUT.lock), `${process.pid}\n1\n`);
    const dir = await prepareDataDir(path);
    await dir.release();
    await first.release(); // the lock is no longer first's: it must not remove anything
  });

  void it('does not remove a lock that is no longer its own', async () => {
    const path = fresh();
    const dir = await prepareDataDir(path);
    await writeFile(join(path, DATA_DIR_LAYOUT.lock), `${process.pid}\nsomeone-else\n`);
    await dir.release();
    assert.equal(
      await readFile(join(path, DATA_DIR_LAYOUT.lock), 'utf8'),
      `${process.pid}\nsomeone-else\n`,
    );
  });

  void it('takes over an unreadable (torn) lock: a lock is complete once it is visible', async () => {
    const path = fresh();
    const lockPath = join(path, DATA_DIR_LAYOUT.lock);
    await prepareDataDir(path); // never released, as after a crash
    await writeFile(lockPath, '');
    const dir = await prepareDataDir(path);
    assert.equal((await readFile(lockPath, 'utf8')).split('\n')[0], String(process.pid));
    await dir.release();
  });

  void it('reports a path that is not a directory as C2_CONFIG', async () => {
    const path = fresh();
    await writeFile(path, 'a file');
    await assert.rejects(prepareDataDir(path), (err: unknown) => {
      assert.ok(C2Error.is(err, 'C2_CONFIG'));
      assert.equal(err.message, `data directory ${path} is not a writable directory`);
      return true;
    });
  });
});
