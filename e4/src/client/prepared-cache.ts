/**
 * Objects a client prepares from the key arrays of its state (AES-SIV keys of topic keys, key
 * objects of peers' public keys), each kept with the array it was made from. A client state is
 * never changed in place: a command makes a new state that keeps the arrays of the keys it left
 * alone. So the same array means the same key, and a command costs only the objects of the keys
 * it changed.
 */
export class PreparedCache<T> {
  readonly #entries = new Map<string, { readonly source: Uint8Array; readonly value: T }>();

  /** The object prepared from `source` under `id`, made by `make` when missing or outdated. */
  get(id: string, source: Uint8Array, make: (source: Uint8Array) => T): T {
    const entry = this.#entries.get(id);
    if (entry?.source === source) return entry.value;
    const value = make(source);
    this.#entries.set(id, { source, value });
    return value;
  }

  /** Drops the objects whose key is no longer `current`'s array for their id (all if none). */
  prune(current: ReadonlyMap<string, Uint8Array> | undefined): void {
    for (const [id, entry] of this.#entries) {
      if (current?.get(id) !== entry.source) this.#entries.delete(id);
    }
  }
}
