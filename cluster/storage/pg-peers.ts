/** Client links, the public keys devices should hold, and one-shot commands, in PostgreSQL. */
import type { Queryable } from './pool.ts';
import {
  buf,
  bytes,
  firstRow,
  int,
  rows,
  str,
  strOrNull,
  touched,
  type Row,
  updateAndQueue,
} from './pg-rows.ts';
import type { DeviceCommandRow, DevicePubKeyRow, PageQuery } from './store-types.ts';

function toPubKey(row: Row): DevicePubKeyRow {
  return {
    targetClientId: str(row, 'target_client_id'),
    sourceE4Id: bytes(row, 'source_e4_id'),
    sourceClientId: strOrNull(row, 'source_client_id'),
    desiredVersion: int(row, 'desired_version'),
    deliveredVersion: int(row, 'delivered_version'),
  };
}

/** Links, device public keys and one-shot commands (storage port); see {@link PgPeers}. */
export interface PeerRepository {
  link(targetId: string, sourceId: string): Promise<boolean>;
  unlink(targetId: string, sourceId: string): Promise<boolean>;
  countLinked(targetId: string): Promise<number>;
  linkedNames(targetId: string, page: PageQuery): Promise<string[]>;
  linkedIds(targetId: string): Promise<string[]>;
  /** The device `targetId` should hold `source`'s public key at `version` (0 = remove it). */
  setPubKey(
    targetId: string,
    sourceE4Id: Uint8Array,
    sourceId: string | null,
    version: number,
  ): Promise<void>;
  /** The device should hold no peer key at all (after ResetPubKeys). */
  clearPubKeys(targetId: string): Promise<void>;
  /** A peer's key changed: every device holding it wants the new version; writes outbox rows. */
  followSourceKey(sourceId: string, version: number, reason: string): Promise<number>;
  /** A peer was removed: every device holding its key must drop it; writes outbox rows. */
  revokeSource(sourceId: string, reason: string): Promise<number>;
  /** Forgets which peer keys were delivered to the device, so they are sent again. */
  resetPubKeyDelivery(targetId: string): Promise<void>;
  nextPendingPubKey(targetId: string): Promise<DevicePubKeyRow | undefined>;
  markPubKeyDelivered(targetId: string, sourceE4Id: Uint8Array, version: number): Promise<boolean>;
  deleteRevokedPubKey(targetId: string, sourceE4Id: Uint8Array): Promise<boolean>;
  addCommand(clientId: string, kind: DeviceCommandRow['kind']): Promise<void>;
  /**
   * Queues `kind` in place of any queued one (a resync's re-sends): a fresh row, so that one
   * being sent meanwhile, whose acknowledgement deletes its own row, cannot take this one along.
   */
  replaceCommand(clientId: string, kind: DeviceCommandRow['kind']): Promise<void>;
  nextCommand(clientId: string): Promise<DeviceCommandRow | undefined>;
  deleteCommand(id: string): Promise<boolean>;
}

/** PostgreSQL {@link PeerRepository}. */
export class PgPeers implements PeerRepository {
  /** @param db - a transaction client or the pool */
  constructor(private readonly db: Queryable) {}

  async link(targetId: string, sourceId: string): Promise<boolean> {
    return (
      (await touched(
        this.db,
        `INSERT INTO client_links (target_client_id, source_client_id) VALUES ($1, $2)
         ON CONFLICT DO NOTHING`,
        [targetId, sourceId],
      )) === 1
    );
  }

  async unlink(targetId: string, sourceId: string): Promise<boolean> {
    return (
      (await touched(
        this.db,
        'DELETE FROM client_links WHERE target_client_id = $1 AND source_client_id = $2',
        [targetId, sourceId],
      )) === 1
    );
  }

  async countLinked(targetId: string): Promise<number> {
    const row = await firstRow(
      this.db,
      `SELECT count(*) AS n FROM client_links l JOIN clients c ON c.id = l.source_client_id
       WHERE l.target_client_id = $1 AND c.status = 'active'`,
      [targetId],
    );
    return row === undefined ? 0 : int(row, 'n');
  }

  async linkedNames(targetId: string, page: PageQuery): Promise<string[]> {
    return (
      await rows(
        this.db,
        `SELECT c.name FROM client_links l JOIN clients c ON c.id = l.source_client_id
         WHERE l.target_client_id = $1 AND c.status = 'active' ORDER BY c.name OFFSET $2 LIMIT $3`,
        [targetId, page.offset, page.limit],
      )
    ).map((r) => str(r, 'name'));
  }

  async linkedIds(targetId: string): Promise<string[]> {
    return (
      await rows(this.db, 'SELECT source_client_id FROM client_links WHERE target_client_id = $1', [
        targetId,
      ])
    ).map((r) => str(r, 'source_client_id'));
  }

  async setPubKey(
    targetId: string,
    sourceE4Id: Uint8Array,
    sourceId: string | null,
    version: number,
  ): Promise<void> {
    await this.db.query(
      `INSERT INTO device_pubkeys (target_client_id, source_e4_id, source_client_id, desired_version)
       VALUES ($1, $2, $3, $4)
       ON CONFLICT (target_client_id, source_e4_id) DO UPDATE SET
         desired_version = EXCLUDED.desired_version,
         source_client_id = COALESCE(EXCLUDED.source_client_id, device_pubkeys.source_client_id),
         updated_at = now()`,
      [targetId, buf(sourceE4Id), sourceId, version],
    );
  }

  async clearPubKeys(targetId: string): Promise<void> {
    await this.db.query('DELETE FROM device_pubkeys WHERE target_client_id = $1', [targetId]);
  }

  async followSourceKey(sourceId: string, version: number, reason: string): Promise<number> {
    return updateAndQueue(
      this.db,
      `UPDATE device_pubkeys SET desired_version = $2, updated_at = now()
       WHERE source_client_id = $1 AND desired_version > 0 RETURNING target_client_id AS client_id`,
      [sourceId, version, reason],
      3,
    );
  }

  async revokeSource(sourceId: string, reason: string): Promise<number> {
    return updateAndQueue(
      this.db,
      `UPDATE device_pubkeys SET desired_version = 0, updated_at = now()
       WHERE source_client_id = $1 AND target_client_id <> $1 RETURNING target_client_id AS client_id`,
      [sourceId, reason],
      2,
    );
  }

  async resetPubKeyDelivery(targetId: string): Promise<void> {
    await this.db.query(
      'UPDATE device_pubkeys SET delivered_version = 0 WHERE target_client_id = $1',
      [targetId],
    );
  }

  async nextPendingPubKey(targetId: string): Promise<DevicePubKeyRow | undefined> {
    const row = await firstRow(
      this.db,
      `SELECT * FROM device_pubkeys
       WHERE target_client_id = $1 AND (desired_version = 0 OR delivered_version < desired_version)
       ORDER BY (desired_version = 0) DESC, source_e4_id LIMIT 1`,
      [targetId],
    );
    return row && toPubKey(row);
  }

  async markPubKeyDelivered(
    targetId: string,
    sourceE4Id: Uint8Array,
    version: number,
  ): Promise<boolean> {
    return (
      (await touched(
        this.db,
        `UPDATE device_pubkeys SET delivered_version = $3, updated_at = now()
         WHERE target_client_id = $1 AND source_e4_id = $2 AND delivered_version < $3`,
        [targetId, buf(sourceE4Id), version],
      )) === 1
    );
  }

  async deleteRevokedPubKey(targetId: string, sourceE4Id: Uint8Array): Promise<boolean> {
    return (
      (await touched(
        this.db,
        'DELETE FROM device_pubkeys WHERE target_client_id = $1 AND source_e4_id = $2 AND desired_version = 0',
        [targetId, buf(sourceE4Id)],
      )) === 1
    );
  }

  async addCommand(clientId: string, kind: DeviceCommandRow['kind']): Promise<void> {
    await this.db.query('INSERT INTO device_commands (client_id, kind) VALUES ($1, $2)', [
      clientId,
      kind,
    ]);
  }

  async replaceCommand(clientId: string, kind: DeviceCommandRow['kind']): Promise<void> {
    await this.db.query('DELETE FROM device_commands WHERE client_id = $1 AND kind = $2', [
      clientId,
      kind,
    ]);
    await this.addCommand(clientId, kind);
  }

  async nextCommand(clientId: string): Promise<DeviceCommandRow | undefined> {
    // Re-sent keys first: a device they repair can open nothing else queued before them.
    const row = await firstRow(
      this.db,
      `SELECT id, client_id, kind FROM device_commands WHERE client_id = $1
        ORDER BY kind IN ('ResendIdKey', 'ResendC2Key') DESC, id LIMIT 1`,
      [clientId],
    );
    return (
      row && {
        id: str(row, 'id'),
        clientId: str(row, 'client_id'),
        kind: str(row, 'kind') as DeviceCommandRow['kind'],
      }
    );
  }

  async deleteCommand(id: string): Promise<boolean> {
    return (await touched(this.db, 'DELETE FROM device_commands WHERE id = $1', [id])) === 1;
  }
}
