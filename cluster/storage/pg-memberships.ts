/**
 * Membership and per-(device, topic) delivery state, in PostgreSQL. Fan-outs are single
 * set-based statements, never a round trip per device.
 */
import type { Queryable } from './pool.ts';
import {
  buf,
  bytes,
  date,
  firstRow,
  int,
  rows,
  str,
  strOrNull,
  touched,
  type Row,
  updateAndQueue,
} from './pg-rows.ts';
import type { DeviceTopicRow, PageQuery, RotationCounts } from './store-types.ts';

/**
 * Members per outbox row of a topic rotation: a claim of the outbox takes one such row where it
 * would take this many device rows (`claimOutboxRows`), so a fan-out is shared out in chunks of
 * a delivery batch's default size.
 */
export const TOPIC_OUTBOX_CHUNK = 500;

function toDeviceTopic(row: Row): DeviceTopicRow {
  return {
    clientId: str(row, 'client_id'),
    topicHash: bytes(row, 'topic_hash'),
    topicId: strOrNull(row, 'topic_id'),
    topicName: strOrNull(row, 'topic_name'),
    desiredVersion: int(row, 'desired_version'),
    deliveredVersion: int(row, 'delivered_version'),
    confirmedVersion: int(row, 'confirmed_version'),
    updatedAt: date(row, 'updated_at'),
  };
}

const DEVICE_TOPIC_SELECT = `SELECT dt.client_id, dt.topic_hash, dt.topic_id, t.name AS topic_name,
  dt.desired_version, dt.delivered_version, dt.confirmed_version, dt.updated_at
  FROM device_topics dt LEFT JOIN topics t ON t.id = dt.topic_id`;

/** Membership repository (storage port); see {@link PgMemberships}. */
export interface MembershipRepository {
  get(clientId: string, topicHash: Uint8Array, lock?: boolean): Promise<DeviceTopicRow | undefined>;
  /** Makes the device a member wanting `desiredVersion`; a changed topic id resets delivery. */
  upsert(
    clientId: string,
    topicHash: Uint8Array,
    topicId: string,
    desiredVersion: number,
  ): Promise<void>;
  /** Marks one membership for revocation (RemoveTopic to send). */
  revoke(clientId: string, topicHash: Uint8Array): Promise<boolean>;
  /** Every member of the topic now wants `version`; writes their outbox rows. @returns members */
  fanOutVersion(topicId: string, version: number, reason: string): Promise<number>;
  /** Every member of the topic must drop it (topic removed); writes outbox rows. @returns members */
  revokeAll(topicId: string, reason: string): Promise<number>;
  /** Forgets what was delivered to a device, so its current keys are sent again. */
  resetDelivery(clientId: string): Promise<void>;
  countForClient(clientId: string): Promise<number>;
  topicNamesForClient(clientId: string, page: PageQuery): Promise<string[]>;
  countForTopic(topicId: string): Promise<number>;
  clientNamesForTopic(topicId: string, page: PageQuery): Promise<string[]>;
  forClient(clientId: string): Promise<DeviceTopicRow[]>;
  /** The first membership of a device whose delivery is pending (revocations first). */
  nextPending(clientId: string): Promise<DeviceTopicRow | undefined>;
  /** Moves the delivered version forward only (R7), for the same topic incarnation. */
  markDelivered(
    clientId: string,
    topicHash: Uint8Array,
    topicId: string,
    version: number,
    commandId?: Uint8Array,
  ): Promise<boolean>;
  /** Deletes a membership once its revocation was delivered (only if still a revocation). */
  deleteRevoked(clientId: string, topicHash: Uint8Array): Promise<boolean>;
  rotationCounts(topicId: string, version: number): Promise<RotationCounts>;
}

/** PostgreSQL {@link MembershipRepository}. */
export class PgMemberships implements MembershipRepository {
  /** @param db - a transaction client or the pool */
  constructor(private readonly db: Queryable) {}

  async get(
    clientId: string,
    topicHash: Uint8Array,
    lock = false,
  ): Promise<DeviceTopicRow | undefined> {
    const row = await firstRow(
      this.db,
      `${DEVICE_TOPIC_SELECT} WHERE dt.client_id = $1 AND dt.topic_hash = $2${lock ? ' FOR UPDATE OF dt' : ''}`,
      [clientId, buf(topicHash)],
    );
    return row && toDeviceTopic(row);
  }

  async upsert(
    clientId: string,
    topicHash: Uint8Array,
    topicId: string,
    desiredVersion: number,
  ): Promise<void> {
    await this.db.query(
      `INSERT INTO device_topics (client_id, topic_hash, topic_id, desired_version)
       VALUES ($1, $2, $3, $4)
       ON CONFLICT (client_id, topic_hash) DO UPDATE SET
         desired_version = EXCLUDED.desired_version,
         delivered_version = CASE WHEN device_topics.topic_id IS DISTINCT FROM EXCLUDED.topic_id
           THEN 0 ELSE device_topics.delivered_version END,
         topic_id = EXCLUDED.topic_id,
         updated_at = now()`,
      [clientId, buf(topicHash), topicId, desiredVersion],
    );
  }

  async revoke(clientId: string, topicHash: Uint8Array): Promise<boolean> {
    return (
      (await touched(
        this.db,
        `UPDATE device_topics SET desired_version = 0, updated_at = now()
         WHERE client_id = $1 AND topic_hash = $2`,
        [clientId, buf(topicHash)],
      )) === 1
    );
  }

  async fanOutVersion(topicId: string, version: number, reason: string): Promise<number> {
    // One outbox row per chunk of members, naming the topic and the chunk's id range (migration
    // 0008): a claim turns it into the members still pending, instead of a row written here and
    // deleted there for each member.
    const row = await firstRow(
      this.db,
      `WITH changed AS (
         UPDATE device_topics SET desired_version = $2, updated_at = now()
         WHERE topic_id = $1 AND desired_version > 0 RETURNING client_id
       ), chunked AS (
         SELECT client_id, (row_number() OVER (ORDER BY client_id) - 1) / $4 AS chunk FROM changed
       ), queued AS (
         INSERT INTO outbox (topic_id, first_client_id, last_client_id, reason)
         SELECT $1, min(client_id), max(client_id), $3 FROM chunked GROUP BY chunk
       )
       SELECT count(*) AS n FROM changed`,
      [topicId, version, reason, TOPIC_OUTBOX_CHUNK],
    );
    return row === undefined ? 0 : int(row, 'n');
  }

  async revokeAll(topicId: string, reason: string): Promise<number> {
    return updateAndQueue(
      this.db,
      `UPDATE device_topics SET desired_version = 0, topic_id = NULL, updated_at = now()
       WHERE topic_id = $1 RETURNING client_id`,
      [topicId, reason],
      2,
    );
  }

  async resetDelivery(clientId: string): Promise<void> {
    await this.db.query(
      // The confirmation goes too: the device holds no topic key after a reset, and after a
      // resync what it holds is unknown until it confirms again; and so does the command a
      // receipt could name, so that a late or replayed receipt of it confirms nothing.
      `UPDATE device_topics SET delivered_version = 0, confirmed_version = 0,
              last_command_id = NULL, last_command_version = NULL, updated_at = now()
        WHERE client_id = $1`,
      [clientId],
    );
    // Revocations are moot after a reset: the device holds no topic key any more.
    await this.db.query('DELETE FROM device_topics WHERE client_id = $1 AND desired_version = 0', [
      clientId,
    ]);
  }

  async countForClient(clientId: string): Promise<number> {
    const row = await firstRow(
      this.db,
      `SELECT count(*) AS n FROM device_topics
       WHERE client_id = $1 AND desired_version > 0 AND topic_id IS NOT NULL`,
      [clientId],
    );
    return row === undefined ? 0 : int(row, 'n');
  }

  async topicNamesForClient(clientId: string, page: PageQuery): Promise<string[]> {
    return (
      await rows(
        this.db,
        `SELECT t.name FROM device_topics dt JOIN topics t ON t.id = dt.topic_id
         WHERE dt.client_id = $1 AND dt.desired_version > 0 ORDER BY t.name OFFSET $2 LIMIT $3`,
        [clientId, page.offset, page.limit],
      )
    ).map((r) => str(r, 'name'));
  }

  async countForTopic(topicId: string): Promise<number> {
    const row = await firstRow(
      this.db,
      `SELECT count(*) AS n FROM device_topics dt JOIN clients c ON c.id = dt.client_id
       WHERE dt.topic_id = $1 AND dt.desired_version > 0 AND c.status = 'active'`,
      [topicId],
    );
    return row === undefined ? 0 : int(row, 'n');
  }

  async clientNamesForTopic(topicId: string, page: PageQuery): Promise<string[]> {
    return (
      await rows(
        this.db,
        `SELECT c.name FROM device_topics dt JOIN clients c ON c.id = dt.client_id
         WHERE dt.topic_id = $1 AND dt.desired_version > 0 AND c.status = 'active'
         ORDER BY c.name OFFSET $2 LIMIT $3`,
        [topicId, page.offset, page.limit],
      )
    ).map((r) => str(r, 'name'));
  }

  async forClient(clientId: string): Promise<DeviceTopicRow[]> {
    return (
      await rows(this.db, `${DEVICE_TOPIC_SELECT} WHERE dt.client_id = $1 ORDER BY t.name`, [
        clientId,
      ])
    ).map(toDeviceTopic);
  }

  async nextPending(clientId: string): Promise<DeviceTopicRow | undefined> {
    const row = await firstRow(
      this.db,
      `${DEVICE_TOPIC_SELECT}
       WHERE dt.client_id = $1 AND (dt.desired_version = 0 OR dt.delivered_version < dt.desired_version)
       ORDER BY (dt.desired_version = 0) DESC, dt.topic_hash LIMIT 1`,
      [clientId],
    );
    return row && toDeviceTopic(row);
  }

  async markDelivered(
    clientId: string,
    topicHash: Uint8Array,
    topicId: string,
    version: number,
    commandId?: Uint8Array,
  ): Promise<boolean> {
    return (
      (await touched(
        this.db,
        `UPDATE device_topics SET delivered_version = $4, updated_at = now(),
           last_command_id = $5, last_command_version = $4
         WHERE client_id = $1 AND topic_hash = $2 AND topic_id = $3 AND delivered_version < $4`,
        [
          clientId,
          buf(topicHash),
          topicId,
          version,
          commandId === undefined ? null : buf(commandId),
        ],
      )) === 1
    );
  }

  async deleteRevoked(clientId: string, topicHash: Uint8Array): Promise<boolean> {
    return (
      (await touched(
        this.db,
        'DELETE FROM device_topics WHERE client_id = $1 AND topic_hash = $2 AND desired_version = 0',
        [clientId, buf(topicHash)],
      )) === 1
    );
  }

  async rotationCounts(topicId: string, version: number): Promise<RotationCounts> {
    const row = await firstRow(
      this.db,
      `SELECT count(*) AS members,
         count(*) FILTER (WHERE dt.delivered_version >= $2) AS delivered,
         count(*) FILTER (WHERE dt.confirmed_version >= $2) AS confirmed,
         -- A device failed on this rollout only if it failed after its membership last changed
         -- (the rotation's write): one that failed before has the new work still to try.
         count(*) FILTER (WHERE dt.delivered_version < $2 AND (c.sync_state = 'unreachable'
                            OR (c.sync_state = 'failed' AND c.sync_failed_at >= dt.updated_at)))
           AS failed
       FROM device_topics dt JOIN clients c ON c.id = dt.client_id
       WHERE dt.topic_id = $1 AND dt.desired_version > 0`,
      [topicId, version],
    );
    const members = row === undefined ? 0 : int(row, 'members');
    const delivered = row === undefined ? 0 : int(row, 'delivered');
    const failed = row === undefined ? 0 : int(row, 'failed');
    const confirmed = row === undefined ? 0 : int(row, 'confirmed');
    return { members, delivered, confirmed, failed, pending: members - delivered - failed };
  }
}
