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
  /**
   * What the file held when this store last loaded or saved it (`text` undefined: no file), for
   * putting it back when a save fails after its rename (see {@link save}); `undefined` until known.
   */
  #held: { readonly text: string | undefined } | undefined;

  /** @param path - the state file; its directory must exist */
  constructor(readonly path: string) {}

  /** @inheritDoc */
  async load(): Promise<string | undefined> {
    let text: string | undefined;
    try {
      text = await readFile(this.path, 'utf8');
    } catch (err) {
      if (errorCode(err) !== 'ENOENT') throw err;
    }
    this.#held = { text };
    return text;
  }

  /**
   * @inheritDoc
   * When the directory cannot be synced after the rename (an I/O error), the file already holds
   * the new state while the save fails, and the client keeps the old one: after a restart the
   * device would hold a command it reported refused. So the state before is put back (best
   * effort) before the error is thrown.
   */
  async save(serialised: string): Promise<void> {
    // A first save without a load (a client created over an older state): what to put back.
    if (this.#held === undefined) await this.load().catch(() => undefined);
    const before = this.#held;
    await this.#replace(serialised);
    try {
      await syncDirectory(dirname(this.path));
    } catch (err) {
      if (before !== undefined) await this.#putBack(before.text).catch(() => undefined);
      throw err;
    }
    this.#held = { text: serialised };
  }

  /** Writes back what the file held before a failed save (removes it if there was none). */
  async #putBack(text: string | undefined): Promise<void> {
    if (text === undefined) await unlink(this.path);
    else await this.#replace(text);
  }

  /** Writes `serialised` to a new file, fsyncs it, and renames it over the state file. */
  async #replace(serialised: string): Promise<void> {
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
  }
}
