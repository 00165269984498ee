/**
 * An identity's key store lost from a state directory that served it (real Mosquitto, a stand-in
 * for the C2): the start and `register` refuse it with PROXY_KEY_STORE instead of drawing a new
 * key the C2 does not hold (every command rejected, every message dropped, silently); `register
 * --replace` is the way out, after which the proxy starts. A lost local key with key stores left
 * is refused too, unless `--new-local-key` starts over.
 */
import assert from 'node:assert/strict';
import { access, mkdir, readdir, readFile, rm } from 'node:fs/promises';
import { basename, join } from 'node:path';
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

  void it('refuses a lost local key while key stores exist, unless --new-local-key starts over', async () => {
    const other = unique('lost-local-key');
    await mkdir(join(dir.path, 'lost-local-key'));
    const configured = await writeConfig(join(dir.path, 'lost-local-key'), {
      mode: 'local',
      upstream: { url: BROKER_URL, controlClientId: unique('e4proxy-lost-key') },
      identities: [{ name: other }],
      c2: { url: c2.url },
    });
    await (await startProxy(configured)).close();
    const store = identityStatePath(configured.stateDir, other);
    const stored = await readFile(store);
    await rm(configured.localKeyFile);

    const lostKey = (err: unknown): boolean => {
      assert.ok(ProxyError.is(err, 'PROXY_KEY_STORE'), String(err));
      assert.match(
        err.message,
        /^local key \S+ does not exist, but 1 key store encrypted with it does \(\S+identities\): .*Restore the local key .*--new-local-key/,
      );
      return true;
    };
    await assert.rejects(startProxy(configured), lostKey);
    await assert.rejects(
      registerIdentities(configured, { rotate: false, replace: true }, () => undefined),
      lostKey,
    );
    await assert.rejects(access(configured.localKeyFile), 'no new local key was made');
    assert.deepEqual(await readFile(store), stored, 'the store is untouched');

    // Starting over: a new local key, the unreadable store kept aside, and the identity then a
    // lost store (its key is the C2's to be told: register --replace).
    await assert.rejects(startProxy(configured, { newLocalKey: true }), /no key store for/);
    await access(configured.localKeyFile);
    const identities = join(configured.stateDir, 'identities');
    const aside = (await readdir(identities)).filter((f) => f.startsWith('unreadable-'));
    assert.equal(aside.length, 1);
    assert.deepEqual(await readFile(join(identities, aside[0] ?? '', basename(store))), stored);
    await registerIdentities(configured, { rotate: false, replace: true }, () => undefined);
    await (await startProxy(configured)).close();
  });
});
