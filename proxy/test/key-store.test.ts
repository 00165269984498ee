/** The encrypted key store, the local key, device passwords and the key ring. */
import assert from 'node:assert/strict';
import { chmod, mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  cmdSetTopicKey,
  protectCommand,
  randomCurve25519KeyPair,
  randomSymKey,
  toHex,
} from '../../e4/index.ts';
import { EncryptedFileClientStore } from '../encrypted-file-store.ts';
import { ProxyError } from '../errors.ts';
import { KeyRing } from '../key-ring.ts';
import { loadOrCreateLocalKey } from '../local-key.ts';
import { hashPassword, verifyPassword } from '../password.ts';
import { tempDir } from './support.ts';

void describe('encrypted key store', () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  before(async () => {
    dir = await tempDir();
  });
  after(() => dir.cleanup());

  void it('round-trips, atomically, with nothing readable at rest and no temporary file left', async () => {
    const key = randomSymKey();
    const store = new EncryptedFileClientStore(join(dir.path, 'a.e4s'), key, 'dev-a');
    assert.equal(await store.load(), undefined);
    await store.save('{"secret":"0123456789abcdef"}');
    await store.save('{"secret":"fedcba9876543210"}');
    assert.equal(await store.load(), '{"secret":"fedcba9876543210"}');
    const raw = await readFile(join(dir.path, 'a.e4s'));
    assert.ok(!raw.toString('latin1').includes('fedcba'));
    assert.deepEqual(
      (await readdir(dir.path)).filter((f) => f.includes('.tmp')),
      [],
    );
  });

  void it('refuses another local key, another identity label and damaged files', async () => {
    const key = randomSymKey();
    const path = join(dir.path, 'b.e4s');
    await new EncryptedFileClientStore(path, key, 'dev-b').save('state');
    const isStoreError = (err: unknown): boolean => ProxyError.is(err, 'PROXY_KEY_STORE');
    await assert.rejects(
      new EncryptedFileClientStore(path, randomSymKey(), 'dev-b').load(),
      isStoreError,
    );
    await assert.rejects(new EncryptedFileClientStore(path, key, 'dev-c').load(), isStoreError);
    const raw = await readFile(path);
    raw[raw.length - 1] = (raw[raw.length - 1] ?? 0) ^ 1;
    await writeFile(path, raw);
    await assert.rejects(new EncryptedFileClientStore(path, key, 'dev-b').load(), isStoreError);
    await writeFile(path, 'not a store');
    await assert.rejects(new EncryptedFileClientStore(path, key, 'dev-b').load(), isStoreError);
  });

  void it('creates the local key once, mode 0600, and refuses a readable one', async () => {
    const path = join(dir.path, 'keys', 'local.key');
    const options = { stateDir: join(dir.path, 'state-local-key') };
    const first = await loadOrCreateLocalKey(path, options);
    assert.equal(first.length, 32);
    assert.deepEqual(await loadOrCreateLocalKey(path, options), first);
    await chmod(path, 0o644);
    await assert.rejects(loadOrCreateLocalKey(path, options), (err: unknown) =>
      ProxyError.is(err, 'PROXY_KEY_STORE'),
    );
  });

  void it('reloads identities with the keys they had, one store per identity', async () => {
    const localKey = randomSymKey();
    const initial = randomSymKey();
    const identities = [
      { name: 'gw-1', topics: ['t/1'], initialKeyHex: toHex(initial) },
      { name: 'gw-2', topics: [], initialKeyHex: undefined },
    ];
    const ring = await KeyRing.open(join(dir.path, 'ring'), localKey, identities);
    assert.ok(ring.all().every((i) => i.created));
    const key2 = ring.get('gw-2')?.client.state.keyMaterial;
    const again = await KeyRing.open(join(dir.path, 'ring'), localKey, identities);
    assert.ok(again.all().every((i) => !i.created));
    assert.deepEqual(again.get('gw-1')?.client.state.keyMaterial, {
      mode: 'symmetric',
      key: initial,
    });
    assert.deepEqual(again.get('gw-2')?.client.state.keyMaterial, key2);
    const gw1 = again.get('gw-1');
    assert.equal(
      gw1 === undefined ? undefined : again.byControlTopic(gw1.client.receivingTopic),
      gw1,
    );
    assert.equal((await readdir(join(dir.path, 'ring', 'identities'))).length, 2);
  });

  void it('lets its identities share each topic key they hold, loaded or created', async () => {
    const localKey = randomSymKey();
    const keys = [randomSymKey(), randomSymKey(), randomSymKey()];
    const identities = keys.map((k, i) => ({
      name: `share-${i}`,
      topics: ['t/shared'],
      initialKeyHex: toHex(k),
    }));
    // The first identity exists already: the ring loads it, and creates the two others.
    await KeyRing.open(join(dir.path, 'share'), localKey, identities.slice(0, 1));
    const ring = await KeyRing.open(join(dir.path, 'share'), localKey, identities);
    assert.deepEqual(
      ring.all().map((i) => i.created),
      [false, true, true],
    );
    const topicKey = randomSymKey();
    for (const [i, identity] of ring.all().entries()) {
      const command = protectCommand(cmdSetTopicKey(topicKey, 't/shared'), keys[i] ?? localKey);
      await identity.client.unprotect(command, identity.client.receivingTopic);
    }
    const [first, ...others] = ring.all();
    assert.ok(first !== undefined);
    const message = first.client.protectMessage(new TextEncoder().encode('to all'), 't/shared');
    for (const identity of others) {
      const clear = identity.client.unprotectMessage(message, 't/shared');
      assert.equal(new TextDecoder().decode(clear), 'to all');
    }
    assert.deepEqual(ring.topicCiphers.stats, { prepared: 1, reused: 2 });
  });

  void it('refuses a public-key initialKey whose halves do not belong together', async () => {
    const mismatched = `${'11'.repeat(32)}${'22'.repeat(32)}`;
    await assert.rejects(
      KeyRing.open(
        join(dir.path, 'bad-pk'),
        randomSymKey(),
        [{ name: 'pk-1', topics: [], initialKeyHex: mismatched }],
        {
          mode: 'public-key',
          c2PublicKey: () => Promise.resolve(randomCurve25519KeyPair().publicKey),
        },
      ),
      (err: unknown) =>
        ProxyError.is(err, 'PROXY_CONFIG') &&
        /identity pk-1: cannot create a public-key identity/.test(err.message),
    );
  });

  void it('refuses a stored identity of the other mode instead of converting it', async () => {
    const localKey = randomSymKey();
    const identities = [{ name: 'mode-1', topics: [], initialKeyHex: undefined }];
    await KeyRing.open(join(dir.path, 'modes'), localKey, identities);
    await assert.rejects(
      KeyRing.open(join(dir.path, 'modes'), localKey, identities, {
        mode: 'public-key',
        c2PublicKey: () => Promise.reject(new Error('not asked: the identity exists')),
      }),
      (err: unknown) =>
        ProxyError.is(err, 'PROXY_KEY_STORE') &&
        /identity mode-1 holds a symmetric key but c2\.mode is public-key/.test(err.message),
    );
  });

  void it('names the path when the state is not where files can be (PROXY_KEY_STORE)', async () => {
    const file = join(dir.path, 'plain-file');
    await writeFile(file, 'x');
    const storeError =
      (...parts: RegExp[]) =>
      (err: unknown): boolean =>
        ProxyError.is(err, 'PROXY_KEY_STORE') && parts.every((p) => p.test(err.message));
    // A key store that is a directory.
    const asDir = join(dir.path, 'a-dir.e4s');
    await mkdir(asDir);
    await assert.rejects(
      new EncryptedFileClientStore(asDir, randomSymKey(), 'd').load(),
      storeError(/cannot read the key store \S+a-dir\.e4s: is a directory, not a file \(EISDIR\)/),
    );
    // A state directory that is a file, and a local key whose directory is one.
    const noIdentity = [{ name: 'x', topics: [], initialKeyHex: undefined }];
    await assert.rejects(
      KeyRing.open(file, randomSymKey(), noIdentity),
      storeError(/^stateDir \S+plain-file: cannot create the directory of the key stores: /),
    );
    await assert.rejects(
      loadOrCreateLocalKey(join(file, 'local.key'), { stateDir: file }),
      storeError(
        /^local key \S+plain-file\/local\.key: \S+plain-file: exists, and is not a directory/,
      ),
    );
  });
});

void describe('device passwords', () => {
  void it('verify against their scrypt hash only', async () => {
    const hash = hashPassword('correct horse');
    assert.match(hash, /^scrypt\$[0-9a-f]{32}\$[0-9a-f]{64}$/);
    assert.ok(await verifyPassword('correct horse', hash));
    assert.ok(!(await verifyPassword('wrong horse', hash)));
    assert.ok(!(await verifyPassword('correct horse', 'scrypt$00$00')));
  });
});
