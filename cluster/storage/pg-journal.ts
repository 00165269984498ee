/**
 * What every mutation writes beside its state change, in the same transaction: outbox rows,
 * idempotency records, audit entries and events; plus deployment settings and C2 key versions.
 */
import { TOPIC_OUTBOX_CHUNK } from './pg-memberships.ts';
import type { Queryable } from './pool.ts';
import { buf, bytes, date, firstRow, int, rows, str, type Row } from './pg-rows.ts';
import type {
  AuditEntry,
  C2KeyRow,
  EventEntry,
  StoredEvent,
  StoredRequest,
} from './store-types.ts';

function toC2Key(row: Row): C2KeyRow {
  return {
    version: int(row, 'version'),
    publicKey: bytes(row, 'public_key'),
    sealedPrivate: bytes(row, 'sealed_private'),
    fingerprint: str(row, 'fingerprint'),
    createdAt: date(row, 'created_at'),
  };
}

/**
 * The Postgres notification channel of the event stream: a sequencer notifies it (payload: the
 * schema) whenever it positioned events, so every node's subscribers read at once.
 */
export const EVENT_CHANNEL = 'e4c2_events';

/** Journal repository (storage port); see {@link PgJournal}. */
export interface JournalRepository {
  enqueue(clientId: string, reason: string): Promise<void>;
  /**
   * Removes outbox rows for up to about `limit` devices, skipping rows other relays hold: up to
   * `limit` rows of one device each, and as many rows of a topic rotation (each a chunk of its
   * members) as fit in `limit` devices, at least one.
   * @returns how many rows were claimed; their clients (a row's device, or the members of a
   *   chunk whose membership of the topic is still pending); and whether a limit was reached (so
   *   more may be waiting: claim again)
   */
  claimOutboxRows(limit: number): Promise<{ rows: number; clientIds: string[]; full: boolean }>;
  findRequest(requestId: string): Promise<StoredRequest | undefined>;
  /** Records a response; false when the id is taken (a concurrent duplicate). */
  saveRequest(
    requestId: string,
    operation: string,
    requestHash: string,
    response: unknown,
  ): Promise<boolean>;
  audit(entry: AuditEntry): Promise<void>;
  /** Writes an event; it gets its stream position from {@link sequenceEvents} after commit. */
  event(entry: EventEntry): Promise<void>;
  /** Positioned events with a stream position above `seq`, in stream order. */
  eventsAfter(seq: string, limit: number): Promise<StoredEvent[]>;
  /** Whether committed events wait for a stream position. */
  hasUnsequencedEvents(): Promise<boolean>;
  /**
   * Gives up to `limit` committed events without a position the next positions, and notifies
   * {@link EVENT_CHANNEL} (delivered when the transaction commits). Run inside a transaction: the
   * row lock it takes makes sequencers run one at a time. @returns how many were positioned
   */
  sequenceEvents(limit: number): Promise<number>;
  /** The last position handed out (0 when none). */
  latestEventSeq(): Promise<string>;
  /**
   * Moves the last position forward by `by` (after a restore: positions handed out before the
   * disaster are never reused). Run inside a transaction. @returns the new last position
   */
  advanceEventSeq(by: number): Promise<string>;
  setting(name: string): Promise<string | undefined>;
  /** Sets a setting only if absent; returns the value in force. */
  initSetting(name: string, value: string): Promise<string>;
  putSetting(name: string, value: string): Promise<void>;
  /** Removes a setting (nothing when absent). */
  deleteSetting(name: string): Promise<void>;
  insertC2Key(key: Omit<C2KeyRow, 'createdAt'>): Promise<void>;
  c2Key(version: number): Promise<C2KeyRow | undefined>;
  latestC2Key(): Promise<C2KeyRow | undefined>;
  /**
   * Clients whose devices have pending work, in id order after `afterId` (the sweep). A device
   * whose delivery failed counts only for work that arrived after the failure ("failed until new
   * work"): otherwise a failed device given newer work, whose job was then lost, was never swept.
   */
  pendingClients(afterId: string, limit: number): Promise<string[]>;
}

/** PostgreSQL {@link JournalRepository}. */
export class PgJournal implements JournalRepository {
  /** @param db - a transaction client or the pool */
  constructor(private readonly db: Queryable) {}

  async enqueue(clientId: string, reason: string): Promise<void> {
    await this.db.query('INSERT INTO outbox (client_id, reason) VALUES ($1, $2)', [
      clientId,
      reason,
    ]);
  }

  async claimOutboxRows(
    limit: number,
  ): Promise<{ rows: number; clientIds: string[]; full: boolean }> {
    // `id = ANY(ARRAY(...))`, not `id IN (...)`: with IN, the planner joins the claimed ids to a
    // sequential scan of the whole outbox, so a fan-out's claims cost O(rows) each (18 ms per
    // 500-row claim with 100,000 rows waiting, against 2 ms through the primary key).
    // A rotation's row stands for up to TOPIC_OUTBOX_CHUNK members: a claim takes as many of
    // those as fit in `limit` devices (at least one), and turns each into its members still
    // pending, read in this statement's snapshot (it sees the rotation, which committed the row).
    // The first result row always comes, with the counts of outbox rows claimed.
    const chunks = Math.max(1, Math.floor(limit / TOPIC_OUTBOX_CHUNK));
    const claimed = await rows(
      this.db,
      `WITH claimed AS (
         DELETE FROM outbox WHERE id = ANY(
           ARRAY(SELECT id FROM outbox WHERE topic_id IS NULL ORDER BY id LIMIT $1
                 FOR UPDATE SKIP LOCKED)
           || ARRAY(SELECT id FROM outbox WHERE topic_id IS NOT NULL ORDER BY id LIMIT $2
                    FOR UPDATE SKIP LOCKED)
         ) RETURNING client_id, topic_id, first_client_id, last_client_id
       ), members AS (
         -- A range scan of device_topics_topic per chunk (OFFSET 0 keeps it one: as a join, the
         -- planner hashes a sequential scan of every membership for a handful of chunks).
         SELECT m.client_id FROM (SELECT * FROM claimed WHERE topic_id IS NOT NULL) c
         CROSS JOIN LATERAL (
           SELECT dt.client_id FROM device_topics dt
           WHERE dt.topic_id = c.topic_id
             AND dt.client_id BETWEEN c.first_client_id AND c.last_client_id
             AND dt.desired_version > 0 AND dt.delivered_version < dt.desired_version
           OFFSET 0
         ) m
       )
       SELECT n.devices, n.chunks, ids.client_id
       FROM (SELECT count(client_id) AS devices, count(topic_id) AS chunks FROM claimed) n
       LEFT JOIN (
         SELECT client_id FROM claimed WHERE client_id IS NOT NULL
         UNION ALL SELECT client_id FROM members
       ) ids ON true`,
      [limit, chunks],
    );
    const clientIds = new Set<string>();
    for (const r of claimed) if (r['client_id'] !== null) clientIds.add(str(r, 'client_id'));
    const first = claimed[0];
    const devices = first === undefined ? 0 : int(first, 'devices');
    const topicRows = first === undefined ? 0 : int(first, 'chunks');
    return {
      rows: devices + topicRows,
      clientIds: [...clientIds],
      full: devices === limit || topicRows === chunks,
    };
  }

  async findRequest(requestId: string): Promise<StoredRequest | undefined> {
    const row = await firstRow(
      this.db,
      'SELECT operation, request_hash, response FROM request_ids WHERE request_id = $1',
      [requestId],
    );
    return (
      row && {
        operation: str(row, 'operation'),
        requestHash: str(row, 'request_hash'),
        response: row['response'],
      }
    );
  }

  async saveRequest(
    requestId: string,
    operation: string,
    requestHash: string,
    response: unknown,
  ): Promise<boolean> {
    const result = await this.db.query(
      `INSERT INTO request_ids (request_id, operation, request_hash, response) VALUES ($1, $2, $3, $4)
       ON CONFLICT (request_id) DO NOTHING`,
      [requestId, operation, requestHash, JSON.stringify(response ?? null)],
    );
    return result.rowCount === 1;
  }

  async audit(entry: AuditEntry): Promise<void> {
    await this.db.query(
      `INSERT INTO audit_log (actor, operation, subject_kind, subject, key_version, key_fingerprint, request_id, details)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
      [
        entry.actor,
        entry.operation,
        entry.subjectKind,
        entry.subject,
        entry.keyVersion ?? null,
        entry.keyFingerprint ?? null,
        entry.requestId ?? null,
        JSON.stringify(entry.details ?? {}),
      ],
    );
  }

  async event(entry: EventEntry): Promise<void> {
    await this.db.query(
      'INSERT INTO events (type, client_name, topic, key_version, details) VALUES ($1, $2, $3, $4, $5)',
      [
        entry.type,
        entry.clientName ?? null,
        entry.topic ?? null,
        entry.keyVersion ?? null,
        JSON.stringify(entry.details ?? {}),
      ],
    );
  }

  async eventsAfter(seq: string, limit: number): Promise<StoredEvent[]> {
    return (
      await rows(
        this.db,
        `SELECT stream_seq, at, type, client_name, topic, key_version, details FROM events
         WHERE stream_seq > $1 ORDER BY stream_seq LIMIT $2`,
        [seq, limit],
      )
    ).map((r) => {
      const event: StoredEvent = {
        seq: str(r, 'stream_seq'),
        at: date(r, 'at'),
        type: str(r, 'type'),
        ...(r['client_name'] === null ? {} : { clientName: str(r, 'client_name') }),
        ...(r['topic'] === null ? {} : { topic: str(r, 'topic') }),
        ...(r['key_version'] === null ? {} : { keyVersion: int(r, 'key_version') }),
        details: (r['details'] ?? {}) as Record<string, string | number | boolean>,
      };
      return event;
    });
  }

  async hasUnsequencedEvents(): Promise<boolean> {
    const row = await firstRow(
      this.db,
      'SELECT EXISTS (SELECT 1 FROM events WHERE stream_seq IS NULL) AS pending',
    );
    return row?.['pending'] === true;
  }

  async sequenceEvents(limit: number): Promise<number> {
    // The lock serializes sequencers; the next statement's snapshot (READ COMMITTED) is taken
    // after the previous sequencer committed, so it sees its positions and `last_seq`.
    const head = await firstRow(this.db, 'SELECT last_seq FROM event_stream FOR UPDATE');
    if (head === undefined) return 0;
    const base = str(head, 'last_seq');
    const positioned = await rows(
      this.db,
      `WITH batch AS (
         SELECT seq, row_number() OVER (ORDER BY seq) AS n FROM events
         WHERE stream_seq IS NULL ORDER BY seq LIMIT $2
       )
       UPDATE events e SET stream_seq = $1::bigint + b.n FROM batch b WHERE e.seq = b.seq
       RETURNING e.stream_seq`,
      [base, limit],
    );
    if (positioned.length === 0) return 0;
    await this.db.query('UPDATE event_stream SET last_seq = $1::bigint + $2', [
      base,
      positioned.length,
    ]);
    await this.db.query('SELECT pg_notify($1, current_schema())', [EVENT_CHANNEL]);
    return positioned.length;
  }

  async latestEventSeq(): Promise<string> {
    const row = await firstRow(this.db, 'SELECT last_seq FROM event_stream');
    return row === undefined ? '0' : str(row, 'last_seq');
  }

  async advanceEventSeq(by: number): Promise<string> {
    const row = await firstRow(
      this.db,
      'UPDATE event_stream SET last_seq = last_seq + $1 RETURNING last_seq',
      [by],
    );
    return row === undefined ? '0' : str(row, 'last_seq');
  }

  async setting(name: string): Promise<string | undefined> {
    const row = await firstRow(this.db, 'SELECT value FROM c2_settings WHERE name = $1', [name]);
    return row && str(row, 'value');
  }

  async initSetting(name: string, value: string): Promise<string> {
    await this.db.query(
      'INSERT INTO c2_settings (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING',
      [name, value],
    );
    return (await this.setting(name)) ?? value;
  }

  async putSetting(name: string, value: string): Promise<void> {
    await this.db.query(
      'INSERT INTO c2_settings (name, value) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET value = $2',
      [name, value],
    );
  }

  async deleteSetting(name: string): Promise<void> {
    await this.db.query('DELETE FROM c2_settings WHERE name = $1', [name]);
  }

  async insertC2Key(key: Omit<C2KeyRow, 'createdAt'>): Promise<void> {
    await this.db.query(
      'INSERT INTO c2_keys (version, public_key, sealed_private, fingerprint) VALUES ($1, $2, $3, $4)',
      [key.version, buf(key.publicKey), buf(key.sealedPrivate), key.fingerprint],
    );
  }

  async c2Key(version: number): Promise<C2KeyRow | undefined> {
    const row = await firstRow(this.db, 'SELECT * FROM c2_keys WHERE version = $1', [version]);
    return row && toC2Key(row);
  }

  async latestC2Key(): Promise<C2KeyRow | undefined> {
    const row = await firstRow(this.db, 'SELECT * FROM c2_keys ORDER BY version DESC LIMIT 1');
    return row && toC2Key(row);
  }

  async pendingClients(afterId: string, limit: number): Promise<string[]> {
    return (
      await rows(
        this.db,
        `SELECT c.id FROM clients c
         -- since: work changed after it is new to the device (every work, unless it failed).
         -- (An unreachable device has no new work: nothing is sent to it; see migration 0011.)
         CROSS JOIN LATERAL (SELECT CASE WHEN c.sync_state = 'failed' THEN c.sync_failed_at
                                    WHEN c.sync_state = 'unreachable' AND c.status = 'active'
                                      THEN 'infinity'::timestamptz
                                    ELSE '-infinity'::timestamptz END AS since) f
         WHERE c.id > $1 AND (
           ((c.status = 'removing' OR c.delivered_key_version < c.key_version)
             AND c.updated_at > f.since)
           OR (c.c2_key_version IS NOT NULL AND c.c2_key_version < (SELECT max(version) FROM c2_keys)
             AND (SELECT max(created_at) FROM c2_keys) > f.since)
           OR EXISTS (SELECT 1 FROM device_commands d WHERE d.client_id = c.id
                      AND d.created_at > f.since)
           OR EXISTS (SELECT 1 FROM device_topics t WHERE t.client_id = c.id
                      AND (t.desired_version = 0 OR t.delivered_version < t.desired_version)
                      AND t.updated_at > f.since)
           OR EXISTS (SELECT 1 FROM device_pubkeys p WHERE p.target_client_id = c.id
                      AND (p.desired_version = 0 OR p.delivered_version < p.desired_version)
                      AND p.updated_at > f.since))
         ORDER BY c.id LIMIT $2`,
        [afterId, limit],
      )
    ).map((r) => str(r, 'id'));
  }
}
