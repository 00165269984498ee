// Pkcs11KekProvider against a real SoftHSM2 token: wrapping inside the token, the key vault on
// top of it, a KEK rotation from a local KEK into the HSM, a lost session, and every set-up error.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { inspect } from 'node:util';
import {
  InMemoryDataKeyStore,
  KeyVault,
  loadPkcs11Binding,
  LocalKekProvider,
  Pkcs11KekProvider,
  type Pkcs11Binding,
  type Pkcs11KekOptions,
  type SealBinding,
} from '../../keyvault/index.ts';
import { softHsmMissing, startSoftHsm, type SoftHsm } from '../support/softhsm.ts';
import { c2Rejection } from '../support/c2-rejection.ts';

const missing = await softHsmMissing();
/** The raw binding, for what the provider never does (closing sessions, odd keys). */
const pkcs11js = missing === undefined ? await loadPkcs11Binding() : undefined;
const random = (n: number): Uint8Array => new Uint8Array(randomBytes(n));
const binding: SealBinding = { table: 'client_keys', rowId: '42', version: 1 };
const PIN = '480213';

function raw(): Pkcs11Binding {
  assert.ok(pkcs11js !== undefined);
  return pkcs11js;
}
const TOKEN = 'e4c2-test';

void describe('Pkcs11KekProvider (SoftHSM2)', { skip: missing }, () => {
  let hsm: SoftHsm;
  let options: Pkcs11KekOptions;
  let main: Pkcs11KekProvider;

  before(async () => {
    hsm = await startSoftHsm();
    await hsm.initToken(TOKEN, PIN);
    await hsm.initToken('other-token', '999999');
    options = { modulePath: hsm.modulePath, tokenLabel: TOKEN, keyLabel: 'kek-1', pin: PIN };
    main = await Pkcs11KekProvider.generateKey(options);
  });

  after(async () => {
    main.close();
    await hsm.remove();
  });

  void it('wraps inside the token: iv || ct || tag, fresh each time, and unwraps', async () => {
    const dataKey = random(32);
    const a = await main.wrap(dataKey);
    const b = await main.wrap(dataKey);
    assert.equal(a.kekKind, 'pkcs11');
    assert.equal(a.kekId, main.keyId);
    assert.match(main.keyId, /^kek-1\/[0-9a-f]{16}$/);
    assert.equal(a.ciphertext.length, 12 + 32 + 16);
    assert.notDeepEqual(a.ciphertext, b.ciphertext);
    assert.deepEqual(await main.unwrap(a), dataKey);
    assert.equal(inspect(main), `Pkcs11KekProvider { keyId: '${main.keyId}' }`);
  });

  void it("finds the same key again by label (a node restart); the id is the key's", async () => {
    const dataKey = random(32);
    const wrapped = await main.wrap(dataKey);
    const again = await Pkcs11KekProvider.open(options);
    // The same label on another token is another key: another id, and it cannot unwrap.
    const elsewhere = await Pkcs11KekProvider.generateKey({
      ...options,
      tokenLabel: 'other-token',
      pin: '999999',
    });
    try {
      assert.equal(again.keyId, main.keyId);
      assert.deepEqual(await again.unwrap(wrapped), dataKey);
      assert.match(elsewhere.keyId, /^kek-1\//);
      assert.notEqual(elsewhere.keyId, main.keyId);
      const err = await c2Rejection(elsewhere.unwrap(wrapped));
      assert.match(err.message, /wrapped by KEK pkcs11\/kek-1\/[0-9a-f]{16}, not pkcs11\/kek-1\//);
    } finally {
      again.close();
      elsewhere.close();
    }
  });

  void it('is the KEK of a key vault, and a local KEK can be rotated into it', async () => {
    const store = new InMemoryDataKeyStore();
    const local = LocalKekProvider.fromKey(random(32));
    const vault = await KeyVault.create({ provider: local, store });
    const secret = random(32);
    const sealed = await vault.seal(secret, binding);

    assert.equal(await vault.rewrapAll(main), 1);
    for (const k of await store.list()) assert.equal(k.wrapped.kekKind, 'pkcs11');
    // A process that knows only the HSM's KEK opens what was sealed before the rotation.
    const restarted = await KeyVault.create({ provider: main, store });
    assert.deepEqual(await restarted.open(sealed, binding), secret);
    assert.equal(restarted.currentKekId, main.keyId);
  });

  void it('refuses tampered, foreign and too-short wrapped keys with C2_KEY_VAULT', async () => {
    const wrapped = await main.wrap(random(32));
    const tampered = { ...wrapped, ciphertext: wrapped.ciphertext.slice() };
    tampered.ciphertext[20] = (tampered.ciphertext[20] ?? 0) ^ 1;
    const err = await c2Rejection(main.unwrap(tampered));
    assert.equal(err.code, 'C2_KEY_VAULT');
    assert.match(err.message, /cannot unwrap data key with KEK pkcs11\//);
    const foreign = await c2Rejection(main.unwrap({ ...wrapped, kekId: 'someone-else' }));
    assert.match(foreign.message, /wrapped by KEK pkcs11\/someone-else, not pkcs11\//);
    const short = await c2Rejection(
      main.unwrap({ ...wrapped, ciphertext: wrapped.ciphertext.subarray(0, 20) }),
    );
    assert.match(short.message, /too short/);
  });

  void it('opens a new session and retries when the token closed its session', async () => {
    const provider = await Pkcs11KekProvider.open(options);
    try {
      const wrapped = await provider.wrap(Uint8Array.of(7, 7, 7));
      // Another handle on the same module closes every session of the slot (as a token reset
      // does); the login goes with them.
      const other = new (raw().PKCS11)();
      other.load(hsm.modulePath);
      const slot = other
        .C_GetSlotList(true)
        .find((s) => other.C_GetTokenInfo(s).label.trim() === TOKEN);
      assert.ok(slot !== undefined);
      other.C_CloseAllSessions(slot);
      assert.deepEqual(await provider.unwrap(wrapped), Uint8Array.of(7, 7, 7));
      assert.deepEqual(await main.unwrap(await main.wrap(Uint8Array.of(1))), Uint8Array.of(1));
    } finally {
      provider.close();
    }
  });

  void it('explains a missing token, a missing key and a label used twice', async () => {
    const token = await c2Rejection(Pkcs11KekProvider.open({ ...options, tokenLabel: 'nope' }));
    assert.equal(token.code, 'C2_CONFIG');
    assert.match(token.message, /no PKCS#11 token labelled "nope" .*\(tokens: .*"e4c2-test"/);
    const key = await c2Rejection(Pkcs11KekProvider.open({ ...options, keyLabel: 'absent' }));
    assert.equal(key.code, 'C2_CONFIG');
    assert.match(key.message, /no secret key labelled "absent" on PKCS#11 token "e4c2-test"/);
    const twice = await c2Rejection(Pkcs11KekProvider.generateKey(options));
    assert.match(twice.message, /refusing to create a second key labelled "kek-1"/);
    const module = await c2Rejection(
      Pkcs11KekProvider.open({ ...options, modulePath: '/nonexistent/libpkcs11.so' }),
    );
    assert.equal(module.code, 'C2_CONFIG');
    assert.match(module.message, /cannot load the PKCS#11 module \/nonexistent\/libpkcs11\.so/);
  });

  void it('refuses a key that is not AES-256', async () => {
    const p = raw();
    const other = new p.PKCS11();
    other.load(hsm.modulePath);
    const slot = other
      .C_GetSlotList(true)
      .find((s) => other.C_GetTokenInfo(s).label.trim() === TOKEN);
    assert.ok(slot !== undefined);
    const session = other.C_OpenSession(slot, p.CKF_SERIAL_SESSION | p.CKF_RW_SESSION);
    try {
      other.C_Login(session, p.CKU_USER, PIN);
    } catch (err) {
      // Logins are per application: `main` may have logged the user in already.
      assert.match(String(err), /CKR_USER_ALREADY_LOGGED_IN/);
    }
    other.C_GenerateKey(session, { mechanism: p.CKM_AES_KEY_GEN }, [
      { type: p.CKA_CLASS, value: p.CKO_SECRET_KEY },
      { type: p.CKA_KEY_TYPE, value: p.CKK_AES },
      { type: p.CKA_VALUE_LEN, value: 16 },
      { type: p.CKA_LABEL, value: 'aes-128' },
      { type: p.CKA_TOKEN, value: true },
      { type: p.CKA_PRIVATE, value: true },
    ]);
    other.C_CloseSession(session);
    const err = await c2Rejection(Pkcs11KekProvider.open({ ...options, keyLabel: 'aes-128' }));
    assert.equal(err.code, 'C2_CONFIG');
    assert.match(err.message, /is not an AES-256 key/);
  });

  void it('reports a wrong PIN without quoting it, and a closed provider refuses', async () => {
    const wrongPin = '135791';
    const err = await c2Rejection(
      Pkcs11KekProvider.open({ ...options, tokenLabel: 'other-token', pin: wrongPin }),
    );
    assert.equal(err.code, 'C2_KEY_VAULT');
    assert.match(err.message, /PKCS#11 login to token "other-token" failed: CKR_PIN_INCORRECT/);
    assert.ok(!err.message.includes(wrongPin));
    const closed = await Pkcs11KekProvider.open(options);
    closed.close();
    closed.close();
    const refused = await c2Rejection(closed.wrap(random(32)));
    assert.match(refused.message, /is closed/);
  });
});
