/** The default KEK provider: a key held in process memory, from a key file or a passphrase. */
import { createHash, createHmac, createSecretKey, type KeyObject } from 'node:crypto';
import { inspect } from 'node:util';
import { C2Error } from '../errors.ts';
import { gcmOpen, gcmSeal } from './aes-gcm.ts';
import { notWrappedBy, type KekProvider, type WrappedKey } from './kek-provider.ts';
import { createKeyFile, readKeyFile, type KeyFileOptions } from './key-file.ts';
import { deriveKek, newSalt } from './passphrase-kdf.ts';

const KIND = 'local';
const encoder = new TextEncoder();

/**
 * Public id of a KEK: SHA-256 over HMAC-SHA256(kek, "e4c2-kek-id-v1"), first 16 hex characters.
 * The HMAC is a one-way, domain-separated derivative, so the id is never a hash of the raw key
 * that another part of the system might also compute.
 */
function kekIdOf(key: KeyObject): string {
  const derived = createHmac('sha256', key).update('e4c2-kek-id-v1').digest();
  return createHash('sha256').update(derived).digest('hex').slice(0, 16);
}

/**
 * Wraps data keys with AES-256-GCM under a 32-byte KEK held in memory (as a `KeyObject`, so the
 * bytes never show in `util.inspect`). Wrapped ciphertext = iv(12) || ct || tag(16), with the
 * provider kind and KEK id as associated data.
 */
export class LocalKekProvider implements KekProvider {
  readonly kind = KIND;
  readonly keyId: string;
  readonly #key: KeyObject;
  readonly #aad: Uint8Array;

  private constructor(key: Uint8Array) {
    if (key.length !== 32) throw new C2Error('C2_KEY_VAULT', 'a KEK must be 32 bytes');
    this.#key = createSecretKey(key);
    this.keyId = kekIdOf(this.#key);
    this.#aad = encoder.encode(`e4c2-kek-wrap-v1\0${KIND}\0${this.keyId}`);
  }

  /** A provider for a KEK given as bytes (tests, or keys fetched by the caller). The bytes are copied. */
  static fromKey(key: Uint8Array): LocalKekProvider {
    return new LocalKekProvider(key);
  }

  /**
   * A provider for the KEK in `path` (32 raw bytes or 64 hex characters).
   * @throws C2Error `C2_KEY_VAULT` when the file is missing, malformed, or readable by group or
   *   others and `options.allowInsecurePermissions` is not set
   */
  static async fromKeyFile(path: string, options: KeyFileOptions = {}): Promise<LocalKekProvider> {
    const key = await readKeyFile(path, options);
    try {
      return new LocalKekProvider(key);
    } finally {
      key.fill(0);
    }
  }

  /**
   * Creates `path` with a new random KEK (mode 0600) and returns its provider.
   * @throws C2Error `C2_KEY_VAULT` when the file exists already (it is never overwritten) or
   *   cannot be written
   */
  static async generateKeyFile(path: string): Promise<LocalKekProvider> {
    const key = await createKeyFile(path);
    if (key === 'exists') {
      throw new C2Error('C2_KEY_VAULT', `refusing to overwrite the existing KEK file ${path}`);
    }
    try {
      return new LocalKekProvider(key);
    } finally {
      key.fill(0);
    }
  }

  /**
   * The embedded mode's KEK: reads `path`, or creates it on first start. Safe against two
   * processes starting at once (creation is exclusive; the loser reads the winner's file).
   * @throws C2Error `C2_KEY_VAULT` as {@link LocalKekProvider.fromKeyFile}
   */
  static async loadOrGenerateKeyFile(
    path: string,
    options: KeyFileOptions = {},
  ): Promise<LocalKekProvider> {
    const key = await createKeyFile(path);
    if (key === 'exists') return LocalKekProvider.fromKeyFile(path, options);
    try {
      return new LocalKekProvider(key);
    } finally {
      key.fill(0);
    }
  }

  /**
   * A provider for the KEK derived from `passphrase` with scrypt (N=2^15, r=8, p=1) and `salt`.
   * The caller stores the salt (e.g. in the database) and passes the same one on every start.
   * @throws C2Error `C2_KEY_VAULT` for a passphrase or salt under 16 bytes
   */
  static async fromPassphrase(
    passphrase: string | Uint8Array,
    salt: Uint8Array,
  ): Promise<LocalKekProvider> {
    const key = await deriveKek(passphrase, salt);
    try {
      return new LocalKekProvider(key);
    } finally {
      key.fill(0);
    }
  }

  /** 16 random bytes for {@link LocalKekProvider.fromPassphrase}. */
  static newSalt(): Uint8Array {
    return newSalt();
  }

  /** Wraps `dataKey` under this KEK. */
  wrap(dataKey: Uint8Array): Promise<WrappedKey> {
    return Promise.resolve({
      kekKind: KIND,
      kekId: this.keyId,
      ciphertext: gcmSeal(this.#key, dataKey, this.#aad),
    });
  }

  /**
   * Unwraps a key wrapped by this KEK.
   * @throws C2Error `C2_KEY_VAULT` when it names another KEK or does not authenticate
   */
  unwrap(wrapped: WrappedKey): Promise<Uint8Array> {
    const foreign = notWrappedBy(this, wrapped);
    if (foreign !== undefined) return Promise.reject(foreign);
    const key = gcmOpen(this.#key, wrapped.ciphertext, this.#aad);
    return key === undefined
      ? Promise.reject(
          new C2Error(
            'C2_KEY_VAULT',
            `cannot unwrap data key with KEK ${KIND}/${this.keyId}: authentication failed`,
          ),
        )
      : Promise.resolve(key);
  }

  /** Shows the KEK id only. */
  [inspect.custom](): string {
    return `LocalKekProvider { keyId: '${this.keyId}' }`;
  }
}
