/**
 * Small JSON files of identity names in the state directory (deferred rotations, subscribed
 * control topics): nothing secret, but a file that is not such a list must stop the start
 * rather than be taken for an empty one.
 */
import { randomBytes } from 'node:crypto';
import { readFile, rename, rm, writeFile } from 'node:fs/promises';
import { ProxyError, ProxyErrorCode } from './errors.ts';

/**
 * The names in `path`; empty when there is no such file.
 * @param remedy - what to do about a damaged file, for the message
 * @throws ProxyError `PROXY_KEY_STORE` when the file is not a list of names
 */
export async function readNameList(path: string, remedy: string): Promise<string[]> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = undefined;
  }
  if (!Array.isArray(parsed) || !parsed.every((n) => typeof n === 'string')) {
    throw new ProxyError(
      ProxyErrorCode.KeyStore,
      `${path} is not a list of identity names (${remedy})`,
    );
  }
  return parsed;
}

/**
 * Replaces the list in `path` (duplicates dropped), atomically: a torn file would stop the next
 * start. An empty list removes the file when `removeWhenEmpty`.
 */
export async function writeNameList(
  path: string,
  names: Iterable<string>,
  removeWhenEmpty = false,
): Promise<void> {
  const unique = [...new Set(names)];
  if (unique.length === 0 && removeWhenEmpty) {
    await rm(path, { force: true });
    return;
  }
  const tmp = `${path}.tmp-${randomBytes(4).toString('hex')}`;
  await writeFile(tmp, `${JSON.stringify(unique)}\n`, { mode: 0o600 });
  await rename(tmp, path);
}
