/** A client store in a JSON file, written atomically. */
import { open, readFile, rename, unlink, type FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { ClientStore } from './client-store.ts';

function errorCode(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException).code;
}

/** Error codes of platforms that cannot open or fsync a directory (Windows); never on Linux. */
const DIRECTORY_SYNC_UNSUPPORTED = new Set(['EISDIR', 'EINVAL', 'EPERM', 'ENOTSUP', 'EBADF']);

function directorySyncUnsupported(err: unknown): boolean {
  const code = errorCode(err);
  return process.platform !== 'linux' && code !== undefined && DIRECTORY_SYNC_UNSUPPORTED.has(code);
}

/** Makes a rename in `dir` durable: until the directory is synced, a power loss can undo it. */
async function syncDirectory(dir: string): Promise<void> {
  let handle: FileHandle;
  try {
    handle = await open(dir, 'r');
  } catch (err) {
    if (directorySyncUnsupported(err)) return;
    throw err;
  }
  try {
    await handle.sync();
  } catch (err) {
    if (!directorySyncUnsupported(err)) throw err;
  } finally {
    await handle.close();
  }
}

/**
 * Keeps the state in one file (mode 0600). A save writes a temporary file, fsyncs it, renames it
 * over the old one and fsyncs the directory, so a crash leaves either the old or the new state,
 * never a torn file, and once `save` resolved the new state survives a power loss. One writer per
 * file: an {@link E4Client} saves one state at a time.
 */
export class JsonFileClientStore implements ClientStore {
  /** @param path - the state file; its directory must exist */
  constructor(readonly path: string) {}

  /** @inheritDoc */
  async load(): Promise<string | undefined> {
    try {
      return await readFile(this.path, 'utf8');
    } catch (err) {
      if (errorCode(err) === 'ENOENT') return undefined;
      throw err;
    }
  }

  /** @inheritDoc */
  async save(serialised: string): Promise<void> {
    const tmp = `${this.path}.tmp-${process.pid}`;
    // A temporary file left by a crash keeps its mode when opened with 'w' (0644 say), and the
    // identity key would be written into it: remove it and create a new one, exclusively, 0600.
    try {
      await unlink(tmp);
    } catch (err) {
      if (errorCode(err) !== 'ENOENT') throw err;
    }
    const handle = await open(tmp, 'wx', 0o600);
    try {
      await handle.writeFile(serialised, 'utf8');
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(tmp, this.path);
    await syncDirectory(dirname(this.path));
  }
}
