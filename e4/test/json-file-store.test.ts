// JsonFileClientStore on a real file system: mode 0600 whatever was left behind, no temporary file
// left over, and a save that is durable when it resolves (file and directory fsynced).
import assert from 'node:assert/strict';
import fsp, { chmod, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { syncBuiltinESMExports } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it, mock } from 'node:test';
import { JsonFileClientStore } from '../index.ts';

void describe('JsonFileClientStore', () => {
  let dir = '';
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'e4-file-store-test-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  void it('a temporary file left by a crash, readable by all, does not give its mode to the state', async () => {
    const path = join(dir, 'stale.json');
    const tmp = `${path}.tmp-${process.pid}`;
    await writeFile(tmp, 'left by a crash');
    await chmod(tmp, 0o644);
    const store = new JsonFileClientStore(path);
    await store.save('{"secret":1}\n');
    assert.equal((await stat(path)).mode & 0o777, 0o600);
    assert.equal(await store.load(), '{"secret":1}\n');
    assert.deepEqual(await readdir(dir), ['stale.json'], 'no temporary file left behind');
  });

  void it('fsyncs the directory after the rename, so a resolved save survives a power loss', async (t) => {
    const path = join(dir, 'durable.json');
    const events: string[] = [];
    const realOpen = fsp.open;
    const realRename = fsp.rename;
    // The store imports these by name: syncBuiltinESMExports makes the mocks visible to it.
    mock.method(fsp, 'open', async (...args: Parameters<typeof fsp.open>) => {
      const handle = await realOpen(...args);
      const opened = String(args[0]);
      const realSync = handle.sync.bind(handle);
      handle.sync = async () => {
        events.push(`sync ${opened}`);
        await realSync();
      };
      return handle;
    });
    mock.method(fsp, 'rename', async (from: string, to: string) => {
      events.push(`rename ${to}`);
      await realRename(from, to);
    });
    syncBuiltinESMExports();
    t.after(() => {
      mock.restoreAll();
      syncBuiltinESMExports();
    });

    await new JsonFileClientStore(path).save('{}\n');
    assert.deepEqual(events, [`sync ${path}.tmp-${process.pid}`, `rename ${path}`, `sync ${dir}`]);
  });

  void it('a save whose directory sync fails puts the state before back: file and client agree', async (t) => {
    const sub = await mkdtemp(join(dir, 'eio-'));
    const path = join(sub, 'state.json');
    await writeFile(path, 'old\n', { mode: 0o600 });
    const realOpen = fsp.open;
    let failDirectorySync = true;
    // The directory's fsync fails with EIO, after the rename made the new state the file's.
    mock.method(fsp, 'open', async (...args: Parameters<typeof fsp.open>) => {
      const handle = await realOpen(...args);
      if (String(args[0]) === sub && failDirectorySync)
        handle.sync = () =>
          Promise.reject(Object.assign(new Error('EIO: i/o error, fsync'), { code: 'EIO' }));
      return handle;
    });
    syncBuiltinESMExports();
    t.after(() => {
      mock.restoreAll();
      syncBuiltinESMExports();
    });

    const store = new JsonFileClientStore(path);
    await assert.rejects(store.save('new\n'), /EIO/);
    assert.equal(await readFile(path, 'utf8'), 'old\n', 'the failed save left the state before');
    assert.deepEqual(await readdir(sub), ['state.json'], 'no temporary file left behind');
    // A state saved for the first time: nothing was there, nothing is left.
    const fresh = new JsonFileClientStore(join(sub, 'fresh.json'));
    await assert.rejects(fresh.save('first\n'), /EIO/);
    assert.equal(await fresh.load(), undefined);
    // Once the directory syncs again, saves go through.
    failDirectorySync = false;
    await store.save('new\n');
    assert.equal(await store.load(), 'new\n');
  });
});
