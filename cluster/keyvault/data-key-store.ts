/** Persistence port of the key vault's data keys (DEKs), always stored wrapped by a KEK. */
import type { WrappedKey } from './kek-provider.ts';

/** One stored data key. */
export interface StoredDataKey {
  /**
   * Chosen by the vault (a random positive integer, so it fits a `bigint` column as well as a
   * `text` one). Stores must persist it as given; reading it back as a string is fine.
   */
  readonly id: number | string;
  readonly wrapped: WrappedKey;
  readonly createdAt: Date;
}

/**
 * Where data keys live (the `data_keys` table in production). Implementations do no crypto.
 * Every method may throw `C2_UNAVAILABLE` when the backing store is down.
 */
export interface DataKeyStore {
  /** Every stored data key, in any order. */
  list(): Promise<StoredDataKey[]>;
  /** Adds a key. @throws C2Error `C2_ALREADY_EXISTS` when the id is taken */
  insert(key: StoredDataKey): Promise<void>;
  /** Replaces the wrapped form of an existing key (KEK rotation). @throws C2Error `C2_NOT_FOUND` */
  update(key: StoredDataKey): Promise<void>;
}
