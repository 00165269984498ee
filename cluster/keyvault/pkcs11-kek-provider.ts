/**
 * A KEK held by a hardware security module over PKCS#11 (DESIGN R8): an AES-256 secret key that
 * never leaves the token (sensitive, not extractable); data keys are wrapped and unwrapped by the
 * token itself with AES-GCM. Tested with SoftHSM2; any PKCS#11 v2.40 module with CKM_AES_GCM
 * works the same way.
 *
 * The binding is the optional native package `pkcs11js`, loaded only when this provider is
 * configured, so a deployment without an HSM does not need it built.
 */
import { createHash, randomBytes } from 'node:crypto';
import { inspect } from 'node:util';
import { C2Error } from '../errors.ts';
import { GCM_IV_BYTES, GCM_TAG_BYTES } from './aes-gcm.ts';
import { notWrappedBy, type KekProvider, type WrappedKey } from './kek-provider.ts';
import {
  loadPkcs11Binding,
  type Handle,
  type Pkcs11Api,
  type Pkcs11Binding,
  type Pkcs11Mechanism,
} from './pkcs11-binding.ts';
import {
  isPinRefusal,
  PIN_REFUSED,
  pinRefusedError,
  recordRefusal,
  refusalOf,
} from './pkcs11-pin-latch.ts';

const KIND = 'pkcs11';
const encoder = new TextEncoder();
/** Associated data of the key check value (never that of a wrap). */
const CHECK_AAD = Buffer.from('e4c2-kek-check-v1');

/** Where the KEK is: module, token, key, and the user PIN that opens the token. */
export interface Pkcs11KekOptions {
  /** Path of the PKCS#11 module (e.g. `/usr/lib/softhsm/libsofthsm2.so`). */
  readonly modulePath: string;
  /** Label of the token that holds the key. */
  readonly tokenLabel: string;
  /** `CKA_LABEL` of the AES-256 key; a new label is a new KEK (KEK rotation). */
  readonly keyLabel: string;
  /** The token's user PIN (never logged, never in an error message). */
  readonly pin: string;
  /**
   * Told once when the token refuses the PIN on a login after the provider opened (a session
   * lost, the PIN changed meanwhile): every later call fails with that error, without logging
   * in again, until the process restarts. For an error-level log line; must not throw.
   */
  readonly onPinRefused?: (error: C2Error) => void;
}

/**
 * An initialized module, shared by every provider on it: C_Initialize is once per process and
 * module, and a token's login is shared by all of the application's sessions.
 */
interface LoadedModule {
  readonly api: Pkcs11Api;
  readonly p: Pkcs11Binding;
  users: number;
  /** Set when the last user released it (C_Finalize called): open it anew. */
  finalized: boolean;
}

const modules = new Map<string, Promise<LoadedModule>>();

/**
 * The `details` of a set-up error caused by option `option` (`{ option: 'pin' }`), from which the
 * composition root names the setting the option came from.
 */
const at = (option: keyof Pkcs11KekOptions): { readonly option: string } => ({ option });

function openModule(modulePath: string): Promise<LoadedModule> {
  let loaded = modules.get(modulePath);
  if (loaded === undefined) {
    loaded = (async () => {
      const p = await loadPkcs11Binding();
      const api = new p.PKCS11();
      try {
        api.load(modulePath);
        api.C_Initialize();
      } catch (err) {
        throw new C2Error(
          'C2_CONFIG',
          `cannot load the PKCS#11 module ${modulePath}: ${pkcs11Reason(err)}`,
          { cause: err, details: at('modulePath') },
        );
      }
      return { api, p, users: 0, finalized: false };
    })();
    modules.set(modulePath, loaded);
    loaded.catch(() => modules.delete(modulePath));
  }
  return loaded;
}

function releaseModule(modulePath: string, module: LoadedModule): void {
  module.users--;
  if (module.users > 0) return;
  module.finalized = true;
  modules.delete(modulePath);
  try {
    module.api.C_Finalize();
    module.api.close();
  } catch {
    // Closing is best effort: the process is usually about to exit.
  }
}

/** The PKCS#11 return value name of a binding error (`CKR_PIN_INCORRECT`), or its message. */
function pkcs11Reason(err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  return /^CKR_\w+/.exec(message)?.[0] ?? message.split('\n')[0] ?? 'unknown error';
}

/** Return values after which a fresh session (and login) may succeed. */
const SESSION_LOST = new Set([
  'CKR_SESSION_HANDLE_INVALID',
  'CKR_SESSION_CLOSED',
  'CKR_USER_NOT_LOGGED_IN',
  'CKR_DEVICE_REMOVED',
  'CKR_TOKEN_NOT_PRESENT',
]);

/**
 * Return values after which the key handle no longer names the key (the token reloaded its
 * objects, an HSM restarted or failed over to a replica): finding the key again may succeed.
 */
const HANDLE_STALE = new Set(['CKR_OBJECT_HANDLE_INVALID', 'CKR_KEY_HANDLE_INVALID']);

/**
 * Return values of a token that is out of reach for now, when a fresh session did not help
 * either: `C2_UNAVAILABLE`, which callers retry, rather than a key that will never open.
 */
const UNREACHABLE = new Set([
  ...SESSION_LOST,
  ...HANDLE_STALE,
  'CKR_DEVICE_ERROR',
  'CKR_DEVICE_MEMORY',
  'CKR_TOKEN_NOT_RECOGNIZED',
]);

/** A CK_ULONG attribute value (native byte order, 4 or 8 bytes), or -1 when it is not one. */
function ulongOf(value: unknown): number {
  if (!Buffer.isBuffer(value)) return -1;
  if (value.length === 8) return Number(value.readBigUInt64LE(0));
  if (value.length === 4) return value.readUInt32LE(0);
  return -1;
}

/** The token's label as PKCS#11 pads it (32 characters, blank-padded). */
const trimLabel = (label: string): string => label.replace(/[\s\0]+$/, '');

/**
 * Wraps data keys with AES-256-GCM inside the token: wrapped ciphertext = iv(12) || ct || tag(16),
 * with the provider kind and KEK id as associated data (the same layout as the local provider).
 * The KEK id is the key's label and a check value of the key itself (as HSM vendors' KCVs): the
 * same key replicated to another HSM has the same id, a different key under the same label has
 * another one, and the id reveals nothing about the key.
 */
export class Pkcs11KekProvider implements KekProvider {
  readonly kind = KIND;
  readonly #options: Pkcs11KekOptions;
  readonly #module: LoadedModule;
  readonly #slot: Handle;
  #keyId = '';
  #aad = Buffer.alloc(0);
  #session: Handle | undefined;
  #key: Handle | undefined;
  #closed = false;

  private constructor(options: Pkcs11KekOptions, module: LoadedModule, slot: Handle) {
    this.#options = options;
    this.#module = module;
    this.#slot = slot;
  }

  /** `<key label>/<check value>`; set once the key is found. */
  get keyId(): string {
    return this.#keyId;
  }

  /**
   * Opens the token labelled `tokenLabel`, logs in with the PIN and finds the AES-256 key
   * labelled `keyLabel`. PKCS#11 logins are per application: while another provider of this
   * process is logged in to the same token, the PIN is not checked again.
   * @throws C2Error `C2_CONFIG` when the module, token or key is missing or unsuitable;
   *   `C2_KEY_VAULT` when the login fails
   */
  static open(options: Pkcs11KekOptions): Promise<Pkcs11KekProvider> {
    return Pkcs11KekProvider.#connectAnd(options, (provider) => provider.#findKey());
  }

  /**
   * Creates the AES-256 key labelled `keyLabel` on the token (sensitive, not extractable, for
   * encryption and decryption only) and returns its provider. For first set-up and KEK rotation;
   * an HSM's own tools can create the key instead.
   * @throws C2Error `C2_CONFIG` when a key with that label exists already (it is never replaced)
   */
  static generateKey(options: Pkcs11KekOptions): Promise<Pkcs11KekProvider> {
    return Pkcs11KekProvider.#connectAnd(options, (provider) => {
      provider.#generate();
    });
  }

  /** Connects, then finds or creates the key; closes the session if that fails. */
  static async #connectAnd(
    options: Pkcs11KekOptions,
    prepareKey: (provider: Pkcs11KekProvider) => unknown,
  ): Promise<Pkcs11KekProvider> {
    const provider = await Pkcs11KekProvider.#connect(options);
    try {
      prepareKey(provider);
      return provider;
    } catch (err) {
      provider.close();
      throw err;
    }
  }

  static async #connect(options: Pkcs11KekOptions): Promise<Pkcs11KekProvider> {
    if (options.keyLabel.length === 0)
      throw new C2Error('C2_CONFIG', 'the PKCS#11 key label must not be empty', {
        details: at('keyLabel'),
      });
    let module = await openModule(options.modulePath);
    // The last provider of the module may have closed it while this one waited for it.
    while (module.finalized) module = await openModule(options.modulePath);
    module.users++;
    try {
      const { api } = module;
      const labels: string[] = [];
      for (const slot of api.C_GetSlotList(true)) {
        const info = api.C_GetTokenInfo(slot);
        const label = trimLabel(info.label);
        if (label.length > 0) labels.push(label); // uninitialized tokens have none
        if (label !== options.tokenLabel) continue;
        const provider = new Pkcs11KekProvider(options, module, slot);
        provider.#login();
        return provider;
      }
      throw new C2Error(
        'C2_CONFIG',
        `no PKCS#11 token labelled "${options.tokenLabel}" in ${options.modulePath} (tokens: ${labels.length === 0 ? 'none' : labels.map((l) => `"${l}"`).join(', ')})`,
        { details: at('tokenLabel') },
      );
    } catch (err) {
      releaseModule(options.modulePath, module);
      throw C2Error.is(err)
        ? err
        : new C2Error(
            'C2_CONFIG',
            `cannot use PKCS#11 token "${options.tokenLabel}": ${pkcs11Reason(err)}`,
            { cause: err, details: at('tokenLabel') },
          );
    }
  }

  /**
   * Opens a session and logs the user in (a login another provider made is fine). A PIN the
   * token refused once is never tried again in this process (see pkcs11-pin-latch.ts).
   */
  #login(): Handle {
    const { api, p } = this.#module;
    const { modulePath, tokenLabel, pin } = this.#options;
    const earlier = refusalOf(modulePath, tokenLabel, pin);
    if (earlier !== undefined) throw pinRefusedError(tokenLabel, earlier, true);
    const session = api.C_OpenSession(this.#slot, p.CKF_SERIAL_SESSION | p.CKF_RW_SESSION);
    try {
      api.C_Login(session, p.CKU_USER, pin);
    } catch (err) {
      const reason = pkcs11Reason(err);
      if (reason !== 'CKR_USER_ALREADY_LOGGED_IN') {
        api.C_CloseSession(session);
        if (PIN_REFUSED.has(reason)) throw this.#pinRefused(reason, err);
        throw new C2Error(
          'C2_KEY_VAULT',
          `PKCS#11 login to token "${tokenLabel}" failed: ${reason}`,
          { cause: err, details: at('tokenLabel') },
        );
      }
    }
    this.#session = session;
    return session;
  }

  /** Records a refused PIN and, the first time at run time, tells `onPinRefused`. */
  #pinRefused(reason: string, cause: unknown): C2Error {
    const { modulePath, tokenLabel, pin, onPinRefused } = this.#options;
    const error = pinRefusedError(tokenLabel, reason, false, cause);
    // Before the key was found, the error goes to whoever is opening the provider.
    const running = this.#keyId !== '';
    if (recordRefusal(modulePath, tokenLabel, pin, reason) && running) {
      try {
        onPinRefused?.(error);
      } catch {
        // A listener must not turn a refused PIN into another error.
      }
    }
    return error;
  }

  #sessionHandle(): Handle {
    if (this.#closed) throw new C2Error('C2_KEY_VAULT', `KEK ${KIND}/${this.#keyId} is closed`);
    return this.#session ?? this.#login();
  }

  /** Up to `max` secret keys with this provider's label. */
  #keysLabelled(session: Handle, max: number): Handle[] {
    const { api, p } = this.#module;
    api.C_FindObjectsInit(session, [
      { type: p.CKA_CLASS, value: p.CKO_SECRET_KEY },
      { type: p.CKA_LABEL, value: this.#options.keyLabel },
    ]);
    try {
      return api.C_FindObjects(session, max);
    } finally {
      api.C_FindObjectsFinal(session);
    }
  }

  /** Finds the key by label and checks it is an AES-256 key usable for GCM. */
  #findKey(): Handle {
    const { api, p } = this.#module;
    const session = this.#sessionHandle();
    const found = this.#keysLabelled(session, 2);
    const where = `on PKCS#11 token "${this.#options.tokenLabel}"`;
    const key = found[0];
    if (key === undefined) {
      throw new C2Error(
        'C2_CONFIG',
        `no secret key labelled "${this.#options.keyLabel}" ${where}; create one (npm run kek -- pkcs11-keygen) or fix the label`,
        { details: at('keyLabel') },
      );
    }
    if (found.length > 1) {
      throw new C2Error(
        'C2_CONFIG',
        `more than one secret key labelled "${this.#options.keyLabel}" ${where}: labels must name one key`,
        { details: at('keyLabel') },
      );
    }
    const [type, length] = api.C_GetAttributeValue(session, key, [
      { type: p.CKA_KEY_TYPE },
      { type: p.CKA_VALUE_LEN },
    ]);
    const keyType = ulongOf(type?.value);
    const bytes = ulongOf(length?.value);
    if (keyType !== p.CKK_AES || bytes !== 32) {
      throw new C2Error(
        'C2_CONFIG',
        `the key labelled "${this.#options.keyLabel}" ${where} is not an AES-256 key`,
        { details: at('keyLabel') },
      );
    }
    this.#identify(session, key);
    this.#key = key;
    return key;
  }

  /**
   * Computes the key's check value: SHA-256 of the key's AES-GCM encryption of a zero block under
   * a fixed IV and a label of its own (wraps use random IVs). Sets the KEK id the first time; a
   * key found again after a lost session must have the same one.
   */
  #identify(session: Handle, key: Handle): void {
    const { api } = this.#module;
    api.C_EncryptInit(session, this.#gcm(Buffer.alloc(GCM_IV_BYTES), CHECK_AAD), key);
    const check = api.C_Encrypt(session, Buffer.alloc(16), Buffer.alloc(64));
    const value = createHash('sha256').update(check).digest('hex').slice(0, 16);
    const keyId = `${this.#options.keyLabel}/${value}`;
    if (this.#keyId === '') {
      this.#keyId = keyId;
      this.#aad = Buffer.from(encoder.encode(`e4c2-kek-wrap-v1\0${KIND}\0${keyId}`));
    } else if (this.#keyId !== keyId) {
      throw new C2Error(
        'C2_KEY_VAULT',
        `the key labelled "${this.#options.keyLabel}" on PKCS#11 token "${this.#options.tokenLabel}" is no longer KEK ${KIND}/${this.#keyId}`,
      );
    }
  }

  #generate(): void {
    const { api, p } = this.#module;
    const session = this.#sessionHandle();
    if (this.#keysLabelled(session, 1).length > 0) {
      throw new C2Error(
        'C2_CONFIG',
        `refusing to create a second key labelled "${this.#options.keyLabel}" on PKCS#11 token "${this.#options.tokenLabel}"`,
        { details: at('keyLabel') },
      );
    }
    this.#key = api.C_GenerateKey(session, { mechanism: p.CKM_AES_KEY_GEN }, [
      { type: p.CKA_CLASS, value: p.CKO_SECRET_KEY },
      { type: p.CKA_KEY_TYPE, value: p.CKK_AES },
      { type: p.CKA_VALUE_LEN, value: 32 },
      { type: p.CKA_LABEL, value: this.#options.keyLabel },
      { type: p.CKA_TOKEN, value: true },
      { type: p.CKA_PRIVATE, value: true },
      { type: p.CKA_SENSITIVE, value: true },
      { type: p.CKA_EXTRACTABLE, value: false },
      { type: p.CKA_ENCRYPT, value: true },
      { type: p.CKA_DECRYPT, value: true },
      { type: p.CKA_WRAP, value: false },
      { type: p.CKA_UNWRAP, value: false },
    ]);
    this.#identify(session, this.#key);
  }

  /**
   * Runs one token operation; when the session was lost or the key handle went stale (token
   * re-inserted, HSM restarted), opens a new session, logs in, finds the key again and retries
   * once. Failing to get back to the key then (no token, a login or a key search that fails) is
   * `C2_UNAVAILABLE`: the key was there when this provider opened, so the token is out of reach,
   * not misconfigured, and a later call may succeed. But a PIN the token refuses (changed while
   * the node ran) is `C2_KEY_VAULT`, and no later call logs in with it again.
   */
  #withKey<T>(operation: (session: Handle, key: Handle) => T): T {
    if (this.#closed) throw new C2Error('C2_KEY_VAULT', `KEK ${KIND}/${this.#keyId} is closed`);
    if (this.#session !== undefined && this.#key !== undefined) {
      try {
        return operation(this.#session, this.#key);
      } catch (err) {
        const reason = pkcs11Reason(err);
        if (!SESSION_LOST.has(reason) && !HANDLE_STALE.has(reason)) throw err;
        this.#dropSession();
      }
    }
    // Reconnecting, now or after an earlier call failed to.
    let session: Handle;
    let key: Handle;
    try {
      session = this.#sessionHandle();
      key = this.#findKey();
    } catch (err) {
      // A refused PIN is not the token out of reach: retrying would only lock the token.
      if (isPinRefusal(err)) throw err;
      const why = C2Error.is(err) ? err.message : pkcs11Reason(err);
      throw new C2Error('C2_UNAVAILABLE', `KEK ${KIND}/${this.#keyId} is out of reach: ${why}`, {
        cause: err,
      });
    }
    return operation(session, key);
  }

  /** Forgets the session and the key handle, closing the session if it still lives. */
  #dropSession(): void {
    const session = this.#session;
    this.#session = undefined;
    this.#key = undefined;
    if (session === undefined) return;
    try {
      this.#module.api.C_CloseSession(session);
    } catch {
      // Lost already, most likely: nothing to close.
    }
  }

  #gcm(iv: Buffer, aad: Buffer = this.#aad): Pkcs11Mechanism {
    const { p } = this.#module;
    return {
      mechanism: p.CKM_AES_GCM,
      parameter: {
        type: p.CK_PARAMS_AES_GCM,
        iv,
        aad,
        ivBits: GCM_IV_BYTES * 8,
        tagBits: GCM_TAG_BYTES * 8,
      },
    };
  }

  /**
   * Wraps `dataKey` inside the token.
   * @throws C2Error `C2_KEY_VAULT` (also when the token refused the PIN: until a restart);
   *   `C2_UNAVAILABLE` when the token is out of reach
   */
  wrap(dataKey: Uint8Array): Promise<WrappedKey> {
    const iv = randomBytes(GCM_IV_BYTES);
    try {
      const body = this.#withKey((session, key) => {
        const { api } = this.#module;
        api.C_EncryptInit(session, this.#gcm(iv), key);
        return api.C_Encrypt(session, Buffer.from(dataKey), Buffer.alloc(dataKey.length + 64));
      });
      return Promise.resolve({
        kekKind: KIND,
        kekId: this.#keyId,
        ciphertext: new Uint8Array(Buffer.concat([iv, body])),
      });
    } catch (err) {
      return Promise.reject(this.#failure('wrap', err));
    }
  }

  /**
   * Unwraps a key wrapped by this KEK inside the token.
   * @throws C2Error `C2_KEY_VAULT` when it names another KEK or does not authenticate, or the
   *   token refused the PIN; `C2_UNAVAILABLE` when the token is out of reach
   */
  unwrap(wrapped: WrappedKey): Promise<Uint8Array> {
    const foreign = notWrappedBy(this, wrapped);
    if (foreign !== undefined) return Promise.reject(foreign);
    const sealed = wrapped.ciphertext;
    if (sealed.length < GCM_IV_BYTES + GCM_TAG_BYTES) {
      return Promise.reject(
        new C2Error(
          'C2_KEY_VAULT',
          `cannot unwrap data key with KEK ${KIND}/${this.#keyId}: too short`,
        ),
      );
    }
    const iv = Buffer.from(sealed.subarray(0, GCM_IV_BYTES));
    const body = Buffer.from(sealed.subarray(GCM_IV_BYTES));
    try {
      const clear = this.#withKey((session, key) => {
        const { api } = this.#module;
        api.C_DecryptInit(session, this.#gcm(iv), key);
        return api.C_Decrypt(session, body, Buffer.alloc(body.length));
      });
      return Promise.resolve(new Uint8Array(clear.buffer, clear.byteOffset, clear.length));
    } catch (err) {
      return Promise.reject(this.#failure('unwrap', err));
    }
  }

  #failure(what: 'wrap' | 'unwrap', err: unknown): C2Error {
    if (C2Error.is(err)) return err;
    const reason = pkcs11Reason(err);
    const unreachable = UNREACHABLE.has(reason);
    // A tag that does not verify comes back as a generic failure from some modules (SoftHSM2).
    const detail = unreachable
      ? `the token is out of reach (${reason})`
      : what === 'unwrap'
        ? `authentication failed or the token refused (${reason})`
        : reason;
    return new C2Error(
      unreachable ? 'C2_UNAVAILABLE' : 'C2_KEY_VAULT',
      `cannot ${what} data key with KEK ${KIND}/${this.#keyId}: ${detail}`,
      { cause: err },
    );
  }

  /** Closes the session (and the module when no other provider uses it). Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    const session = this.#session;
    this.#session = undefined;
    if (session !== undefined) {
      try {
        this.#module.api.C_CloseSession(session);
      } catch {
        // Best effort, as for the module.
      }
    }
    releaseModule(this.#options.modulePath, this.#module);
  }

  /** Shows the KEK id only. */
  [inspect.custom](): string {
    return `Pkcs11KekProvider { keyId: '${this.#keyId}' }`;
  }
}
