/** The proxy's local key: 32 random bytes (hex) in a file of mode 0600, created on first use. */
import { randomBytes } from 'node:crypto';
import { mkdir, open, readFile, stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import { fsFailure, ProxyError, ProxyErrorCode } from './errors.ts';

/** Length of the local key in bytes (AES-256). */
export const LOCAL_KEY_LEN = 32;

/**
 * Reads the local key, or creates it (exclusively, so two starts cannot race) when the file does
 * not exist. A file that group or others may read is refused: the key opens every key store.
 * @throws ProxyError `PROXY_KEY_STORE`
 */
export async function loadOrCreateLocalKey(path: string): Promise<Uint8Array> {
  try {
    return await loadOrCreate(path);
  } catch (err) {
    if (ProxyError.is(err)) throw err;
    throw new ProxyError(ProxyErrorCode.KeyStore, `local key ${path}: ${fsFailure(err, path)}`, {
      cause: err,
    });
  }
}

async function loadOrCreate(path: string): Promise<Uint8Array> {
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  try {
    const handle = await open(path, 'wx', 0o600);
    try {
      await handle.writeFile(randomBytes(LOCAL_KEY_LEN).toString('hex') + '\n', 'utf8');
      await handle.sync();
    } finally {
      await handle.close();
    }
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
  const info = await stat(path);
  if ((info.mode & 0o077) !== 0) {
    throw new ProxyError(
      ProxyErrorCode.KeyStore,
      `${path}: the local key file must not be readable by group or others (chmod 600)`,
    );
  }
  const text = (await readFile(path, 'utf8')).trim();
  if (!/^[0-9a-fA-F]{64}$/.test(text)) {
    throw new ProxyError(ProxyErrorCode.KeyStore, `${path}: not a local key (64 hex digits)`);
  }
  return new Uint8Array(Buffer.from(text, 'hex'));
}
