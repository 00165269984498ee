// KeyVault: sealing bound to (table, rowId, version), tamper detection, DEK and KEK rotation.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { inspect } from 'node:util';
import {
  InMemoryDataKeyStore,
  KeyVault,
  keyFingerprint,
  LocalKekProvider,
  type KekProvider,
  type SealBinding,
  type StoredDataKey,
} from '../../keyvault/index.ts';
import { C2Error } from '../../errors.ts';
import { c2Rejection } from '../support/c2-rejection.ts';

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const random = (n: number): Uint8Array => new Uint8Array(randomBytes(n));
const binding: SealBinding = { table: 'topic_keys', rowId: 'topic-1', version: 3 };

/** A KEK bundled with its raw bytes, so tests can check they never leak. */
function newKek(): { bytes: Uint8Array; provider: LocalKekProvider } {
  const bytes = random(32);
  return { bytes, provider: LocalKekProvider.fromKey(bytes) };
}

void describe('KeyVault seal and open', () => {
  void it('round-trips, with a versioned envelope naming the data key', async () => {
    const store = new InMemoryDataKeyStore();
    const vault = await KeyVault.create({ provider: newKek().provider, store });
    const key = random(32);
    const sealed = await vault.seal(key, binding);
    const dekId = Buffer.from(vault.currentDataKeyId);
    assert.equal(sealed[0], 0x01);
    assert.equal(sealed[1], dekId.length);
    assert.deepEqual(Buffer.from(sealed.subarray(2, 2 + dekId.length)), dekId);
    assert.equal(sealed.length, 2 + dekId.length + 12 + key.length + 16);
    assert.deepEqual(await vault.open(sealed, binding), key);
    assert.notDeepEqual(await vault.seal(key, binding), sealed, 'fresh IV per seal');
    assert.equal((await store.list()).length, 1);
  });

  void it('refuses a sealed value moved to another table, row or version', async () => {
    const vault = await KeyVault.create({
      provider: newKek().provider,
      store: new InMemoryDataKeyStore(),
    });
    const key = random(32);
    const sealed = await vault.seal(key, binding);
    const elsewhere: SealBinding[] = [
      { ...binding, table: 'client_keys' },
      { ...binding, rowId: 'topic-2' },
      { ...binding, version: 2 },
      // Same concatenated bytes, different split: the length prefixes must tell them apart.
      { table: 'topic_keystopic-1', rowId: '', version: 3 },
      { table: 'topic_key', rowId: 'stopic-1', version: 3 },
    ];
    for (const b of elsewhere) {
      const err = await c2Rejection(vault.open(sealed, b));
      assert.ok(err.code === 'C2_KEY_VAULT' || err.code === 'C2_VALIDATION', err.message);
      assert.ok(!err.message.includes(hex(key)));
    }
    const err = await c2Rejection(vault.open(sealed, { ...binding, version: 4 }));
    assert.equal(err.code, 'C2_KEY_VAULT');
    assert.equal(
      err.message,
      'cannot open topic_keys/topic-1 version 4: authentication failed (tampered, or sealed for another row or version)',
    );
    assert.deepEqual(err.details, { table: 'topic_keys', rowId: 'topic-1', version: 4 });
  });

  void it('detects a change to any byte, and truncation', async () => {
    const kek = newKek();
    const vault = await KeyVault.create({
      provider: kek.provider,
      store: new InMemoryDataKeyStore(),
    });
    const key = random(32);
    const sealed = await vault.seal(key, binding);
    for (let i = 0; i < sealed.length; i++) {
      const tampered = new Uint8Array(sealed);
      tampered[i] = (tampered[i] ?? 0) ^ 0x80;
      const err = await c2Rejection(vault.open(tampered, binding));
      assert.equal(err.code, 'C2_KEY_VAULT', `byte ${i}`);
      for (const secret of [hex(key), hex(kek.bytes)]) assert.ok(!err.message.includes(secret));
    }
    for (const length of [0, 1, 2, 20, sealed.length - 1]) {
      assert.equal(
        (await c2Rejection(vault.open(sealed.subarray(0, length), binding))).code,
        'C2_KEY_VAULT',
      );
    }
  });

  void it('rejects malformed bindings', async () => {
    const vault = await KeyVault.create({
      provider: newKek().provider,
      store: new InMemoryDataKeyStore(),
    });
    for (const b of [
      { ...binding, table: '' },
      { ...binding, version: -1 },
      { ...binding, version: 1.5 },
    ]) {
      assert.equal((await c2Rejection(vault.seal(random(32), b))).code, 'C2_VALIDATION');
    }
  });

  void it('shows no key material when inspected', async () => {
    const kek = newKek();
    const vault = await KeyVault.create({
      provider: kek.provider,
      store: new InMemoryDataKeyStore(),
    });
    const text = inspect(vault, { depth: Infinity, showHidden: true });
    assert.match(
      text,
      /^KeyVault \{ currentDataKeyId: '\d+', dataKeys: 1, kekId: '[0-9a-f]{16}' \}$/,
    );
    assert.ok(!text.includes(hex(kek.bytes)));
  });
});

void describe('KeyVault data keys', () => {
  void it('reuses the stored data key on restart', async () => {
    const kek = newKek();
    const store = new InMemoryDataKeyStore();
    const first = await KeyVault.create({ provider: kek.provider, store });
    const sealed = await first.seal(Uint8Array.of(1, 2, 3), binding);
    const second = await KeyVault.create({ provider: kek.provider, store });
    assert.equal(second.currentDataKeyId, first.currentDataKeyId);
    assert.deepEqual(await second.open(sealed, binding), Uint8Array.of(1, 2, 3));
    assert.equal((await store.list()).length, 1);
  });

  void it('rotates the data key; old values still open', async () => {
    const store = new InMemoryDataKeyStore();
    let clock = 1_000;
    const kek = newKek();
    const vault = await KeyVault.create({
      provider: kek.provider,
      store,
      now: () => new Date(clock++),
    });
    const oldId = vault.currentDataKeyId;
    const old = await vault.seal(Uint8Array.of(7), binding);
    const newId = await vault.rotateDataKey();
    assert.notEqual(newId, oldId);
    assert.equal(vault.currentDataKeyId, newId);
    const fresh = await vault.seal(Uint8Array.of(8), binding);
    assert.equal(Buffer.from(fresh.subarray(2, 2 + (fresh[1] ?? 0))).toString(), newId);
    assert.deepEqual(await vault.open(old, binding), Uint8Array.of(7));
    assert.deepEqual(await vault.open(fresh, binding), Uint8Array.of(8));
    // A restarted node seals with the newest data key.
    const restarted = await KeyVault.create({ provider: kek.provider, store });
    assert.equal(restarted.currentDataKeyId, newId);
  });

  void it('opens values sealed by another node under a data key it has not loaded yet', async () => {
    const kek = newKek();
    const store = new InMemoryDataKeyStore();
    const nodeA = await KeyVault.create({ provider: kek.provider, store });
    const nodeB = await KeyVault.create({ provider: kek.provider, store });
    await nodeA.rotateDataKey();
    const sealed = await nodeA.seal(Uint8Array.of(9), binding);
    assert.deepEqual(await nodeB.open(sealed, binding), Uint8Array.of(9));
  });

  void it('says unavailable, not a key that never opens, while the KEK is out of reach, and opens once it is back', async () => {
    const inner = newKek().provider;
    let reachable = true;
    // Vault sealed, an HSM not answering: the providers report C2_UNAVAILABLE.
    const flaky: KekProvider = {
      kind: inner.kind,
      keyId: inner.keyId,
      wrap: (k) => inner.wrap(k),
      unwrap: (w) =>
        reachable
          ? inner.unwrap(w)
          : Promise.reject(new C2Error('C2_UNAVAILABLE', 'Vault at x is unavailable')),
    };
    const store = new InMemoryDataKeyStore();
    const nodeA = await KeyVault.create({ provider: flaky, store });
    const sealed = await nodeA.seal(Uint8Array.of(4), binding);
    // Another node's data key (two nodes started on an empty database make one each), which
    // nodeA unwraps only when it first meets a value sealed under it.
    const nodeB = await KeyVault.create({ provider: flaky, store });
    await nodeB.rotateDataKey();
    const late = await nodeB.seal(Uint8Array.of(6), binding);
    reachable = false;
    const err = await c2Rejection(nodeA.open(late, binding));
    assert.equal(err.code, 'C2_UNAVAILABLE');
    assert.match(err.message, /cannot unwrap data key \d+: Vault at x is unavailable/);
    const atStart = await c2Rejection(KeyVault.create({ provider: flaky, store }));
    assert.equal(atStart.code, 'C2_UNAVAILABLE');
    reachable = true;
    assert.deepEqual(await nodeA.open(late, binding), Uint8Array.of(6));
    assert.deepEqual(await nodeA.open(sealed, binding), Uint8Array.of(4));
  });

  void it('reports an unknown data key by id', async () => {
    const vault = await KeyVault.create({
      provider: newKek().provider,
      store: new InMemoryDataKeyStore(),
    });
    const other = await KeyVault.create({
      provider: newKek().provider,
      store: new InMemoryDataKeyStore(),
    });
    const err = await c2Rejection(vault.open(await other.seal(random(32), binding), binding));
    assert.equal(err.code, 'C2_KEY_VAULT');
    assert.match(err.message, /unknown data key \d+/);
  });

  void it('fails at start-up when the stored data keys were wrapped by another KEK', async () => {
    const store = new InMemoryDataKeyStore();
    const original = newKek();
    await KeyVault.create({ provider: original.provider, store });
    const wrong = newKek();
    const err = await c2Rejection(KeyVault.create({ provider: wrong.provider, store }));
    assert.equal(err.code, 'C2_KEY_VAULT');
    assert.match(err.message, new RegExp(`KEK local/${original.provider.keyId} is not configured`));
    for (const secret of [hex(original.bytes), hex(wrong.bytes)])
      assert.ok(!err.message.includes(secret));
  });
});

void describe('KeyVault KEK rotation', () => {
  void it('re-wraps every data key so the old KEK is no longer needed', async () => {
    const store = new InMemoryDataKeyStore();
    const oldKek = newKek();
    const vault = await KeyVault.create({ provider: oldKek.provider, store });
    const a = await vault.seal(Uint8Array.of(1), binding);
    await vault.rotateDataKey();
    const b = await vault.seal(Uint8Array.of(2), { ...binding, version: 4 });
    const newKekPair = newKek();

    assert.equal(await vault.rewrapAll(newKekPair.provider), 2);
    assert.equal(vault.currentKekId, newKekPair.provider.keyId);
    for (const k of await store.list()) assert.equal(k.wrapped.kekId, newKekPair.provider.keyId);
    assert.equal(await vault.rewrapAll(newKekPair.provider), 0, 'idempotent');

    // A fresh process that knows only the new KEK opens everything sealed before the rotation.
    const restarted = await KeyVault.create({ provider: newKekPair.provider, store });
    assert.deepEqual(await restarted.open(a, binding), Uint8Array.of(1));
    assert.deepEqual(await restarted.open(b, { ...binding, version: 4 }), Uint8Array.of(2));
    // New data keys are wrapped by the new KEK.
    await vault.rotateDataKey();
    for (const k of await store.list()) assert.equal(k.wrapped.kekId, newKekPair.provider.keyId);
  });

  void it('accepts previous KEKs during a rotation that has not finished', async () => {
    const store = new InMemoryDataKeyStore();
    const oldKek = newKek();
    const vault = await KeyVault.create({ provider: oldKek.provider, store });
    const sealed = await vault.seal(Uint8Array.of(5), binding);
    const next = newKek();
    const both = await KeyVault.create({
      provider: next.provider,
      previousProviders: [oldKek.provider],
      store,
    });
    assert.deepEqual(await both.open(sealed, binding), Uint8Array.of(5));
    assert.equal(await both.rewrapAll(next.provider), 1);
  });

  void it('leaves stored keys untouched when a KEK refresh changes the data key', async () => {
    const store = new InMemoryDataKeyStore();
    const inner = newKek().provider;
    // A versioned KEK whose refresh is broken: it wraps another key instead of the same one.
    const versioned: KekProvider = {
      kind: inner.kind,
      keyId: inner.keyId,
      wrap: (k) => inner.wrap(k),
      unwrap: (w) => inner.unwrap(w),
      refresh: () => inner.wrap(random(32)),
    };
    const vault = await KeyVault.create({ provider: versioned, store });
    const before: StoredDataKey[] = await store.list();
    const err = await c2Rejection(vault.rewrapAll(versioned));
    assert.equal(err.code, 'C2_KEY_VAULT');
    assert.match(err.message, /did not keep a data key across its refresh/);
    assert.deepEqual(await store.list(), before);
  });

  void it('leaves stored keys untouched when the new KEK does not round-trip', async () => {
    const store = new InMemoryDataKeyStore();
    const vault = await KeyVault.create({ provider: newKek().provider, store });
    const before: StoredDataKey[] = await store.list();
    const broken: KekProvider = {
      kind: 'broken',
      keyId: 'broken-1',
      wrap: (k) => Promise.resolve({ kekKind: 'broken', kekId: 'broken-1', ciphertext: k }),
      unwrap: () => Promise.resolve(random(32)),
    };
    const err = await c2Rejection(vault.rewrapAll(broken));
    assert.equal(err.code, 'C2_KEY_VAULT');
    assert.match(err.message, /did not round-trip/);
    assert.deepEqual(await store.list(), before);
    assert.notEqual(vault.currentKekId, 'broken-1');
  });
});

void describe('keyFingerprint', () => {
  void it('is the first 16 hex characters of SHA-256("e4c2-fingerprint-v1" || key)', () => {
    const key = random(32);
    const expected = createHash('sha256')
      .update(Buffer.concat([Buffer.from('e4c2-fingerprint-v1'), key]))
      .digest('hex')
      .slice(0, 16);
    assert.equal(keyFingerprint(key), expected);
    assert.notEqual(keyFingerprint(random(32)), expected);
    assert.ok(!hex(key).includes(expected));
  });
});
