/** The state files of rotations deferred to the proxy's first start (`deferred-rotations.ts`). */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  hasControlSession,
  markControlSession,
  pendingRotations,
  setPendingRotations,
} from '../deferred-rotations.ts';
import { ProxyError } from '../errors.ts';
import { tempDir } from './support.ts';

void describe('deferred rotations', () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  before(async () => {
    dir = await tempDir();
  });
  after(async () => {
    await dir.cleanup();
  });

  void it('the control-session marker is absent until marked, and marking twice keeps it', async () => {
    assert.equal(await hasControlSession(dir.path), false);
    await markControlSession(dir.path);
    await markControlSession(dir.path);
    assert.equal(await hasControlSession(dir.path), true);
  });

  void it('keeps a list of names without duplicates, and removes the file when it empties', async () => {
    assert.deepEqual(await pendingRotations(dir.path), []);
    await setPendingRotations(dir.path, ['a', 'b', 'a']);
    assert.deepEqual(await pendingRotations(dir.path), ['a', 'b']);
    await setPendingRotations(dir.path, []);
    assert.equal(existsSync(join(dir.path, 'pending-rotations.json')), false);
  });

  void it('a damaged list is a PROXY_KEY_STORE error that names the file', async () => {
    for (const text of ['{', '{"a":1}', '[1]']) {
      await writeFile(join(dir.path, 'pending-rotations.json'), text);
      await assert.rejects(
        pendingRotations(dir.path),
        (err: unknown) =>
          ProxyError.is(err, 'PROXY_KEY_STORE') && err.message.includes('pending-rotations.json'),
      );
    }
  });
});
