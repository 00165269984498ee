/**
 * The storage port of the C2 domain. The domain speaks only these interfaces; PostgreSQL is the
 * shipped implementation (`pg-*.ts`), and another SQL store can be added behind them.
 *
 * Every method of {@link C2Tx} runs inside one transaction; nothing is visible to other nodes
 * before the transaction commits. Rows never carry plaintext keys: `sealed` columns are opaque
 * envelopes of the key vault.
 */

/** A client (device) row. */
export interface ClientRow {
  readonly id: string;
  readonly name: string;
  readonly e4Id: Uint8Array;
  readonly status: 'active' | 'removing';
  readonly keyVersion: number;
  readonly deliveredKeyVersion: number;
  readonly c2KeyVersion: number | null;
  readonly deliveryEpoch: number;
  /**
   * `unreachable`: the device holds an identity key the C2 does not have (restore-reconcile):
   * nothing is sent to it until it is re-provisioned, seen, or resynced.
   */
  readonly syncState: 'idle' | 'pending' | 'failed' | 'unreachable';
  readonly syncAttempts: number;
  readonly syncError: string | null;
  readonly syncFailedAt: Date | null;
  readonly lastDeliveryAt: Date | null;
  /** The last command the device rejected in a delivery receipt (opt-in devices); null if none. */
  readonly lastRejection: DeviceRejection | null;
  readonly createdAt: Date;
  readonly updatedAt: Date;
}

/** A command a device rejected, as its delivery receipt said. */
export interface DeviceRejection {
  readonly at: Date;
  /** The receipt's reason name (`InvalidKey`, `NotAuthentic`, ..., `Other`). */
  readonly reason: string;
  /** The rejected command's type (`SetTopicKey`, ...), `unknown` when the receipt named none. */
  readonly command: string;
}

/** One version of a client identity key. */
export interface ClientKeyRow {
  readonly clientId: string;
  readonly version: number;
  readonly sealed: Uint8Array;
  /** Ed25519 public key in public-key mode, null in symmetric mode. */
  readonly publicKey: Uint8Array | null;
  readonly fingerprint: string;
  readonly createdAt: Date;
}

/** A topic row. */
export interface TopicRow {
  readonly id: string;
  readonly name: string;
  readonly topicHash: Uint8Array;
  readonly keyVersion: number;
  readonly createdAt: Date;
  readonly updatedAt: Date;
}

/** One version of a topic key. */
export interface TopicKeyRow {
  readonly topicId: string;
  readonly version: number;
  readonly sealed: Uint8Array;
  readonly fingerprint: string;
  readonly createdAt: Date;
}

/** Per-(device, topic) delivery state. desiredVersion 0 = revoke (RemoveTopic pending). */
export interface DeviceTopicRow {
  readonly clientId: string;
  readonly topicHash: Uint8Array;
  readonly topicId: string | null;
  readonly topicName: string | null;
  readonly desiredVersion: number;
  readonly deliveredVersion: number;
  /** Highest version the device confirmed with a receipt (0: none; stock devices send none). */
  readonly confirmedVersion: number;
  /** When its desired or delivered version last changed. */
  readonly updatedAt: Date;
}

/** Per-(device, peer) public-key state. desiredVersion 0 = remove. */
export interface DevicePubKeyRow {
  readonly targetClientId: string;
  readonly sourceE4Id: Uint8Array;
  readonly sourceClientId: string | null;
  readonly desiredVersion: number;
  readonly deliveredVersion: number;
}

/** A one-shot command waiting for delivery. */
export interface DeviceCommandRow {
  readonly id: string;
  readonly clientId: string;
  /**
   * `Resend*`: the newest identity key, or C2 key, sent again under the one before (a resync's);
   * they go before the others, which are protected with the keys the record names.
   */
  readonly kind: 'ResetTopics' | 'ResetPubKeys' | 'ResendIdKey' | 'ResendC2Key';
}

/** A C2 key pair version (public-key mode). */
export interface C2KeyRow {
  readonly version: number;
  readonly publicKey: Uint8Array;
  readonly sealedPrivate: Uint8Array;
  readonly fingerprint: string;
  readonly createdAt: Date;
}

/** An audit record; written in the transaction of the change it records. */
export interface AuditEntry {
  readonly actor: string;
  readonly operation: string;
  readonly subjectKind:
    'client' | 'topic' | 'c2key' | 'membership' | 'link' | 'pubkey' | 'deployment';
  readonly subject: string;
  readonly keyVersion?: number;
  readonly keyFingerprint?: string;
  readonly requestId?: string;
  readonly details?: Record<string, string | number | boolean>;
}

/** A durable event (the event stream). */
export interface EventEntry {
  readonly type: string;
  readonly clientName?: string;
  readonly topic?: string;
  readonly keyVersion?: number;
  readonly details?: Record<string, string | number | boolean>;
}

/** A stored event with its sequence number. */
export interface StoredEvent extends EventEntry {
  readonly seq: string;
  readonly at: Date;
}

/** A stored idempotent response. */
export interface StoredRequest {
  readonly operation: string;
  readonly requestHash: string;
  readonly response: unknown;
}

/** Page of a list ordered by name. */
export interface PageQuery {
  readonly offset: number;
  readonly limit: number;
}

/** Delivery counts of one topic key version across its members. */
export interface RotationCounts {
  readonly members: number;
  /** Accepted by the broker (QoS 1 PUBACK). */
  readonly delivered: number;
  /** Confirmed by the device itself (delivery receipts, devices that opt in). */
  readonly confirmed: number;
  readonly pending: number;
  readonly failed: number;
}
