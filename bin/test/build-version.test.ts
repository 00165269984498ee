import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { buildVersion } from '../build-version.ts';

const COMMIT = '3f5c20f1a2b4c6d8e0f1a2b3c4d5e6f708192a3b';

void describe('buildVersion', () => {
  let dir: string;
  let n = 0;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'e4c2-build-version-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  /** A package root with the given files (paths relative to it). */
  async function root(files: Record<string, string>): Promise<string> {
    const path = join(dir, String((n += 1)));
    for (const [name, text] of Object.entries({
      'package.json': '{"version":"0.1.0"}',
      ...files,
    })) {
      await mkdir(dirname(join(path, name)), { recursive: true });
      await writeFile(join(path, name), text);
    }
    return path;
  }

  void it('adds the BUILD_ID an image build wrote', async () => {
    const path = await root({ BUILD_ID: 'ci-1234\n', '.git/HEAD': `${COMMIT}\n` });
    assert.equal(buildVersion(path), '0.1.0+ci-1234');
  });

  void it("adds the checkout's commit: detached, on a branch, or on a packed branch", async () => {
    assert.equal(buildVersion(await root({ '.git/HEAD': `${COMMIT}\n` })), '0.1.0+3f5c20f1a2b4');
    const branch = await root({
      '.git/HEAD': 'ref: refs/heads/main\n',
      '.git/refs/heads/main': `${COMMIT}\n`,
    });
    assert.equal(buildVersion(branch), '0.1.0+3f5c20f1a2b4');
    const packed = await root({
      '.git/HEAD': 'ref: refs/heads/release\n',
      '.git/packed-refs': `# pack-refs with: peeled\n${'0'.repeat(40)} refs/heads/main\n${COMMIT} refs/heads/release\n`,
    });
    assert.equal(buildVersion(packed), '0.1.0+3f5c20f1a2b4');
  });

  void it("adds a worktree's commit: its own HEAD, the main checkout's refs", async () => {
    const main = await root({
      '.git/refs/heads/main': `${'0'.repeat(40)}\n`,
      '.git/refs/heads/release': `${COMMIT}\n`,
      '.git/worktrees/rel/HEAD': 'ref: refs/heads/release\n',
      '.git/worktrees/rel/commondir': '../..\n',
      '.git/worktrees/det/HEAD': `${COMMIT}\n`,
      '.git/worktrees/det/commondir': '../..\n',
    });
    const onBranch = await root({ '.git': `gitdir: ${join(main, '.git/worktrees/rel')}\n` });
    assert.equal(buildVersion(onBranch), '0.1.0+3f5c20f1a2b4');
    const detached = await root({ '.git': `gitdir: ${join(main, '.git/worktrees/det')}\n` });
    assert.equal(buildVersion(detached), '0.1.0+3f5c20f1a2b4');
    // A relative gitdir (as `git worktree repair --relative-paths` writes), no commondir (a
    // submodule's git directory holds its own refs).
    const sub = await root({
      'parent/.git/modules/sub/HEAD': 'ref: refs/heads/main\n',
      'parent/.git/modules/sub/refs/heads/main': `${COMMIT}\n`,
      'parent/sub/package.json': '{"version":"0.1.0"}',
      'parent/sub/.git': 'gitdir: ../.git/modules/sub\n',
    });
    assert.equal(buildVersion(join(sub, 'parent/sub')), '0.1.0+3f5c20f1a2b4');
  });

  void it('keeps the package version alone when the build is unknown or malformed', async () => {
    assert.equal(buildVersion(await root({})), '0.1.0');
    assert.equal(buildVersion(await root({ BUILD_ID: 'no spaces or $(shell)\n' })), '0.1.0');
    assert.equal(buildVersion(await root({ '.git/HEAD': 'ref: refs/heads/gone\n' })), '0.1.0');
    assert.equal(
      buildVersion(await root({ '.git/HEAD': 'ref: refs/../../etc/passwd\n' })),
      '0.1.0',
    );
    assert.equal(buildVersion(await root({ 'package.json': 'not json' })), 'unknown');
  });

  void it("names this checkout's commit", (t) => {
    const repo = fileURLToPath(new URL('../..', import.meta.url));
    if (!existsSync(join(repo, '.git', 'HEAD'))) {
      t.skip('not run from a git checkout');
      return;
    }
    assert.match(buildVersion(repo), /^\d+\.\d+\.\d+\+[0-9a-f]{12}$/);
  });
});
