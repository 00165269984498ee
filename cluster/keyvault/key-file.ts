/** Reading and creating the 32-byte KEK file of the local provider. */
import { randomBytes } from 'node:crypto';
import { mkdir, open, unlink } from 'node:fs/promises';
import { dirname } from 'node:path';
import { C2Error } from '../errors.ts';

/** Options of {@link readKeyFile}. */
export interface KeyFileOptions {
  /**
   * Accept a file that group or others may access. Off by default: on a shared host such a file
   * hands every local user the key to all device keys.
   */
  readonly allowInsecurePermissions?: boolean;
}

const KEY_BYTES = 32;

const errnoCode = (err: unknown): unknown =>
  typeof err === 'object' && err !== null && 'code' in err ? err.code : undefined;

/** Decodes 32 raw bytes, or 64 hex characters with optional surrounding whitespace. */
function decodeKey(content: Buffer): Uint8Array | undefined {
  if (content.length === KEY_BYTES) return new Uint8Array(content);
  const text = content.toString('latin1').trim();
  return /^[0-9a-fA-F]{64}$/.test(text) ? new Uint8Array(Buffer.from(text, 'hex')) : undefined;
}

/**
 * Reads a KEK file: exactly 32 raw bytes, or 64 hex characters. Mode and content are checked on
 * the same open file descriptor, so the file cannot be swapped in between.
 * @throws C2Error `C2_KEY_VAULT` when the file is missing, not a regular file, accessible by group
 *   or others (unless allowed), or does not hold a 32-byte non-zero key; messages name the path
 *   and never the content
 */
export async function readKeyFile(path: string, options: KeyFileOptions = {}): Promise<Uint8Array> {
  let handle;
  try {
    handle = await open(path, 'r');
  } catch (err) {
    const reason = errnoCode(err) === 'ENOENT' ? 'does not exist' : 'cannot be opened';
    throw new C2Error('C2_KEY_VAULT', `KEK file ${path} ${reason}`, { cause: err });
  }
  try {
    const stat = await handle.stat();
    if (!stat.isFile()) throw new C2Error('C2_KEY_VAULT', `KEK file ${path} is not a regular file`);
    // Windows has no POSIX mode bits to check; its ACLs are the operator's business.
    const exposed = stat.mode & 0o077;
    if (
      exposed !== 0 &&
      options.allowInsecurePermissions !== true &&
      process.platform !== 'win32'
    ) {
      const mode = (stat.mode & 0o777).toString(8).padStart(4, '0');
      throw new C2Error(
        'C2_KEY_VAULT',
        `KEK file ${path} is accessible by group or others (mode ${mode}); run "chmod 600 ${path}"`,
        { details: { path, mode } },
      );
    }
    const content = await handle.readFile();
    const key = decodeKey(content);
    content.fill(0);
    if (key === undefined) {
      throw new C2Error(
        'C2_KEY_VAULT',
        `KEK file ${path} must hold 32 raw bytes or 64 hex characters`,
      );
    }
    if (key.every((b) => b === 0)) {
      throw new C2Error('C2_KEY_VAULT', `KEK file ${path} holds an all-zero key`);
    }
    return key;
  } finally {
    await handle.close();
  }
}

/**
 * Creates a KEK file with a new random key, as 64 hex characters and a newline (easy to back up
 * and to restore by copy and paste), mode 0600, parent directories 0700 if missing.
 * Returns `'exists'` instead of touching an existing file.
 */
export async function createKeyFile(path: string): Promise<Uint8Array | 'exists'> {
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  let handle;
  try {
    // 'wx' = O_CREAT|O_EXCL: atomic "create only if absent", so a key is never overwritten.
    handle = await open(path, 'wx', 0o600);
  } catch (err) {
    if (errnoCode(err) === 'EEXIST') return 'exists';
    throw new C2Error('C2_KEY_VAULT', `cannot create KEK file ${path}`, { cause: err });
  }
  const key = new Uint8Array(randomBytes(KEY_BYTES));
  try {
    // The mode given to open() is reduced by the umask; chmod is not, and 0600 is the contract.
    await handle.chmod(0o600);
    await handle.writeFile(`${Buffer.from(key).toString('hex')}\n`, 'latin1');
    await handle.sync();
    await handle.close();
  } catch (err) {
    // A half-written key file would fail every later start: remove it so a retry starts clean.
    await handle.close().catch(() => undefined);
    await unlink(path).catch(() => undefined);
    throw new C2Error('C2_KEY_VAULT', `cannot write KEK file ${path}`, { cause: err });
  }
  return key;
}
