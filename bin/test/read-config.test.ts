// The config file of a node: one holding secrets must not be readable by others, as the KEK
// file must not (a 0644 file with mqtt.password was accepted without a word).
import assert from 'node:assert/strict';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ConfigError } from '../../cluster/config/index.ts';
import { readNodeConfig } from '../read-config.ts';

const SECRET = 'Zq-very-secret-broker-password';

void describe('readNodeConfig and E4C2_CONFIG_FILE', () => {
  let dir: string;
  const saved = process.env['E4C2_CONFIG_FILE'];
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'e4c2-read-config-'));
  });
  after(async () => {
    if (saved === undefined) delete process.env['E4C2_CONFIG_FILE'];
    else process.env['E4C2_CONFIG_FILE'] = saved;
    await rm(dir, { recursive: true, force: true });
  });

  /** The config read from a file holding `document` with `mode`. */
  async function read(name: string, document: unknown, mode: number): Promise<unknown> {
    const file = join(dir, name);
    await writeFile(file, JSON.stringify(document));
    await chmod(file, mode);
    process.env['E4C2_CONFIG_FILE'] = file;
    return readNodeConfig();
  }
  const withSecret = { mqtt: { url: 'mqtt://broker:1883', username: 'c2', password: SECRET } };

  void it('refuses a file holding a secret that others can read, naming the setting, not the value', async () => {
    await assert.rejects(read('open.json', withSecret, 0o644), (err: unknown) => {
      assert.ok(err instanceof ConfigError);
      assert.match(
        err.message,
        /holds secrets \(mqtt\.password\) and is readable by others \(mode 0644\): run "chmod 600 /,
      );
      assert.ok(!err.message.includes(SECRET));
      return true;
    });
  });

  void it('reads it at 0600, and a file without secrets at any mode', async () => {
    await read('closed.json', withSecret, 0o600);
    await read('plain.json', { log: { level: 'warn' } }, 0o644);
  });
});
