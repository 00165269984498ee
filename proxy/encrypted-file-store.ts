/**
 * An E4 client store in a file encrypted with the proxy's local key (AES-256-GCM), written
 * atomically: temporary file, fsync, rename, fsync of the directory. A save that resolved
 * survives a crash or power loss, so a key update the proxy applied (and acknowledged to the
 * broker) is never lost.
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { open, readFile, rename, unlink } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { ClientStore } from '../e4/index.ts';
import { fsFailure, ProxyError, ProxyErrorCode } from './errors.ts';
import { LOCAL_KEY_LEN } from './local-key.ts';

/** File format: magic(4) || version(1) || iv(12) || tag(16) || ciphertext. */
const MAGIC = Buffer.from('E4PS', 'ascii');
const VERSION = 1;
const IV_LEN = 12;
const TAG_LEN = 16;
const HEADER_LEN = MAGIC.length + 1 + IV_LEN + TAG_LEN;

/** A {@link ClientStore} whose file is unreadable without the local key. */
export class EncryptedFileClientStore implements ClientStore {
  readonly #key: Buffer;

  /**
   * @param path - the state file; its directory must exist
   * @param localKey - 32 bytes (see `loadOrCreateLocalKey`)
   * @param label - bound into the ciphertext (the identity name), so files cannot be swapped
   */
  constructor(
    readonly path: string,
    localKey: Uint8Array,
    private readonly label: string,
  ) {
    if (localKey.length !== LOCAL_KEY_LEN) throw new RangeError('the local key must be 32 bytes');
    this.#key = Buffer.from(localKey);
  }

  /**
   * @inheritDoc
   * @throws ProxyError `PROXY_KEY_STORE` when the file cannot be read or decrypted
   */
  async load(): Promise<string | undefined> {
    let data: Buffer;
    try {
      data = await readFile(this.path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw new ProxyError(
        ProxyErrorCode.KeyStore,
        `cannot read the key store ${fsFailure(err, this.path)}`,
        {
          cause: err,
        },
      );
    }
    if (data.length < HEADER_LEN || !data.subarray(0, 4).equals(MAGIC) || data[4] !== VERSION) {
      throw new ProxyError(ProxyErrorCode.KeyStore, `${this.path}: not an encrypted key store`);
    }
    const iv = data.subarray(5, 5 + IV_LEN);
    const tag = data.subarray(5 + IV_LEN, HEADER_LEN);
    const decipher = createDecipheriv('aes-256-gcm', this.#key, iv);
    decipher.setAAD(Buffer.from(this.label, 'utf8'));
    decipher.setAuthTag(tag);
    try {
      return Buffer.concat([decipher.update(data.subarray(HEADER_LEN)), decipher.final()]).toString(
        'utf8',
      );
    } catch (err) {
      throw new ProxyError(
        ProxyErrorCode.KeyStore,
        `${this.path}: cannot be decrypted (another local key, another identity, or damaged)`,
        { cause: err },
      );
    }
  }

  /** @inheritDoc */
  async save(serialised: string): Promise<void> {
    const iv = randomBytes(IV_LEN);
    const cipher = createCipheriv('aes-256-gcm', this.#key, iv);
    cipher.setAAD(Buffer.from(this.label, 'utf8'));
    const ciphertext = Buffer.concat([cipher.update(serialised, 'utf8'), cipher.final()]);
    const data = Buffer.concat([MAGIC, Buffer.of(VERSION), iv, cipher.getAuthTag(), ciphertext]);
    const tmp = `${this.path}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
    try {
      const handle = await open(tmp, 'w', 0o600);
      try {
        await handle.writeFile(data);
        await handle.sync();
      } finally {
        await handle.close();
      }
      await rename(tmp, this.path);
    } catch (err) {
      await unlink(tmp).catch(() => undefined);
      throw err;
    }
    // The rename is durable only once the directory entry is on disk.
    const dir = await open(dirname(this.path), 'r');
    try {
      await dir.sync();
    } finally {
      await dir.close();
    }
  }
}
