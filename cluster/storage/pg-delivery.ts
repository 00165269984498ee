/**
 * Set-based statements of the delivery hot path: claiming devices, planning and recording
 * deliveries for whole batches, so a fan-out to 100,000 devices costs a few round trips per
 * batch instead of several per device.
 */
import { bigintArrayParam, byteaArrayParam, intArrayParam } from './pg-arrays.ts';
import type { Queryable } from './pool.ts';
import { buf, bytes, bytesOrNull, int, rows, str, strOrNull, type Row } from './pg-rows.ts';

/** What a batch plan needs to know of one device. */
export interface DeviceBatchRow {
  readonly clientId: string;
  /** The device's E4 id in lowercase hex (what its control topic is named after). */
  readonly e4IdHex: string;
  readonly status: 'active' | 'removing';
  readonly keyVersion: number;
  readonly deliveredKeyVersion: number;
  readonly c2KeyVersion: number | null;
  readonly deliveryEpoch: number;
  /** True when anything other than topic keys is pending (handled by the per-device path). */
  readonly otherWork: boolean;
  /** The identity key version `deliveredKeyVersion`, as stored (the key commands go under). */
  readonly identity: SealedVersion | null;
  /**
   * How many topic memberships are pending, the one in `topic` included (0 when `topic` is
   * null). A delivery of the only one leaves the device with nothing to send, as the plan saw it.
   */
  readonly pendingTopics: number;
  /**
   * Attempts already made in the device's current streak (a PUBACK timeout whose retry was
   * deferred while the broker link was down), 0 when none: the batched send is attempt
   * `priorAttempts + 1`, as the per-device path would number it.
   */
  readonly priorAttempts: number;
  /** The next pending topic membership, if any. */
  readonly topic: {
    readonly topicHash: Uint8Array;
    readonly topicId: string | null;
    readonly desiredVersion: number;
  } | null;
}

/** A sealed key version, as stored. */
export interface SealedVersion {
  readonly ownerId: string;
  readonly version: number;
  readonly sealed: Uint8Array;
  readonly publicKey: Uint8Array | null;
}

/** One delivery to record. `topicId` null and `version` 0 record a revocation. */
export interface TopicDelivery {
  readonly clientId: string;
  readonly topicHash: Uint8Array;
  readonly topicId: string | null;
  readonly version: number;
  readonly epoch: number;
  /** Hash of the protected command sent (a device's receipt names it). */
  readonly commandId?: Uint8Array;
  /**
   * The plan saw nothing else pending for the device: recording this delivery ends the sender's
   * claim (see {@link DeliveryRepository.recordAndRelease}).
   */
  readonly lastPending?: boolean;
}

/** Delivery hot-path repository (storage port); see {@link PgDelivery}. */
/** What a receipt's confirmation did ({@link DeliveryRepository.confirmCommand}). */
export type CommandConfirmation =
  | { readonly status: 'confirmed'; readonly topic?: string; readonly version?: number }
  | { readonly status: 'already' | 'unmatched' };

export interface DeliveryRepository {
  /**
   * Claims devices for sending (R5, cluster-wide): a device is claimed when unclaimed, when its
   * claim expired, or when `owner` holds it already. @returns the ids claimed
   */
  claim(clientIds: readonly string[], owner: string, ttlMs: number): Promise<string[]>;
  /** Ends `owner`'s claims on these devices. */
  release(clientIds: readonly string[], owner: string): Promise<void>;
  /**
   * Extends `owner`'s claims on these devices; never takes a device `owner` does not hold (a
   * renewal racing a release must not claim the device again).
   */
  renew(clientIds: readonly string[], owner: string, ttlMs: number): Promise<void>;
  /** What each device has pending (read in one snapshot), in no particular order. */
  planBatch(clientIds: readonly string[]): Promise<DeviceBatchRow[]>;
  topicKeys(pairs: ReadonlyArray<{ topicId: string; version: number }>): Promise<SealedVersion[]>;
  /**
   * Records deliveries monotonically (R7), skipping devices whose epoch moved, and in the same
   * statement ends `owner`'s claim on each device whose delivery was recorded and is marked
   * {@link TopicDelivery.lastPending}. One row version of `clients` per device for both. Work
   * committed after the plan's snapshot is not missed: its outbox row brings the device back, as
   * after any release (the engine retries a device that is still claimed a little later).
   * @returns how many were recorded, and the devices whose claim was ended
   */
  recordAndRelease(
    deliveries: readonly TopicDelivery[],
    owner: string,
  ): Promise<{ recorded: number; released: string[] }>;
  /**
   * A device confirmed the command `commandId` (receipt): its membership's confirmed version
   * moves forward to that command's version.
   * @returns `confirmed` (with the topic and version confirmed) when it moved, `already` when
   *   the command was confirmed before (a replayed receipt), `unmatched` when no membership's last
   *   command is `commandId` (yet)
   */
  confirmCommand(clientId: string, commandId: Uint8Array): Promise<CommandConfirmation>;
  /**
   * The device was seen (a receipt, a message): remembered, and a failed delivery becomes
   * retryable. @returns whether the device's delivery had failed
   */
  markSeen(clientId: string): Promise<boolean>;
  /**
   * The device rejected a command (an authentic receipt): remembered as its last rejection,
   * which GetClient shows (the event stream has every one).
   */
  markRejected(clientId: string, reason: string, command: string): Promise<void>;
  /**
   * Devices whose command could not be handed to the broker (id to error): `pending` with it, their
   * attempts unchanged (nothing was sent). One statement, writing only rows that change, so that
   * the sweeps of a long broker outage do not rewrite the fleet's rows each time.
   */
  markDeferred(deferred: ReadonlyMap<string, string>): Promise<void>;
  /** The client with this E4 id, for receipts. */
  clientByE4Id(e4Id: Uint8Array): Promise<{ id: string; name: string } | undefined>;
  /**
   * Whether the database was restored from a backup and not reconciled yet (`restore.sh` marks
   * it, `ReconcileAfterRestore` clears the mark): until then nothing may be delivered, since the
   * restored desired state can be older than what devices hold.
   */
  restorePending(): Promise<boolean>;
  /**
   * The topic and key version of the client's membership whose last command is `commandId`
   * (a topic key or revocation recorded as delivered), for a receipt that rejected it; undefined
   * for any other command.
   */
  commandSubject(
    clientId: string,
    commandId: Uint8Array,
  ): Promise<{ topic: string; version: number } | undefined>;
}

/**
 * Records deliveries and ends claims, parameters $1-$7 of {@link deliveryParams} and the owner
 * ($8). `current` keeps the deliveries planned in the device's current epoch only; `delivered`
 * records them monotonically (R7) and says whether the membership is now up to date (a rotation
 * committed since the plan leaves it pending); `revoked` deletes revoked memberships. A device
 * whose delivery was recorded is touched once: its last delivery time, and the end of `owner`'s
 * claim when the plan saw nothing else pending for it and its membership is up to date.
 *
 * `clients` and the update of `device_topics` are also filtered by `= ANY($1)`, which is
 * redundant with the joins: without it the planner, misjudging the size of the unnested arrays,
 * often hashes the whole table (every client, every membership) for a batch of a few hundred
 * devices.
 */
/**
 * The setting `ops/backup/restore.sh` writes into a database it restored, and reconciliation
 * deletes (its value: when the restore ran).
 */
export const RESTORE_PENDING_SETTING = 'restore_pending';

const RECORD_AND_RELEASE = `WITH d AS (
    SELECT * FROM unnest($1::bigint[], $2::bytea[], $3::bigint[], $4::int[], $5::bigint[],
      $6::bytea[], $7::bool[])
      AS d(client_id, topic_hash, topic_id, version, epoch, command_id, last_pending)
  ), current AS (
    -- Locked, so that the epoch is compared after any reset (resync, re-flash) that committed
    -- while this statement waited: read from the statement's snapshot, a reset's old epoch
    -- matched and the record then wrote over the reset (R4). UPDATE clients below takes the same
    -- lock anyway, in the order a reset takes its locks (clients, then device_topics).
    SELECT d.* FROM d JOIN clients c ON c.id = d.client_id AND c.delivery_epoch = d.epoch
    WHERE c.id = ANY($1::bigint[])
    FOR NO KEY UPDATE OF c
  ), delivered AS (
    UPDATE device_topics dt SET delivered_version = cur.version, updated_at = now(),
      last_command_id = cur.command_id, last_command_version = cur.version
    FROM current cur
    WHERE cur.version > 0 AND dt.client_id = cur.client_id AND dt.topic_hash = cur.topic_hash
      AND dt.topic_id = cur.topic_id AND dt.delivered_version < cur.version
      AND dt.client_id = ANY($1::bigint[])
    RETURNING dt.client_id, cur.last_pending AND dt.desired_version = cur.version AS release
  ), revoked AS (
    -- Driven by the revocations in current (none in a rotation's fan-out): with an = ANY($1)
    -- filter here the planner probed every device's memberships to find none.
    DELETE FROM device_topics dt USING current cur
    WHERE cur.version = 0 AND dt.client_id = cur.client_id AND dt.topic_hash = cur.topic_hash
      AND dt.desired_version = 0
    RETURNING dt.client_id, cur.last_pending AS release
  ), done AS (
    SELECT client_id, bool_and(release) AS release
    FROM (SELECT * FROM delivered UNION ALL SELECT * FROM revoked) x GROUP BY client_id
  ), touched AS (
    -- A delivery ends a failure streak: the device is idle once nothing is pending, and a failed
    -- one that got newer work and took it is failed no longer (its row is written here anyway).
    UPDATE clients c SET last_delivery_at = now(),
      sync_state = CASE WHEN done.release THEN 'idle'
        WHEN c.sync_state = 'failed' THEN 'pending' ELSE c.sync_state END,
      sync_attempts = 0, sync_error = NULL, sync_failed_at = NULL,
      inflight_owner = CASE WHEN c.inflight_owner = $8 AND done.release
        THEN NULL ELSE c.inflight_owner END,
      inflight_until = CASE WHEN c.inflight_owner = $8 AND done.release
        THEN NULL ELSE c.inflight_until END
    FROM done WHERE c.id = done.client_id AND c.id = ANY($1::bigint[])
    RETURNING c.id, c.inflight_owner IS NULL AS released
  )
  SELECT id, released FROM touched`;

/** The parameters of {@link RECORD_AND_RELEASE} but the owner, one array per column. */
function deliveryParams(deliveries: readonly TopicDelivery[]): unknown[] {
  const n = deliveries.length;
  const clientIds = new Array<string>(n);
  const hashes = new Array<Uint8Array>(n);
  const topicIds = new Array<string | null>(n);
  const versions = new Array<number>(n);
  const epochs = new Array<number>(n);
  const commandIds = new Array<Uint8Array | null>(n);
  const lastPending = new Array<boolean>(n);
  for (let i = 0; i < n; i++) {
    const d = deliveries[i] as TopicDelivery;
    clientIds[i] = d.clientId;
    hashes[i] = d.topicHash;
    topicIds[i] = d.topicId;
    versions[i] = d.version;
    epochs[i] = d.epoch;
    commandIds[i] = d.commandId ?? null;
    lastPending[i] = d.lastPending === true;
  }
  return [
    bigintArrayParam(clientIds),
    byteaArrayParam(hashes),
    // A revocation has no topic id: pg's own encoding is kept for this nullable array.
    topicIds,
    intArrayParam(versions),
    intArrayParam(epochs),
    byteaArrayParam(commandIds),
    `{${lastPending.map((b) => (b ? 't' : 'f')).join(',')}}`,
  ];
}

/**
 * What a plan reads of each device in `c` (`clients` rows): the device's own state, whether
 * anything but topic keys is pending, its identity key and its next pending topic membership
 * with the number pending. Read after the claim committed, never in the claim's statement (see
 * `syncBatch`).
 */
function planSelect(from: string): string {
  return `SELECT c.id, encode(c.e4_id, 'hex') AS e4_id_hex, c.status, c.key_version,
         c.delivered_key_version, c.c2_key_version, c.delivery_epoch,
         CASE WHEN c.sync_state = 'pending' THEN c.sync_attempts ELSE 0 END AS prior_attempts,
         (c.status <> 'active'
           OR c.delivered_key_version < c.key_version
           OR (c.c2_key_version IS NOT NULL AND c.c2_key_version < (SELECT max(version) FROM c2_keys))
           OR EXISTS (SELECT 1 FROM device_commands d WHERE d.client_id = c.id)
           OR EXISTS (SELECT 1 FROM device_pubkeys p WHERE p.target_client_id = c.id
                      AND (p.desired_version = 0 OR p.delivered_version < p.desired_version))
         ) AS other_work,
         encode(t.topic_hash, 'hex') AS topic_hash_hex, t.topic_id, t.desired_version, t.pending,
         k.sealed AS identity_sealed, k.public_key AS identity_public_key
       FROM ${from}
       -- OFFSET 0 keeps this lookup a primary-key probe per device: flattened into a join, it
       -- is often planned as a hash of every key in the table.
       LEFT JOIN LATERAL (
         SELECT k.sealed, k.public_key FROM client_keys k
         WHERE k.client_id = c.id AND k.version = c.delivered_key_version
         OFFSET 0
       ) k ON true
       -- The window counts the device's pending memberships before LIMIT keeps the first.
       LEFT JOIN LATERAL (
         SELECT dt.topic_hash, dt.topic_id, dt.desired_version, count(*) OVER () AS pending
         FROM device_topics dt
         WHERE dt.client_id = c.id
           AND (dt.desired_version = 0 OR dt.delivered_version < dt.desired_version)
         ORDER BY (dt.desired_version = 0) DESC, dt.topic_hash LIMIT 1
       ) t ON true`;
}

/** Plan rows ({@link planSelect}) as {@link DeviceBatchRow}s. */
function toBatchRows(found: readonly Row[]): DeviceBatchRow[] {
  // A fan-out's devices share their topic: one hash object per topic, not per device.
  const hashes = new Map<string, Uint8Array>();
  const hashOf = (hex: string): Uint8Array => {
    let hash = hashes.get(hex);
    if (hash === undefined) {
      hash = new Uint8Array(Buffer.from(hex, 'hex'));
      hashes.set(hex, hash);
    }
    return hash;
  };
  return found.map((r) => {
    const hashHex = strOrNull(r, 'topic_hash_hex');
    const hash = hashHex === null ? null : hashOf(hashHex);
    const sealed = bytesOrNull(r, 'identity_sealed');
    const clientId = str(r, 'id');
    const deliveredKeyVersion = int(r, 'delivered_key_version');
    return {
      clientId,
      e4IdHex: str(r, 'e4_id_hex'),
      status: str(r, 'status') as DeviceBatchRow['status'],
      keyVersion: int(r, 'key_version'),
      deliveredKeyVersion,
      c2KeyVersion: r['c2_key_version'] === null ? null : int(r, 'c2_key_version'),
      deliveryEpoch: int(r, 'delivery_epoch'),
      otherWork: r['other_work'] === true,
      identity:
        sealed === null
          ? null
          : {
              ownerId: clientId,
              version: deliveredKeyVersion,
              sealed,
              publicKey: bytesOrNull(r, 'identity_public_key'),
            },
      pendingTopics: hash === null ? 0 : int(r, 'pending'),
      priorAttempts: int(r, 'prior_attempts'),
      topic:
        hash === null
          ? null
          : {
              topicHash: hash,
              topicId: strOrNull(r, 'topic_id'),
              desiredVersion: int(r, 'desired_version'),
            },
    };
  });
}

/** PostgreSQL {@link DeliveryRepository}. */
export class PgDelivery implements DeliveryRepository {
  /** @param db - the pool: each statement is its own transaction */
  constructor(private readonly db: Queryable) {}

  async claim(clientIds: readonly string[], owner: string, ttlMs: number): Promise<string[]> {
    if (clientIds.length === 0) return [];
    return (
      await rows(
        this.db,
        `UPDATE clients SET inflight_owner = $2,
           inflight_until = now() + make_interval(secs => $3::double precision / 1000)
         WHERE id = ANY($1::bigint[])
           AND (inflight_until IS NULL OR inflight_until < now() OR inflight_owner = $2)
         RETURNING id`,
        [bigintArrayParam(clientIds), owner, ttlMs],
      )
    ).map((r) => str(r, 'id'));
  }

  async release(clientIds: readonly string[], owner: string): Promise<void> {
    if (clientIds.length === 0) return;
    await this.db.query(
      `UPDATE clients SET inflight_owner = NULL, inflight_until = NULL
       WHERE id = ANY($1::bigint[]) AND inflight_owner = $2`,
      [bigintArrayParam(clientIds), owner],
    );
  }

  async renew(clientIds: readonly string[], owner: string, ttlMs: number): Promise<void> {
    if (clientIds.length === 0) return;
    await this.db.query(
      `UPDATE clients SET inflight_until = now() + make_interval(secs => $3::double precision / 1000)
       WHERE id = ANY($1::bigint[]) AND inflight_owner = $2`,
      [bigintArrayParam(clientIds), owner, ttlMs],
    );
  }

  async planBatch(clientIds: readonly string[]): Promise<DeviceBatchRow[]> {
    if (clientIds.length === 0) return [];
    return toBatchRows(
      // An unreachable device would refuse every command the broker then acknowledges: it is
      // left out (a removal still goes ahead: its client row is deleted once done).
      await rows(
        this.db,
        `${planSelect('clients c')} WHERE c.id = ANY($1::bigint[])
           AND NOT (c.sync_state = 'unreachable' AND c.status = 'active')`,
        [bigintArrayParam(clientIds)],
      ),
    );
  }

  async topicKeys(
    pairs: ReadonlyArray<{ topicId: string; version: number }>,
  ): Promise<SealedVersion[]> {
    if (pairs.length === 0) return [];
    return (
      await rows(
        this.db,
        `SELECT k.topic_id, k.version, k.sealed FROM topic_keys k
         JOIN unnest($1::bigint[], $2::int[]) AS p(topic_id, version)
           ON k.topic_id = p.topic_id AND k.version = p.version`,
        [pairs.map((p) => p.topicId), pairs.map((p) => p.version)],
      )
    ).map((r) => ({
      ownerId: str(r, 'topic_id'),
      version: int(r, 'version'),
      sealed: bytes(r, 'sealed'),
      publicKey: null,
    }));
  }

  async recordAndRelease(
    deliveries: readonly TopicDelivery[],
    owner: string,
  ): Promise<{ recorded: number; released: string[] }> {
    if (deliveries.length === 0) return { recorded: 0, released: [] };
    const found = await rows(this.db, RECORD_AND_RELEASE, [...deliveryParams(deliveries), owner]);
    const released: string[] = [];
    for (const r of found) if (r['released'] === true) released.push(str(r, 'id'));
    return { recorded: found.length, released };
  }

  async confirmCommand(clientId: string, commandId: Uint8Array): Promise<CommandConfirmation> {
    // One statement: the memberships whose last command this is, and which of them moved (a
    // replayed receipt moves none, and must not be announced again).
    const found = await rows(
      this.db,
      `WITH matched AS (
         SELECT client_id, topic_hash FROM device_topics
          WHERE client_id = $1 AND last_command_id = $2 AND last_command_version IS NOT NULL),
       moved AS (
         UPDATE device_topics d SET confirmed_version = d.last_command_version
           FROM matched m
          WHERE d.client_id = m.client_id AND d.topic_hash = m.topic_hash
            -- Again here: a delivery of a newer command recorded meanwhile (which this waited
            -- for) must not be confirmed by this older command's receipt.
            AND d.last_command_id = $2 AND d.last_command_version IS NOT NULL
            AND d.confirmed_version < d.last_command_version
          RETURNING d.topic_id, d.last_command_version AS version)
       SELECT (SELECT count(*) FROM matched)::int AS matched, (SELECT count(*) FROM moved)::int AS moved,
              (SELECT t.name FROM moved JOIN topics t ON t.id = moved.topic_id LIMIT 1) AS topic,
              (SELECT version FROM moved LIMIT 1) AS version`,
      [clientId, buf(commandId)],
    );
    const row = found[0];
    if (row === undefined || Number(row['matched']) === 0) return { status: 'unmatched' };
    if (Number(row['moved']) === 0) return { status: 'already' };
    const topic = row['topic'];
    const version = row['version'];
    return {
      status: 'confirmed',
      ...(typeof topic === 'string' ? { topic } : {}),
      ...(typeof version === 'number' ? { version } : {}),
    };
  }

  async markDeferred(deferred: ReadonlyMap<string, string>): Promise<void> {
    if (deferred.size === 0) return;
    await this.db.query(
      `UPDATE clients c SET sync_state = 'pending', sync_error = d.error, sync_failed_at = NULL
         FROM unnest($1::bigint[], $2::text[]) AS d(id, error)
        WHERE c.id = d.id AND c.sync_state <> 'unreachable'
          AND (c.sync_state <> 'pending' OR c.sync_error IS DISTINCT FROM d.error)`,
      [bigintArrayParam([...deferred.keys()]), [...deferred.values()]],
    );
  }

  async markSeen(clientId: string): Promise<boolean> {
    const found = await rows(
      this.db,
      `WITH before AS (SELECT id, sync_state FROM clients WHERE id = $1 FOR UPDATE)
       UPDATE clients c SET last_seen_at = now(),
         sync_state = CASE WHEN c.sync_state IN ('failed', 'unreachable') THEN 'idle'
           ELSE c.sync_state END,
         sync_attempts = CASE WHEN c.sync_state IN ('failed', 'unreachable') THEN 0
           ELSE c.sync_attempts END,
         sync_error = CASE WHEN c.sync_state IN ('failed', 'unreachable') THEN NULL
           ELSE c.sync_error END,
         sync_failed_at = CASE WHEN c.sync_state IN ('failed', 'unreachable') THEN NULL
           ELSE c.sync_failed_at END
       FROM before WHERE c.id = before.id
       RETURNING before.sync_state AS was`,
      [clientId],
    );
    // An authentic receipt proves the device holds the key the C2 has: unreachable no more.
    const was = found[0]?.['was'];
    return was === 'failed' || was === 'unreachable';
  }

  async markRejected(clientId: string, reason: string, command: string): Promise<void> {
    await this.db.query(
      `UPDATE clients SET last_rejected_at = now(), last_rejection_reason = $2,
         last_rejected_command = $3
        WHERE id = $1`,
      [clientId, reason, command],
    );
  }

  async commandSubject(
    clientId: string,
    commandId: Uint8Array,
  ): Promise<{ topic: string; version: number } | undefined> {
    const found = await rows(
      this.db,
      `SELECT t.name, dt.last_command_version AS version FROM device_topics dt
         JOIN topics t ON t.id = dt.topic_id
        WHERE dt.client_id = $1 AND dt.last_command_id = $2 AND dt.last_command_version IS NOT NULL
        LIMIT 1`,
      [clientId, buf(commandId)],
    );
    const row = found[0];
    return row === undefined
      ? undefined
      : { topic: str(row, 'name'), version: int(row, 'version') };
  }

  async restorePending(): Promise<boolean> {
    const found = await rows(
      this.db,
      `SELECT EXISTS (SELECT 1 FROM c2_settings WHERE name = '${RESTORE_PENDING_SETTING}') AS pending`,
    );
    return found[0]?.['pending'] === true;
  }

  async clientByE4Id(e4Id: Uint8Array): Promise<{ id: string; name: string } | undefined> {
    const found = await rows(this.db, 'SELECT id, name FROM clients WHERE e4_id = $1', [buf(e4Id)]);
    const row = found[0];
    return row === undefined ? undefined : { id: str(row, 'id'), name: str(row, 'name') };
  }
}
