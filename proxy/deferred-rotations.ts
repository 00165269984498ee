/**
 * Identity-key rotations that `register --rotate` deferred to the proxy's first start.
 *
 * The C2 sends a rotated identity key (SetIdKey) once, on the identity's control topic. Before
 * the proxy's first start no control session exists at the broker, so the broker drops it while
 * the C2 records it as delivered; and unlike topic keys, a resync cannot send it again, since a
 * resync is protected under the new identity key the proxy never got. So until the proxy has
 * subscribed its control topics once (a marker file in its state directory says so),
 * `register --rotate` records the request here, and the proxy makes it itself at its first start,
 * once the commands can reach it. Nothing here is secret: identity names only.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { readNameList, writeNameList } from './name-list-file.ts';

/** Written once the control channel has subscribed: from then on the broker keeps commands. */
const SESSION_MARKER = 'control-session';
const PENDING_FILE = 'pending-rotations.json';

function isMissing(err: unknown): boolean {
  return (err as NodeJS.ErrnoException | undefined)?.code === 'ENOENT';
}

/** Records that the proxy's control topics are subscribed at the broker (idempotent). */
export async function markControlSession(stateDir: string): Promise<void> {
  await writeFile(join(stateDir, SESSION_MARKER), `${new Date().toISOString()}\n`, {
    flag: 'wx',
  }).catch((err: unknown) => {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  });
}

/** True once a proxy with this state directory has subscribed its control topics. */
export async function hasControlSession(stateDir: string): Promise<boolean> {
  try {
    await readFile(join(stateDir, SESSION_MARKER));
    return true;
  } catch (err) {
    if (isMissing(err)) return false;
    throw err;
  }
}

/**
 * The identity names whose rotation waits for the first start.
 * @throws ProxyError `PROXY_KEY_STORE` when the file is not such a list
 */
export function pendingRotations(stateDir: string): Promise<string[]> {
  return readNameList(join(stateDir, PENDING_FILE), 'remove it and run register --rotate again');
}

/** Replaces the pending list (removes the file when it is empty). */
export async function setPendingRotations(
  stateDir: string,
  names: readonly string[],
): Promise<void> {
  await writeNameList(join(stateDir, PENDING_FILE), names, true);
}
