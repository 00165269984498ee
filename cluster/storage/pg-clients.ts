/** Clients and their identity key versions, in PostgreSQL. */
import type { Queryable } from './pool.ts';
import {
  buf,
  bytes,
  bytesOrNull,
  date,
  dateOrNull,
  firstRow,
  int,
  intOrNull,
  rows,
  str,
  strOrNull,
  touched,
  type Row,
} from './pg-rows.ts';
import type { ClientKeyRow, ClientRow, DeviceRejection, PageQuery } from './store-types.ts';

const CLIENT_COLUMNS = `id, name, e4_id, status, key_version, delivered_key_version, c2_key_version, delivery_epoch,
  sync_state, sync_attempts, sync_error, sync_failed_at, last_delivery_at, created_at, updated_at,
  last_rejected_at, last_rejection_reason, last_rejected_command`;

function lastRejection(row: Row): DeviceRejection | null {
  const at = dateOrNull(row, 'last_rejected_at');
  return at === null
    ? null
    : {
        at,
        reason: strOrNull(row, 'last_rejection_reason') ?? 'Other',
        command: strOrNull(row, 'last_rejected_command') ?? 'unknown',
      };
}

function toClient(row: Row): ClientRow {
  return {
    id: str(row, 'id'),
    name: str(row, 'name'),
    e4Id: bytes(row, 'e4_id'),
    status: str(row, 'status') as ClientRow['status'],
    keyVersion: int(row, 'key_version'),
    deliveredKeyVersion: int(row, 'delivered_key_version'),
    c2KeyVersion: intOrNull(row, 'c2_key_version'),
    deliveryEpoch: int(row, 'delivery_epoch'),
    syncState: str(row, 'sync_state') as ClientRow['syncState'],
    syncAttempts: int(row, 'sync_attempts'),
    syncError: strOrNull(row, 'sync_error'),
    syncFailedAt: dateOrNull(row, 'sync_failed_at'),
    lastDeliveryAt: dateOrNull(row, 'last_delivery_at'),
    lastRejection: lastRejection(row),
    createdAt: date(row, 'created_at'),
    updatedAt: date(row, 'updated_at'),
  };
}

function toClientKey(row: Row): ClientKeyRow {
  return {
    clientId: str(row, 'client_id'),
    version: int(row, 'version'),
    sealed: bytes(row, 'sealed'),
    publicKey: bytesOrNull(row, 'public_key'),
    fingerprint: str(row, 'fingerprint'),
    createdAt: date(row, 'created_at'),
  };
}

/** New client values. */
export interface NewClient {
  readonly name: string;
  readonly e4Id: Uint8Array;
  readonly keyVersion: number;
  readonly deliveredKeyVersion: number;
  readonly c2KeyVersion: number | null;
}

/** New identity key version values. */
export interface NewClientKey {
  readonly clientId: string;
  readonly version: number;
  readonly sealed: Uint8Array;
  readonly publicKey: Uint8Array | null;
  readonly fingerprint: string;
}

/** Device delivery bookkeeping. */
export interface SyncStatus {
  readonly state: ClientRow['syncState'];
  readonly attempts: number;
  readonly error: string | null;
}

/** Client repository (storage port); see {@link PgClients}. */
export interface ClientRepository {
  byName(name: string, lock?: boolean): Promise<ClientRow | undefined>;
  byId(id: string, lock?: boolean): Promise<ClientRow | undefined>;
  /** Inserts a client; `undefined` when one of that name exists (another call committed it). */
  insert(client: NewClient): Promise<ClientRow | undefined>;
  insertKey(key: NewClientKey): Promise<void>;
  key(clientId: string, version: number): Promise<ClientKeyRow | undefined>;
  keys(clientId: string): Promise<ClientKeyRow[]>;
  /** Compare-and-set of the key version (R1); false when another writer won. */
  casKeyVersion(
    clientId: string,
    expected: number,
    next: number,
    delivered?: number,
  ): Promise<boolean>;
  /** Moves the delivered key version forward only (R7). */
  markKeyDelivered(clientId: string, version: number): Promise<boolean>;
  /** Moves the delivered C2 key version forward only (R7). */
  markC2KeyDelivered(clientId: string, version: number): Promise<boolean>;
  markRemoving(clientId: string): Promise<void>;
  /** Invalidates acknowledgements of commands planned before now (after a reset or resync). */
  bumpDeliveryEpoch(clientId: string): Promise<void>;
  delete(clientId: string): Promise<void>;
  count(): Promise<number>;
  names(page: PageQuery): Promise<string[]>;
  namesAfter(cursor: string | undefined, limit: number): Promise<ClientRow[]>;
  setSync(clientId: string, status: SyncStatus): Promise<void>;
  /**
   * {@link setSync} as the delivery path writes it: never over `unreachable`, which a
   * reconciliation may set while a sync of the device runs (that sync's next plan is idle).
   */
  setDeliverySync(clientId: string, status: SyncStatus): Promise<void>;
  markDeliveredNow(clientId: string): Promise<void>;
  namesByIds(ids: readonly string[]): Promise<Map<string, string>>;
}

/** PostgreSQL {@link ClientRepository}. */
export class PgClients implements ClientRepository {
  /** @param db - a transaction client or the pool */
  constructor(private readonly db: Queryable) {}

  async byName(name: string, lock = false): Promise<ClientRow | undefined> {
    const row = await firstRow(
      this.db,
      `SELECT ${CLIENT_COLUMNS} FROM clients WHERE name = $1${lock ? ' FOR UPDATE' : ''}`,
      [name],
    );
    return row && toClient(row);
  }

  async byId(id: string, lock = false): Promise<ClientRow | undefined> {
    const row = await firstRow(
      this.db,
      `SELECT ${CLIENT_COLUMNS} FROM clients WHERE id = $1${lock ? ' FOR UPDATE' : ''}`,
      [id],
    );
    return row && toClient(row);
  }

  async insert(client: NewClient): Promise<ClientRow | undefined> {
    // A concurrent NewClient of the same name waits for the first to commit, then inserts
    // nothing: the caller takes the existing-client path (a unique violation was a 500). Every
    // unique index arbitrates, not only the name's: e4_id derives from the name, and a loser
    // that reached its index first failed with a unique violation on it.
    const row = await firstRow(
      this.db,
      `INSERT INTO clients (name, e4_id, key_version, delivered_key_version, c2_key_version)
       VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING RETURNING ${CLIENT_COLUMNS}`,
      [
        client.name,
        buf(client.e4Id),
        client.keyVersion,
        client.deliveredKeyVersion,
        client.c2KeyVersion,
      ],
    );
    return row && toClient(row);
  }

  async insertKey(key: NewClientKey): Promise<void> {
    await this.db.query(
      `INSERT INTO client_keys (client_id, version, sealed, public_key, fingerprint)
       VALUES ($1, $2, $3, $4, $5)`,
      [
        key.clientId,
        key.version,
        buf(key.sealed),
        key.publicKey && buf(key.publicKey),
        key.fingerprint,
      ],
    );
  }

  async key(clientId: string, version: number): Promise<ClientKeyRow | undefined> {
    const row = await firstRow(
      this.db,
      'SELECT * FROM client_keys WHERE client_id = $1 AND version = $2',
      [clientId, version],
    );
    return row && toClientKey(row);
  }

  async keys(clientId: string): Promise<ClientKeyRow[]> {
    return (
      await rows(this.db, 'SELECT * FROM client_keys WHERE client_id = $1 ORDER BY version', [
        clientId,
      ])
    ).map(toClientKey);
  }

  async casKeyVersion(
    clientId: string,
    expected: number,
    next: number,
    delivered?: number,
  ): Promise<boolean> {
    const n = await touched(
      this.db,
      `UPDATE clients SET key_version = $3, updated_at = now(),
         delivered_key_version = COALESCE($4, delivered_key_version)
       WHERE id = $1 AND key_version = $2`,
      [clientId, expected, next, delivered ?? null],
    );
    return n === 1;
  }

  async markKeyDelivered(clientId: string, version: number): Promise<boolean> {
    return (
      (await touched(
        this.db,
        `UPDATE clients SET delivered_key_version = $2, updated_at = now()
         WHERE id = $1 AND delivered_key_version < $2`,
        [clientId, version],
      )) === 1
    );
  }

  async markC2KeyDelivered(clientId: string, version: number): Promise<boolean> {
    return (
      (await touched(
        this.db,
        `UPDATE clients SET c2_key_version = $2, updated_at = now()
         WHERE id = $1 AND (c2_key_version IS NULL OR c2_key_version < $2)`,
        [clientId, version],
      )) === 1
    );
  }

  async markRemoving(clientId: string): Promise<void> {
    await this.db.query(
      `UPDATE clients SET status = 'removing', updated_at = now() WHERE id = $1`,
      [clientId],
    );
  }

  async bumpDeliveryEpoch(clientId: string): Promise<void> {
    await this.db.query('UPDATE clients SET delivery_epoch = delivery_epoch + 1 WHERE id = $1', [
      clientId,
    ]);
  }

  async delete(clientId: string): Promise<void> {
    await this.db.query('DELETE FROM clients WHERE id = $1', [clientId]);
  }

  async count(): Promise<number> {
    const row = await firstRow(
      this.db,
      `SELECT count(*) AS n FROM clients WHERE status = 'active'`,
    );
    return row === undefined ? 0 : int(row, 'n');
  }

  async names(page: PageQuery): Promise<string[]> {
    return (
      await rows(
        this.db,
        `SELECT name FROM clients WHERE status = 'active' ORDER BY name OFFSET $1 LIMIT $2`,
        [page.offset, page.limit],
      )
    ).map((r) => str(r, 'name'));
  }

  async namesAfter(cursor: string | undefined, limit: number): Promise<ClientRow[]> {
    return (
      await rows(
        this.db,
        `SELECT ${CLIENT_COLUMNS} FROM clients
         WHERE status = 'active' AND ($1::text IS NULL OR name > $1) ORDER BY name LIMIT $2`,
        [cursor ?? null, limit],
      )
    ).map(toClient);
  }

  async setSync(clientId: string, status: SyncStatus): Promise<void> {
    await this.db.query(
      `UPDATE clients SET sync_state = $2, sync_attempts = $3, sync_error = $4,
         sync_failed_at = CASE WHEN $2 IN ('failed', 'unreachable') THEN now() ELSE NULL END
       WHERE id = $1`,
      [clientId, status.state, status.attempts, status.error],
    );
  }

  async setDeliverySync(clientId: string, status: SyncStatus): Promise<void> {
    await this.db.query(
      `UPDATE clients SET sync_state = $2, sync_attempts = $3, sync_error = $4,
         sync_failed_at = CASE WHEN $2 = 'failed' THEN now() ELSE NULL END
       WHERE id = $1 AND sync_state <> 'unreachable'`,
      [clientId, status.state, status.attempts, status.error],
    );
  }

  async markDeliveredNow(clientId: string): Promise<void> {
    await this.db.query('UPDATE clients SET last_delivery_at = now() WHERE id = $1', [clientId]);
  }

  async namesByIds(ids: readonly string[]): Promise<Map<string, string>> {
    const found = await rows(this.db, 'SELECT id, name FROM clients WHERE id = ANY($1::bigint[])', [
      ids,
    ]);
    return new Map(found.map((r) => [str(r, 'id'), str(r, 'name')]));
  }
}
