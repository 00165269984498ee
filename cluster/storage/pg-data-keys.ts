/** The key vault's data keys in the `data_keys` table (always wrapped by a KEK). */
import type { DataKeyStore, StoredDataKey } from '../keyvault/index.ts';
import { C2Error } from '../errors.ts';
import { translatingFailures, type Queryable } from './pool.ts';
import { buf, bytes, date, rows, str, touched } from './pg-rows.ts';

/** PostgreSQL {@link DataKeyStore}. */
export class PgDataKeyStore implements DataKeyStore {
  readonly #db: Queryable;

  /** @param db - the pool (data keys are read and written outside domain transactions) */
  constructor(db: Queryable) {
    // A key vault reloading its data keys (a key made by another node) while the database is
    // lost or silent reports C2_UNAVAILABLE, as the C2 store's reads do.
    this.#db = translatingFailures(db);
  }

  async list(): Promise<StoredDataKey[]> {
    return (await rows(this.#db, 'SELECT * FROM data_keys ORDER BY created_at, id')).map((r) => ({
      id: str(r, 'id'),
      wrapped: {
        kekKind: str(r, 'kek_kind'),
        kekId: str(r, 'kek_id'),
        ciphertext: bytes(r, 'wrapped'),
      },
      createdAt: date(r, 'created_at'),
    }));
  }

  async insert(key: StoredDataKey): Promise<void> {
    const n = await touched(
      this.#db,
      `INSERT INTO data_keys (id, kek_kind, kek_id, wrapped, created_at) VALUES ($1, $2, $3, $4, $5)
       ON CONFLICT (id) DO NOTHING`,
      [
        String(key.id),
        key.wrapped.kekKind,
        key.wrapped.kekId,
        buf(key.wrapped.ciphertext),
        key.createdAt,
      ],
    );
    if (n === 0)
      throw new C2Error('C2_ALREADY_EXISTS', 'data key id already exists', {
        details: { id: String(key.id) },
      });
  }

  async update(key: StoredDataKey): Promise<void> {
    const n = await touched(
      this.#db,
      'UPDATE data_keys SET kek_kind = $2, kek_id = $3, wrapped = $4 WHERE id = $1',
      [String(key.id), key.wrapped.kekKind, key.wrapped.kekId, buf(key.wrapped.ciphertext)],
    );
    if (n === 0)
      throw new C2Error('C2_NOT_FOUND', 'data key not found', { details: { id: String(key.id) } });
  }
}
