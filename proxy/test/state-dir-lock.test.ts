/**
 * The state directory lock's decisions on the lock files it may meet: a running holder refuses,
 * anything that cannot be a running proxy's lock is taken over (the processes themselves are in
 * state-dir-lock.integration.test.ts).
 */
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ProxyError } from '../errors.ts';
import { LOCK_FILE, StateDirLock } from '../state-dir-lock.ts';
import { recordingLogger, tempDir } from './support.ts';

void describe('StateDirLock', () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let n = 0;
  /** A fresh state directory (not made yet) and its lock file. */
  const fresh = (): { stateDir: string; lockFile: string } => {
    const stateDir = join(dir.path, `state-${n++}`);
    return { stateDir, lockFile: join(stateDir, LOCK_FILE) };
  };

  before(async () => {
    dir = await tempDir();
  });
  after(() => dir.cleanup());

  void it('refuses the state directory of a running process, naming its pid', async () => {
    const { stateDir, lockFile } = fresh();
    const first = await StateDirLock.acquire(stateDir, recordingLogger());
    await first.release();
    // The test runner, our parent, plays the running proxy (no start time recorded).
    const holder = `${JSON.stringify({ pid: process.ppid })}\n`;
    await writeFile(lockFile, holder);
    await assert.rejects(StateDirLock.acquire(stateDir, recordingLogger()), (err) => {
      assert.ok(ProxyError.is(err, 'PROXY_STATE_IN_USE'));
      assert.match(err.message, new RegExp(`in use by another proxy \\(pid ${process.ppid};`));
      return true;
    });
    assert.equal(await readFile(lockFile, 'utf8'), holder);
  });

  void it('refuses a second lock in the same process, and frees it on release', async () => {
    const { stateDir } = fresh();
    const lock = await StateDirLock.acquire(stateDir, recordingLogger());
    await assert.rejects(StateDirLock.acquire(stateDir, recordingLogger()), {
      code: 'PROXY_STATE_IN_USE',
    });
    await lock.release();
    await (await StateDirLock.acquire(stateDir, recordingLogger())).release();
  });

  for (const [what, content] of [
    ['a torn lock', '{"pid":'],
    ['a lock of this pid left by an earlier process (pid 1 in a restarted container)', 'self'],
    ['a lock whose pid now belongs to a process started later', 'reused'],
  ] as const) {
    void it(`takes over ${what}, with a warning`, async () => {
      const { stateDir, lockFile } = fresh();
      await (await StateDirLock.acquire(stateDir, recordingLogger())).release();
      const text =
        content === 'self'
          ? JSON.stringify({ pid: process.pid })
          : content === 'reused'
            ? JSON.stringify({ pid: process.ppid, procStart: '0' })
            : content;
      await writeFile(lockFile, text);
      const logger = recordingLogger();
      const lock = await StateDirLock.acquire(stateDir, logger);
      assert.equal((await readFile(lockFile, 'utf8')).split('\n')[0], String(process.pid));
      assert.ok(logger.lines.some((l) => l.level === 'warn' && /taken over/.test(l.msg)));
      await lock.release();
    });
  }

  void it('leaves a lock that is no longer its own at release', async () => {
    const { stateDir, lockFile } = fresh();
    const lock = await StateDirLock.acquire(stateDir, recordingLogger());
    const other = `${JSON.stringify({ pid: process.ppid })}\n`;
    await writeFile(lockFile, other);
    await lock.release();
    assert.equal(await readFile(lockFile, 'utf8'), other);
  });
});
