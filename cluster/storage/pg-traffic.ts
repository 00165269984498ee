/** Monitored traffic counters and the key versions devices were seen using, in PostgreSQL. */
import type { Queryable } from './pool.ts';
import { buf, bytesOrNull, date, firstRow, int, rows, str, type Row } from './pg-rows.ts';

/** Messages of one class seen on a topic under one key version, over a time span. */
export interface TrafficCount {
  readonly topicId: string;
  /** 0 when no key of the topic authenticated the messages. */
  readonly keyVersion: number;
  readonly class: string;
  readonly messages: number;
  readonly firstAt: Date;
  readonly lastAt: Date;
}

/** A signed message's sender, seen using a key version on a topic. */
export interface DeviceKeyUse {
  readonly topicId: string;
  /** The sender's 16-byte E4 id. */
  readonly e4Id: Uint8Array;
  readonly keyVersion: number;
  readonly at: Date;
}

/** A device's last seen key version on a topic, by name. */
export interface DeviceKeyUseRow {
  readonly client: string;
  readonly keyVersion: number;
  readonly lastAt: Date;
}

/**
 * The key version a device was last seen publishing under on one of its topics (public-key
 * mode), and whether that shows a lost delivery.
 */
export interface ObservedKeyUse {
  readonly topicId: string;
  readonly keyVersion: number;
  readonly lastAt: Date;
  /**
   * Seen under an older version than the one delivered to it (accepted by the broker), later
   * than the grace period after the membership last changed: the device did not apply it.
   */
  readonly behind: boolean;
}

/** Traffic repository (storage port); see {@link PgTraffic}. */
export interface TrafficRepository {
  /** Adds counts (one statement for the whole batch). */
  record(counts: readonly TrafficCount[]): Promise<void>;
  /** Records senders' key versions; only ever moves a device's record forward in time. */
  recordDeviceUse(uses: readonly DeviceKeyUse[]): Promise<void>;
  forTopic(topicId: string): Promise<TrafficCount[]>;
  /** Devices seen on the topic, those on the oldest key versions first. */
  devicesForTopic(topicId: string, limit: number): Promise<DeviceKeyUseRow[]>;
  /**
   * The key versions a client was seen using on its topics, judged against what was delivered
   * to it (see {@link ObservedKeyUse.behind}) with `graceSeconds` for messages in flight.
   */
  forClient(clientId: string, graceSeconds: number): Promise<ObservedKeyUse[]>;
  /** The current Ed25519 public key of the device with this E4 id (public-key mode). */
  devicePublicKey(e4Id: Uint8Array): Promise<Uint8Array | undefined>;
}

function toCount(row: Row): TrafficCount {
  return {
    topicId: str(row, 'topic_id'),
    keyVersion: int(row, 'key_version'),
    class: str(row, 'class'),
    messages: int(row, 'messages'),
    firstAt: date(row, 'first_at'),
    lastAt: date(row, 'last_at'),
  };
}

/** PostgreSQL {@link TrafficRepository}. */
export class PgTraffic implements TrafficRepository {
  /** @param db - a transaction client or the pool */
  constructor(private readonly db: Queryable) {}

  async record(counts: readonly TrafficCount[]): Promise<void> {
    if (counts.length === 0) return;
    // A topic removed since the messages were counted has no row to join: its counts are dropped.
    await this.db.query(
      `INSERT INTO topic_traffic (topic_id, key_version, class, messages, first_at, last_at)
       SELECT t.id, c.key_version, c.class, c.messages, c.first_at, c.last_at
         FROM unnest($1::bigint[], $2::int[], $3::text[], $4::bigint[], $5::timestamptz[],
                     $6::timestamptz[])
              AS c(topic_id, key_version, class, messages, first_at, last_at)
         JOIN topics t ON t.id = c.topic_id
       ON CONFLICT (topic_id, key_version, class) DO UPDATE
         SET messages = topic_traffic.messages + excluded.messages,
             first_at = least(topic_traffic.first_at, excluded.first_at),
             last_at = greatest(topic_traffic.last_at, excluded.last_at)`,
      [
        counts.map((c) => c.topicId),
        counts.map((c) => c.keyVersion),
        counts.map((c) => c.class),
        counts.map((c) => c.messages),
        counts.map((c) => c.firstAt),
        counts.map((c) => c.lastAt),
      ],
    );
  }

  async recordDeviceUse(uses: readonly DeviceKeyUse[]): Promise<void> {
    if (uses.length === 0) return;
    await this.db.query(
      `INSERT INTO device_topic_traffic (client_id, topic_id, key_version, last_at)
       SELECT DISTINCT ON (t.id, c.id) c.id, t.id, u.key_version, u.at
         FROM unnest($1::bigint[], $2::bytea[], $3::int[], $4::timestamptz[])
              AS u(topic_id, e4_id, key_version, at)
         JOIN topics t ON t.id = u.topic_id
         JOIN clients c ON c.e4_id = u.e4_id
        ORDER BY t.id, c.id, u.at DESC
       ON CONFLICT (topic_id, client_id) DO UPDATE
         SET key_version = excluded.key_version, last_at = excluded.last_at
         WHERE device_topic_traffic.last_at <= excluded.last_at`,
      [
        uses.map((u) => u.topicId),
        uses.map((u) => buf(u.e4Id)),
        uses.map((u) => u.keyVersion),
        uses.map((u) => u.at),
      ],
    );
  }

  async forTopic(topicId: string): Promise<TrafficCount[]> {
    return (
      await rows(
        this.db,
        `SELECT topic_id, key_version, class, messages, first_at, last_at FROM topic_traffic
          WHERE topic_id = $1 ORDER BY key_version DESC, class`,
        [topicId],
      )
    ).map(toCount);
  }

  async devicesForTopic(topicId: string, limit: number): Promise<DeviceKeyUseRow[]> {
    return (
      await rows(
        this.db,
        `SELECT c.name, d.key_version, d.last_at FROM device_topic_traffic d
           JOIN clients c ON c.id = d.client_id
          WHERE d.topic_id = $1 ORDER BY d.key_version, c.name LIMIT $2`,
        [topicId, limit],
      )
    ).map((row) => ({
      client: str(row, 'name'),
      keyVersion: int(row, 'key_version'),
      lastAt: date(row, 'last_at'),
    }));
  }

  async forClient(clientId: string, graceSeconds: number): Promise<ObservedKeyUse[]> {
    // updated_at moves with every change of the membership (a rotation, a delivery record), so
    // only a message seen well after the newest change counts as proof of a lost command.
    return (
      await rows(
        this.db,
        `SELECT u.topic_id, u.key_version, u.last_at,
                (u.key_version < dt.delivered_version AND dt.desired_version > 0
                 AND u.last_at > dt.updated_at + make_interval(secs => $2)) AS behind
           FROM device_topic_traffic u
           JOIN topics t ON t.id = u.topic_id
           JOIN device_topics dt ON dt.client_id = u.client_id AND dt.topic_hash = t.topic_hash
          WHERE u.client_id = $1
          ORDER BY u.topic_id`,
        [clientId, graceSeconds],
      )
    ).map((row) => ({
      topicId: str(row, 'topic_id'),
      keyVersion: int(row, 'key_version'),
      lastAt: date(row, 'last_at'),
      behind: row['behind'] === true,
    }));
  }

  async devicePublicKey(e4Id: Uint8Array): Promise<Uint8Array | undefined> {
    const row = await firstRow(
      this.db,
      `SELECT k.public_key FROM clients c
         JOIN client_keys k ON k.client_id = c.id AND k.version = c.key_version
        WHERE c.e4_id = $1`,
      [buf(e4Id)],
    );
    return row === undefined ? undefined : (bytesOrNull(row, 'public_key') ?? undefined);
  }
}
