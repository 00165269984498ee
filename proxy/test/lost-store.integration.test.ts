/**
 * An identity's key store lost from a state directory that served it (real Mosquitto, a stand-in
 * for the C2): the start and `register` refuse it with PROXY_KEY_STORE instead of drawing a new
 * key the C2 does not hold (every command rejected, every message dropped, silently); `register
 * --replace` is the way out, after which the proxy starts.
 */
import assert from 'node:assert/strict';
import { access, rm } from 'node:fs/promises';
import { after, before, describe, it } from 'node:test';
import { ProxyError } from '../errors.ts';
import { identityStatePath } from '../key-ring.ts';
import { registerIdentities } from '../register-command.ts';
import {
  BROKER_URL,
  startFakeC2,
  startProxy,
  tempDir,
  unique,
  writeConfig,
  type FakeC2,
} from './support.ts';

void describe('a lost key store (real Mosquitto)', () => {
  const name = unique('lost-store');
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let c2: FakeC2;

  before(async () => {
    dir = await tempDir();
    // Knows every client; accepts everything else.
    c2 = await startFakeC2((method) => ({ status: 200, body: method === 'GET' ? {} : undefined }));
  });
  after(async () => {
    await c2.close();
    await dir.cleanup();
  });

  function config(): ReturnType<typeof writeConfig> {
    return writeConfig(dir.path, {
      mode: 'local',
      upstream: { url: BROKER_URL, controlClientId: unique('e4proxy-lost') },
      identities: [{ name }],
      c2: { url: c2.url },
    });
  }

  const refused = (err: unknown): boolean => {
    assert.ok(ProxyError.is(err, 'PROXY_KEY_STORE'), String(err));
    assert.match(
      err.message,
      new RegExp(
        `^no key store for ${name} \\(\\S+\\.e4s\\), although this state directory served it before: .*register --replace`,
      ),
    );
    return true;
  };

  void it('is refused by the start and by register, and register --replace repairs it', async () => {
    const configured = await config();
    const first = await startProxy(configured);
    await first.close();
    const store = identityStatePath(configured.stateDir, name);
    await access(store);

    await rm(store);
    await assert.rejects(startProxy(configured), refused);
    await assert.rejects(
      registerIdentities(configured, { rotate: false, replace: false }, () => undefined),
      refused,
    );
    await assert.rejects(access(store), 'no new key was drawn');

    const lines: string[] = [];
    await registerIdentities(configured, { rotate: false, replace: true }, (line) => {
      lines.push(line);
    });
    assert.deepEqual(lines, [`registered ${name} (topics: none)`]);
    assert.ok(c2.requests.includes(`POST /e4/client/${name}`), c2.requests.join('\n'));
    const again = await startProxy(configured);
    await again.close();
  });
});
