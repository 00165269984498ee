// VaultTransitKekProvider against a stand-in of Vault's transit engine on loopback (no real
// Vault can run here; see support/fake-vault-transit.ts): wrapping, Vault key versions and
// rewrap, the key vault's rotations onto it, AppRole logins and renewals, transient failures and
// every refusal.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { inspect } from 'node:util';
import {
  InMemoryDataKeyStore,
  KeyVault,
  LocalKekProvider,
  VaultTransitKekProvider,
  type SealBinding,
  type VaultTransitOptions,
} from '../../keyvault/index.ts';
import { c2Rejection } from '../support/c2-rejection.ts';
import { startFakeVault, type FakeVault } from '../support/fake-vault-transit.ts';

const random = (n: number): Uint8Array => new Uint8Array(randomBytes(n));
const binding: SealBinding = { table: 'topic_keys', rowId: '9', version: 1 };
const text = (b: Uint8Array): string => Buffer.from(b).toString('utf8');

void describe('VaultTransitKekProvider', () => {
  let vault: FakeVault;
  let options: VaultTransitOptions;

  before(async () => {
    vault = await startFakeVault();
    vault.createKey('e4c2-kek');
    vault.createKey('other');
    vault.addAppRole('role-1', 'secret-1', 1);
    options = {
      addr: vault.addr,
      keyName: 'e4c2-kek',
      auth: { kind: 'token', token: vault.rootToken },
      attempts: 3,
    };
  });

  after(() => vault.close());

  void it('wraps with Vault: versioned ciphertext, fresh each time, unwrapped back', async () => {
    const provider = await VaultTransitKekProvider.connect(options);
    const dataKey = random(32);
    const a = await provider.wrap(dataKey);
    const b = await provider.wrap(dataKey);
    assert.equal(a.kekKind, 'vault-transit');
    assert.equal(a.kekId, 'transit/e4c2-kek');
    assert.match(text(a.ciphertext), /^vault:v1:[A-Za-z0-9+/=]+$/);
    assert.notEqual(text(a.ciphertext), text(b.ciphertext));
    assert.deepEqual(await provider.unwrap(a), dataKey);
    assert.equal(inspect(provider), "VaultTransitKekProvider { keyId: 'transit/e4c2-kek' }");
    assert.ok(!inspect(provider, { showHidden: true }).includes(vault.rootToken));
  });

  void it('follows a key rotation in Vault: rewrap, then old versions retired', async () => {
    vault.createKey('rotating');
    const provider = await VaultTransitKekProvider.connect({ ...options, keyName: 'rotating' });
    const dataKey = random(32);
    const v1 = await provider.wrap(dataKey);
    vault.rotateKey('rotating');
    assert.match(text((await provider.wrap(dataKey)).ciphertext), /^vault:v2:/);
    assert.deepEqual(await provider.unwrap(v1), dataKey, 'older versions still decrypt');
    const v2 = await provider.refresh(v1);
    assert.match(text(v2.ciphertext), /^vault:v2:/);
    vault.setMinDecryptionVersion('rotating', 2);
    const err = await c2Rejection(provider.unwrap(v1));
    assert.equal(err.code, 'C2_KEY_VAULT');
    assert.match(err.message, /disallowed by policy \(too old\)/);
    assert.deepEqual(await provider.unwrap(v2), dataKey);
  });

  void it('is a key vault KEK: a local KEK rotated onto it, then its own versions refreshed', async () => {
    vault.createKey('vaulted');
    const provider = await VaultTransitKekProvider.connect({ ...options, keyName: 'vaulted' });
    const store = new InMemoryDataKeyStore();
    const local = LocalKekProvider.fromKey(random(32));
    const keys = await KeyVault.create({ provider: local, store });
    const secret = random(32);
    const sealed = await keys.seal(secret, binding);
    assert.equal(await keys.rewrapAll(provider), 1, 'local -> Vault');
    vault.rotateKey('vaulted');
    assert.equal(await keys.rewrapAll(provider), 1, 'Vault v1 -> v2');
    const decrypts = (): number => vault.requests.filter((r) => r.includes('/decrypt/')).length;
    const before = decrypts();
    assert.equal(await keys.rewrapAll(provider), 0, 'nothing left to move');
    assert.equal(decrypts(), before, 'a data key at the newest version is not decrypted to check');
    for (const k of await store.list()) assert.match(text(k.wrapped.ciphertext), /^vault:v2:/);
    vault.setMinDecryptionVersion('vaulted', 2);
    const restarted = await KeyVault.create({ provider, store });
    assert.deepEqual(await restarted.open(sealed, binding), secret);
  });

  void it('logs in with AppRole, and again before the token expires or once it is revoked', async () => {
    const provider = await VaultTransitKekProvider.connect({
      ...options,
      auth: { kind: 'approle', roleId: 'role-1', secretId: 'secret-1' },
      namespace: 'team-a',
    });
    const logins = (): number =>
      vault.requests.filter((r) => r === 'POST /v1/auth/approle/login').length;
    const first = logins();
    const wrapped = await provider.wrap(random(32));
    assert.equal(logins(), first, 'the token is reused');
    await new Promise((r) => setTimeout(r, 800)); // past 2/3 of its 1 s life
    await provider.unwrap(wrapped);
    assert.equal(logins(), first + 1, 'renewed before it expired');
    vault.revokeTokens();
    await provider.unwrap(wrapped);
    assert.equal(logins(), first + 2, 'a 403 logs in again, once');
    assert.ok(vault.namespaces.length > 0 && vault.namespaces.every((n) => n === 'team-a'));
  });

  void it('retries a sealed or standby Vault, then reports it unavailable', async () => {
    const provider = await VaultTransitKekProvider.connect(options);
    const dataKey = random(32);
    vault.failNext(2);
    const wrapped = await provider.wrap(dataKey);
    assert.deepEqual(await provider.unwrap(wrapped), dataKey);
    // An AppRole login meets the sealed node too, and is tried again.
    vault.failNext(1);
    const viaRole = await VaultTransitKekProvider.connect({
      ...options,
      auth: { kind: 'approle', roleId: 'role-1', secretId: 'secret-1' },
    });
    assert.deepEqual(await viaRole.unwrap(wrapped), dataKey);
    vault.failNext(10);
    const err = await c2Rejection(provider.unwrap(wrapped));
    assert.equal(err.code, 'C2_UNAVAILABLE');
    assert.match(err.message, /^Vault at http:\/\/127\.0\.0\.1:\d+ is unavailable: answered 503/);
    vault.failNext(0);
  });

  void it('refuses with typed errors that never quote the token', async () => {
    const denied = await c2Rejection(
      VaultTransitKekProvider.connect({
        ...options,
        auth: { kind: 'token', token: 'wrong-token-123' },
      }),
    );
    assert.equal(denied.code, 'C2_KEY_VAULT');
    assert.match(denied.message, /was denied \(403: permission denied\): check the token/);
    assert.ok(!denied.message.includes('wrong-token-123'));
    const noKey = await c2Rejection(
      VaultTransitKekProvider.connect({ ...options, keyName: 'nope' }),
    );
    assert.match(noKey.message, /was refused \(400: encryption key not found\)/);
    const noMount = await c2Rejection(VaultTransitKekProvider.connect({ ...options, mount: 'kv' }));
    assert.equal(noMount.code, 'C2_CONFIG');
    assert.match(noMount.message, /is a transit engine mounted at "kv"\?/);
    const badLogin = await c2Rejection(
      VaultTransitKekProvider.connect({
        ...options,
        auth: { kind: 'approle', roleId: 'role-1', secretId: 'not-it' },
      }),
    );
    assert.match(badLogin.message, /AppRole login failed \(400: invalid role or secret ID\)/);
    const notUrl = await c2Rejection(
      VaultTransitKekProvider.connect({ ...options, addr: 'vault' }),
    );
    assert.equal(notUrl.code, 'C2_CONFIG');

    const provider = await VaultTransitKekProvider.connect(options);
    const wrapped = await provider.wrap(random(32));
    const tampered = text(wrapped.ciphertext).replace(
      /.(=*)$/,
      (m, pad: string) => (m.startsWith('A') ? 'B' : 'A') + pad,
    );
    const bad = await c2Rejection(
      provider.unwrap({ ...wrapped, ciphertext: new Uint8Array(Buffer.from(tampered)) }),
    );
    assert.match(bad.message, /refused \(400: cipher: message authentication failed\)/);
    const foreign = await c2Rejection(provider.unwrap({ ...wrapped, kekId: 'transit/other' }));
    assert.match(foreign.message, /wrapped by KEK vault-transit\/transit\/other/);
  });

  void it('reports a Vault that does not answer as unavailable', async () => {
    // A port nothing listens on any more.
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as { port: number }).port;
    await new Promise<void>((resolve) =>
      server.close(() => {
        resolve();
      }),
    );
    const err = await c2Rejection(
      VaultTransitKekProvider.connect({
        ...options,
        addr: `http://127.0.0.1:${port}`,
        attempts: 2,
      }),
    );
    assert.equal(err.code, 'C2_UNAVAILABLE');
    assert.match(err.message, /ECONNREFUSED/);
  });
});
