// The directory lock shared by the C2's data directory and a proxy's state directory: one holder
// at a time, also among concurrent starts; running holders refuse, stale and torn locks are taken
// over; locks written by earlier releases are understood.
import assert from 'node:assert/strict';
import { mkdtemp, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { DirLock, DirLockError, parseLockHolder } from '../dir-lock.ts';

void describe('DirLock', () => {
  let root = '';
  let n = 0;
  /** A fresh directory and the path of its lock file. */
  const fresh = async (): Promise<{ dir: string; file: string }> => {
    const dir = join(root, `d-${n++}`);
    await mkdir(dir);
    return { dir, file: join(dir, 'test.lock') };
  };

  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'dir-lock-'));
  });
  after(() => rm(root, { recursive: true, force: true }));

  void it('writes the pid on the first line, refuses a second lock here, frees it on release', async () => {
    const { dir, file } = await fresh();
    const lock = await DirLock.acquire(dir, 'test.lock');
    const lines = (await readFile(file, 'utf8')).split('\n');
    assert.equal(lines[0], String(process.pid));
    assert.deepEqual(parseLockHolder(await readFile(file, 'utf8'))?.pid, process.pid);
    await assert.rejects(DirLock.acquire(dir, 'test.lock'), (err) => {
      assert.ok(DirLockError.is(err, 'DIR_LOCK_IN_USE'));
      assert.equal(err.holder?.pid, process.pid);
      return true;
    });
    await lock.release();
    await assert.rejects(readFile(file), { code: 'ENOENT' });
    await lock.release(); // idempotent
    await (await DirLock.acquire(dir, 'test.lock')).release();
  });

  void it('lets exactly one of many concurrent acquisitions win', async () => {
    const { dir } = await fresh();
    const results = await Promise.allSettled(
      Array.from({ length: 8 }, () => DirLock.acquire(dir, 'test.lock')),
    );
    const won = results.filter((r) => r.status === 'fulfilled');
    assert.equal(won.length, 1);
    for (const r of results) {
      if (r.status === 'rejected') assert.ok(DirLockError.is(r.reason), String(r.reason));
    }
    await won[0]?.value.release();
  });

  void it('refuses the lock of a running process, in both formats, and leaves it alone', async () => {
    for (const holder of [`${process.ppid}\n\n`, `${JSON.stringify({ pid: process.ppid })}\n`]) {
      const { dir, file } = await fresh();
      await writeFile(file, holder);
      await assert.rejects(DirLock.acquire(dir, 'test.lock'), (err) => {
        assert.ok(DirLockError.is(err, 'DIR_LOCK_IN_USE'));
        assert.equal(err.holder?.pid, process.ppid);
        return true;
      });
      assert.equal(await readFile(file, 'utf8'), holder);
    }
  });

  for (const [what, content] of [
    ['a torn lock', `${process.pid}`],
    ['an empty lock', ''],
    ['a torn lock of an earlier proxy release', '{"pid":'],
    ['a lock of this pid left by an earlier process (pid 1 in a restarted container)', 'self'],
    ['a lock whose pid now belongs to a process started later', 'reused'],
  ] as const) {
    void it(`takes over ${what}, and says so`, async () => {
      const { dir, file } = await fresh();
      const text =
        content === 'self'
          ? `${process.pid}\n\n`
          : content === 'reused'
            ? `${process.ppid}\n0\n`
            : content;
      await writeFile(file, text);
      const stale: unknown[] = [];
      const lock = await DirLock.acquire(dir, 'test.lock', {
        onStaleTakenOver: (holder) => stale.push(holder?.pid),
      });
      assert.equal((await readFile(file, 'utf8')).split('\n')[0], String(process.pid));
      assert.equal(stale.length, 1);
      await lock.release();
    });
  }

  void it('leaves a lock that is no longer its own at release', async () => {
    const { dir, file } = await fresh();
    const lock = await DirLock.acquire(dir, 'test.lock');
    const other = `${process.ppid}\n\n`;
    await writeFile(file, other);
    await lock.release();
    assert.equal(await readFile(file, 'utf8'), other);
  });
});
