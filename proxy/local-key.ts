/** The proxy's local key: 32 random bytes (hex) in a file of mode 0600, created on first use. */
import { randomBytes } from 'node:crypto';
import { mkdir, open, readdir, readFile, rename, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fsFailure, ProxyError, ProxyErrorCode } from './errors.ts';

/** Length of the local key in bytes (AES-256). */
export const LOCAL_KEY_LEN = 32;

/** What {@link loadOrCreateLocalKey} needs beside the key file. */
export interface LocalKeyOptions {
  /** The state directory whose key stores the local key opens. */
  readonly stateDir: string;
  /**
   * `--new-local-key`: a missing local key is made anew even though key stores encrypted with the
   * lost one exist; those are moved aside (kept, unreadable) to `identities/unreadable-<time>/`.
   */
  readonly startOver?: boolean;
}

/**
 * Reads the local key, or creates it (exclusively, so two starts cannot race) when the file does
 * not exist. A file that group or others may read is refused: the key opens every key store. A
 * missing key with key stores in the state directory is refused too: a new key cannot open
 * them (the key file was lost, or `localKeyFile` points elsewhere), unless `startOver`.
 * @throws ProxyError `PROXY_KEY_STORE`
 */
export async function loadOrCreateLocalKey(
  path: string,
  options: LocalKeyOptions,
): Promise<Uint8Array> {
  try {
    return await loadOrCreate(path, options);
  } catch (err) {
    if (ProxyError.is(err)) throw err;
    throw new ProxyError(ProxyErrorCode.KeyStore, `local key ${path}: ${fsFailure(err, path)}`, {
      cause: err,
    });
  }
}

/** The key stores (`identities/*.e4s`) of a state directory. */
async function keyStores(stateDir: string): Promise<string[]> {
  try {
    return (await readdir(join(stateDir, 'identities'))).filter((f) => f.endsWith('.e4s'));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
}

/** Refuses to replace a lost local key while stores encrypted with it exist, or moves them aside. */
async function checkStoresBeforeCreating(path: string, options: LocalKeyOptions): Promise<void> {
  const stores = await keyStores(options.stateDir);
  if (stores.length === 0) return;
  const dir = join(options.stateDir, 'identities');
  if (options.startOver !== true) {
    throw new ProxyError(
      ProxyErrorCode.KeyStore,
      `local key ${path} does not exist, but ${stores.length} key store${stores.length === 1 ? '' : 's'} encrypted with it ${stores.length === 1 ? 'does' : 'do'} (${dir}): a new local key cannot open them. Restore the local key from the backup of this state directory (or correct localKeyFile); to start over instead, start with --new-local-key (the stores are moved aside, and the identities then need register --replace, or trust on first use)`,
    );
  }
  const aside = join(dir, `unreadable-${new Date().toISOString().replace(/[:.]/g, '-')}`);
  await mkdir(aside, { mode: 0o700 });
  for (const store of stores) await rename(join(dir, store), join(aside, store));
}

async function loadOrCreate(path: string, options: LocalKeyOptions): Promise<Uint8Array> {
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  const exists = await stat(path).then(
    () => true,
    (err: unknown) => {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
      throw err;
    },
  );
  if (!exists) {
    await checkStoresBeforeCreating(path, options);
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
