/** A {@link DataKeyStore} in memory, for tests and throw-away nodes. */
import { C2Error } from '../errors.ts';
import type { DataKeyStore, StoredDataKey } from './data-key-store.ts';

/** Copies a stored key, so callers and the store never share mutable bytes (as with a database). */
const copy = (k: StoredDataKey): StoredDataKey => ({
  id: k.id,
  wrapped: { ...k.wrapped, ciphertext: new Uint8Array(k.wrapped.ciphertext) },
  createdAt: new Date(k.createdAt.getTime()),
});

/** Keeps data keys in a map, keyed by `String(id)`; list order is insertion order. */
export class InMemoryDataKeyStore implements DataKeyStore {
  readonly #keys = new Map<string, StoredDataKey>();

  /** Every stored key (copies). */
  list(): Promise<StoredDataKey[]> {
    return Promise.resolve([...this.#keys.values()].map(copy));
  }

  /** @throws C2Error `C2_ALREADY_EXISTS` when the id is taken */
  insert(key: StoredDataKey): Promise<void> {
    const id = String(key.id);
    if (this.#keys.has(id)) {
      return Promise.reject(new C2Error('C2_ALREADY_EXISTS', `data key ${id} exists already`));
    }
    this.#keys.set(id, copy(key));
    return Promise.resolve();
  }

  /** @throws C2Error `C2_NOT_FOUND` when no key has this id */
  update(key: StoredDataKey): Promise<void> {
    const id = String(key.id);
    if (!this.#keys.has(id))
      return Promise.reject(new C2Error('C2_NOT_FOUND', `no data key ${id}`));
    this.#keys.set(id, copy(key));
    return Promise.resolve();
  }
}
