// ops/secrets/init-secrets.sh, run for real into a temporary directory: every secret the compose
// file mounts is made, the API is not left open (an admin token authenticates against the
// credentials file), and a second run keeps what exists.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { promisify } from 'node:util';
import { credentialAuthenticator, parseApiCredentials } from '../../api/auth/index.ts';

const run = promisify(execFile);
const SCRIPT = new URL('../secrets/init-secrets.sh', import.meta.url).pathname;

async function hasCommand(name: string): Promise<boolean> {
  return run('sh', ['-c', `command -v ${name}`]).then(
    () => true,
    () => false,
  );
}

void describe('ops/secrets/init-secrets.sh', async () => {
  const tools = (await hasCommand('openssl')) && (await hasCommand('mosquitto_passwd'));
  void it(
    'makes the API credentials with an admin token, and keeps files on a second run',
    { skip: tools ? false : 'openssl or mosquitto_passwd is not installed' },
    async () => {
      const dir = await mkdtemp(join(tmpdir(), 'e4c2-secrets-'));
      try {
        const env = { ...process.env, E4C2_UID: String(process.getuid?.() ?? 0) };
        await run('bash', [SCRIPT, dir], { env, timeout: 60_000 });
        const credentials = parseApiCredentials(
          await readFile(join(dir, 'api-credentials.json'), 'utf8'),
        );
        const token = (await readFile(join(dir, 'admin.token'), 'utf8')).trim();
        const caller = credentialAuthenticator(credentials)({
          transport: 'http',
          operation: 'NewClient',
          peer: undefined,
          header: (name) => (name === 'authorization' ? `Bearer ${token}` : undefined),
        });
        assert.deepEqual(caller, { actor: 'token:admin', role: 'admin' });
        for (const file of ['api-credentials.json', 'admin.token', 'kek.key']) {
          assert.equal((await stat(join(dir, file))).mode & 0o077, 0, `${file} is private`);
        }
        const second = await run('bash', [SCRIPT, dir], { env, timeout: 60_000 });
        assert.match(second.stdout, /keep {5}api-credentials\.json \(exists\)/);
        assert.equal((await readFile(join(dir, 'admin.token'), 'utf8')).trim(), token);
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    },
  );
});
