/** A client store in a JSON file, written atomically. */
import { open, readFile, rename } from 'node:fs/promises';
import type { ClientStore } from './client-store.ts';

/**
 * Keeps the state in one file (mode 0600). A save writes a temporary file, fsyncs it and renames
 * it over the old one, so a crash leaves either the old or the new state, never a torn file.
 */
export class JsonFileClientStore implements ClientStore {
  /** @param path - the state file; its directory must exist */
  constructor(readonly path: string) {}

  /** @inheritDoc */
  async load(): Promise<string | undefined> {
    try {
      return await readFile(this.path, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
  }

  /** @inheritDoc */
  async save(serialised: string): Promise<void> {
    const tmp = `${this.path}.tmp-${process.pid}`;
    const handle = await open(tmp, 'w', 0o600);
    try {
      await handle.writeFile(serialised, 'utf8');
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(tmp, this.path);
  }
}
