// `npm run cli` runs e4c2 in the repository's root, whatever directory the user typed it in: a
// relative path (`--key dev-1.key`, `--token-file ops.token`) was read there, so a key file next
// to the user was "not found". e4c2 takes the user's paths from the directory npm was run
// from (INIT_CWD).
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** `npm --prefix ROOT run -s cli -- ...args` in `cwd`, as a user outside the root runs it. */
function npmRunCli(
  args: readonly string[],
  cwd: string,
): Promise<{ code: number; stderr: string }> {
  const env: NodeJS.ProcessEnv = {};
  // An outer npm's variables (this test under `npm test`) must not decide the child's INIT_CWD.
  for (const [name, value] of Object.entries(process.env))
    if (!name.startsWith('E4C2_') && !name.startsWith('npm_') && name !== 'INIT_CWD')
      env[name] = value;
  return new Promise((resolve) => {
    execFile(
      'npm',
      ['--prefix', ROOT, 'run', '-s', 'cli', '--', ...args],
      { cwd, env, timeout: 60_000 },
      (err, _stdout, stderr) => {
        resolve({ code: err === null ? 0 : typeof err.code === 'number' ? err.code : -1, stderr });
      },
    );
  });
}

void describe('npm run cli: relative paths are the user’s', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'e4c2-npm-cwd-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  void it('a relative --token-file is read in the directory npm was run from', async () => {
    await writeFile(join(dir, 'ops.token'), `${'a'.repeat(43)}\n`, { mode: 0o600 });
    // Read-only, so that a failure leaves nothing in the repository; nothing listens on port 1,
    // so a token that was read ends in "cannot reach" (exit 3) rather than a call.
    const { code, stderr } = await npmRunCli(
      ['--token-file', 'ops.token', '-e', '127.0.0.1:1', '--insecure', 'health'],
      dir,
    );
    assert.doesNotMatch(stderr, /cannot read token file/);
    assert.match(stderr, /cannot reach the C2 at 127\.0\.0\.1:1/);
    assert.equal(code, 3, stderr);
  });
});
