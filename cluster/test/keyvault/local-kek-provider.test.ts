// LocalKekProvider: wrapping, KEK ids, the passphrase KDF, and the key file's permissions.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { chmod, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { inspect } from 'node:util';
import { LocalKekProvider } from '../../keyvault/index.ts';
import { c2Rejection } from '../support/c2-rejection.ts';

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

void describe('LocalKekProvider wrapping', () => {
  const kek = new Uint8Array(randomBytes(32));
  const provider = LocalKekProvider.fromKey(kek);

  void it('round-trips a data key, with fresh ciphertext each time', async () => {
    const dataKey = new Uint8Array(randomBytes(32));
    const a = await provider.wrap(dataKey);
    const b = await provider.wrap(dataKey);
    assert.equal(a.kekKind, 'local');
    assert.equal(a.kekId, provider.keyId);
    assert.equal(a.ciphertext.length, 12 + 32 + 16);
    assert.notDeepEqual(a.ciphertext, b.ciphertext);
    assert.deepEqual(await provider.unwrap(a), dataKey);
  });

  void it('gives a stable 16-hex id that differs between KEKs and is not derived from the raw key alone', () => {
    assert.match(provider.keyId, /^[0-9a-f]{16}$/);
    assert.equal(LocalKekProvider.fromKey(kek).keyId, provider.keyId);
    assert.notEqual(
      LocalKekProvider.fromKey(new Uint8Array(randomBytes(32))).keyId,
      provider.keyId,
    );
    assert.ok(!hex(kek).includes(provider.keyId));
  });

  void it('refuses keys of another KEK and tampered ciphertext, without key bytes in messages', async () => {
    const dataKey = new Uint8Array(randomBytes(32));
    const wrapped = await provider.wrap(dataKey);
    const other = LocalKekProvider.fromKey(new Uint8Array(randomBytes(32)));
    const foreign = await c2Rejection(other.unwrap(wrapped));
    assert.equal(foreign.code, 'C2_KEY_VAULT');
    const forged = await c2Rejection(other.unwrap({ ...wrapped, kekId: other.keyId }));
    assert.match(forged.message, /authentication failed/);
    const tampered = new Uint8Array(wrapped.ciphertext);
    tampered[20] = (tampered[20] ?? 0) ^ 1;
    const bad = await c2Rejection(provider.unwrap({ ...wrapped, ciphertext: tampered }));
    for (const e of [foreign, forged, bad]) {
      for (const secret of [hex(kek), hex(dataKey)]) assert.ok(!e.message.includes(secret));
    }
  });

  void it('does not show the key when inspected', () => {
    const text = inspect(provider, { depth: Infinity, showHidden: true });
    assert.equal(text, `LocalKekProvider { keyId: '${provider.keyId}' }`);
  });
});

void describe('LocalKekProvider.fromPassphrase', () => {
  const passphrase = 'correct horse battery staple';

  void it('derives different KEKs from different salts, the same KEK from the same salt', async () => {
    const salt1 = LocalKekProvider.newSalt();
    const salt2 = LocalKekProvider.newSalt();
    assert.equal(salt1.length, 16);
    assert.notDeepEqual(salt1, salt2);
    const a = await LocalKekProvider.fromPassphrase(passphrase, salt1);
    const b = await LocalKekProvider.fromPassphrase(passphrase, salt2);
    const again = await LocalKekProvider.fromPassphrase(passphrase, salt1);
    assert.notEqual(a.keyId, b.keyId);
    assert.equal(again.keyId, a.keyId);
    const dataKey = new Uint8Array(randomBytes(32));
    assert.deepEqual(await again.unwrap(await a.wrap(dataKey)), dataKey);
    await c2Rejection(b.unwrap({ ...(await a.wrap(dataKey)), kekId: b.keyId }));
  });

  void it('rejects short passphrases and salts without quoting them', async () => {
    const short = await c2Rejection(
      LocalKekProvider.fromPassphrase('tooShort!', LocalKekProvider.newSalt()),
    );
    assert.equal(short.code, 'C2_KEY_VAULT');
    assert.ok(!short.message.includes('tooShort!'));
    await c2Rejection(LocalKekProvider.fromPassphrase(passphrase, new Uint8Array(8)));
  });
});

void describe('LocalKekProvider key files', () => {
  let dir = '';
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'e4c2-kek-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  void it('generates a 0600 file, refuses to overwrite it, and reads it back', async () => {
    const path = join(dir, 'nested', 'kek.key');
    const generated = await LocalKekProvider.generateKeyFile(path);
    assert.equal((await stat(path)).mode & 0o777, 0o600);
    assert.match(await readFile(path, 'latin1'), /^[0-9a-f]{64}\n$/);
    const before = await readFile(path);
    const refused = await c2Rejection(LocalKekProvider.generateKeyFile(path));
    assert.equal(refused.code, 'C2_KEY_VAULT');
    assert.match(refused.message, /refusing to overwrite/);
    assert.deepEqual(await readFile(path), before);
    assert.equal((await LocalKekProvider.fromKeyFile(path)).keyId, generated.keyId);
  });

  void it('loads or generates, returning the same KEK on the second start', async () => {
    const path = join(dir, 'auto.key');
    const first = await LocalKekProvider.loadOrGenerateKeyFile(path);
    const second = await LocalKekProvider.loadOrGenerateKeyFile(path);
    assert.equal(second.keyId, first.keyId);
    assert.equal((await stat(path)).mode & 0o777, 0o600);
  });

  void it('reads raw 32-byte and hex files to the same KEK', async () => {
    const key = new Uint8Array(randomBytes(32));
    const raw = join(dir, 'raw.key');
    const text = join(dir, 'hex.key');
    await writeFile(raw, key, { mode: 0o600 });
    await writeFile(text, `  ${hex(key).toUpperCase()}\r\n`, { mode: 0o600 });
    const expected = LocalKekProvider.fromKey(key).keyId;
    assert.equal((await LocalKekProvider.fromKeyFile(raw)).keyId, expected);
    assert.equal((await LocalKekProvider.fromKeyFile(text)).keyId, expected);
  });

  void it('refuses a file group or others can read, unless allowed', async () => {
    const key = new Uint8Array(randomBytes(32));
    const path = join(dir, 'open.key');
    await writeFile(path, hex(key));
    await chmod(path, 0o644);
    const err = await c2Rejection(LocalKekProvider.fromKeyFile(path));
    assert.equal(err.code, 'C2_KEY_VAULT');
    assert.match(err.message, /accessible by group or others \(mode 0644\); run "chmod 600/);
    assert.ok(!err.message.includes(hex(key)));
    await chmod(path, 0o640);
    await c2Rejection(LocalKekProvider.fromKeyFile(path));
    const allowed = await LocalKekProvider.fromKeyFile(path, { allowInsecurePermissions: true });
    assert.equal(allowed.keyId, LocalKekProvider.fromKey(key).keyId);
  });

  void it('reports missing, malformed and all-zero files without their content', async () => {
    assert.match(
      (await c2Rejection(LocalKekProvider.fromKeyFile(join(dir, 'none')))).message,
      /does not exist/,
    );
    const bad = join(dir, 'bad.key');
    await writeFile(bad, 'not-a-key-but-a-secret-looking-string', { mode: 0o600 });
    const malformed = await c2Rejection(LocalKekProvider.fromKeyFile(bad));
    assert.match(malformed.message, /must hold 32 raw bytes or 64 hex characters/);
    assert.ok(!malformed.message.includes('secret-looking'));
    const zero = join(dir, 'zero.key');
    await writeFile(zero, new Uint8Array(32), { mode: 0o600 });
    assert.match((await c2Rejection(LocalKekProvider.fromKeyFile(zero))).message, /all-zero/);
    assert.match(
      (await c2Rejection(LocalKekProvider.fromKeyFile(dir))).message,
      /not a regular file/,
    );
  });
});
