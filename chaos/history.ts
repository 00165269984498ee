/**
 * What a chaos run records, and what the checker reads: every API call as an operation (invoke,
 * then ok, fail or unknown, as Knossos and Jepsen do), every command a simulated device applied
 * or refused, every fault injected, and the final state read back from PostgreSQL, Redis, the
 * devices and the nodes' output once the faults healed. Fingerprints only, never keys.
 */
import type { AutomationObservation } from './automation-check.ts';

/** Kinds of API call the driver makes. */
export type OperationKind =
  | 'create-topic'
  | 'rotate-topic'
  | 'read-topic'
  | 'join'
  | 'leave'
  | 'rotate-client'
  | 'resync-client'
  /** NewC2Key (public-key mode). */
  | 'rotate-c2'
  /**
   * NewClient with a new key for a known client: the device was re-flashed and holds nothing, so
   * the C2 sends it everything again, as a resync does. Made outside the driver, which never sees
   * a key (the upgrade practice's fleet: ops/upgrade/roll-fleet.ts), and recorded with its calls.
   */
  | 'reflash-client';

/** How a call ended: `unknown` means it may or may not have taken effect (timeout, reset). */
export type Outcome = 'ok' | 'fail' | 'unknown';

/** One API call. */
export interface Operation {
  /** Unique in the run, in invocation order. */
  readonly id: number;
  /** The driver's logical client that made it (one call in flight per client). */
  readonly process: number;
  readonly kind: OperationKind;
  readonly topic?: string;
  readonly client?: string;
  /** Idempotency key; a retry of an unknown call reuses it. */
  readonly requestId?: string;
  /** The API node called directly (`http://host:port`); absent: through the load balancer. */
  readonly via?: string;
  /** Milliseconds since the run started. */
  readonly invokedAt: number;
  readonly completedAt: number;
  readonly outcome: Outcome;
  /** What an ok call answered: a key version and its fingerprint (rotations, reads). */
  readonly version?: number;
  readonly fingerprint?: string;
  /** Why it failed (status and code), for the report. */
  readonly error?: string;
}

/** One command a device applied, or refused. */
export interface DeviceApply {
  readonly device: string;
  readonly type:
    'SetTopicKey' | 'RemoveTopic' | 'SetIDKey' | 'SetC2Key' | 'ResetTopics' | 'other' | 'rejected';
  /** Hex topic hash (SetTopicKey, RemoveTopic). */
  readonly topicHash?: string;
  /** Fingerprint of the key it carried (SetTopicKey, SetIDKey). */
  readonly fingerprint?: string;
  /** The E4 error code of a refused command. */
  readonly error?: string;
  /** Milliseconds since the run started, on the observer's clock. */
  readonly at: number;
}

/** One injected fault. */
export interface FaultRecord {
  readonly id: number;
  readonly kind: string;
  readonly target: string;
  readonly startedAt: number;
  /** When it was healed; `undefined` if it never needed healing (a crash with restart). */
  readonly endedAt: number;
  readonly detail?: string;
  /** Not applied: its target was still held by an earlier fault (its heal running). */
  readonly skipped?: true;
}

/** A key version as PostgreSQL holds it. */
export interface StoredVersion {
  readonly version: number;
  readonly fingerprint: string;
}

/** A topic in the final state. */
export interface FinalTopic {
  readonly name: string;
  /** Hex topic hash, as devices report it. */
  readonly hash: string;
  /** `topics.key_version`. */
  readonly currentVersion: number;
  /** Every row of `topic_keys`, in version order. */
  readonly versions: readonly StoredVersion[];
}

/** A membership in the final state. */
export interface FinalMembership {
  readonly topicHash: string;
  readonly desired: number;
  readonly delivered: number;
}

/** A `delivery.failed` event: when, and what it said (never key material). */
export interface FailureReport {
  /** `events.at`, ms since the epoch on PostgreSQL's clock. */
  readonly at: number;
  /** The command whose attempts reached the cap (`details.command`). */
  readonly command?: string;
  /** The rollout it was of (`details.target`, `topic <hash> v4`), when the node said. */
  readonly target?: string;
}

/** A client (device record) in the final state. */
export interface FinalClient {
  readonly name: string;
  readonly status: string;
  readonly keyVersion: number;
  /** `clients.delivered_key_version`. */
  readonly deliveredKeyVersion: number;
  readonly keyVersions: readonly StoredVersion[];
  readonly syncState: string;
  /** `clients.c2_key_version`: the C2 key the device holds (public-key mode), else null. */
  readonly c2KeyVersion: number | null;
  readonly memberships: readonly FinalMembership[];
  /**
   * Some `delivery.failed` event names it, whichever failure it reported. I6 reads it only in an
   * older history without {@link failedAt} and {@link failureReports}.
   */
  readonly failureReported: boolean;
  /**
   * When its current delivery failure began (`clients.sync_failed_at`, ms since the epoch on
   * PostgreSQL's clock), null when it is not failed. Absent in older histories.
   */
  readonly failedAt?: number | null;
  /**
   * Every `delivery.failed` event naming it, on the clock of {@link failedAt}: the event of a
   * failure is written in the transaction that marks it (both `now()`), so the report of the
   * current failure is one at or after `failedAt`, never an earlier failure's (I6). Absent in
   * older histories.
   */
  readonly failureReports?: readonly FailureReport[];
}

/** What a simulated device holds at the end. */
export interface FinalDevice {
  readonly name: string;
  /** Hex topic hash to the fingerprint of the key held. */
  readonly topicKeys: Readonly<Record<string, string>>;
  readonly identityFingerprint: string;
  /** Fingerprint of the C2 public key it holds (public-key mode). */
  readonly c2Fingerprint?: string;
  /** Excluded from convergence: it was removed, or is still offline by design. */
  readonly active: boolean;
}

/** A rotation as the audit log recorded it. */
export interface AuditedRotation {
  readonly requestId: string;
  readonly operation: string;
  readonly subject: string;
  readonly version: number;
}

/**
 * A place where key material was found (I8), or one that could not be read (`unchecked`): a place
 * never read is not shown free of keys, so it fails I8 as well rather than passing unseen.
 */
export interface SecretLeak {
  readonly where: string;
  readonly what: string;
  readonly unchecked?: boolean;
}

/** Everything read back after the faults healed and the quiet period passed. */
export interface FinalState {
  readonly topics: readonly FinalTopic[];
  /** Every row of `c2_keys` (public-key mode; empty in symmetric mode). */
  readonly c2Keys: readonly StoredVersion[];
  readonly clients: readonly FinalClient[];
  readonly devices: readonly FinalDevice[];
  readonly audit: readonly AuditedRotation[];
  /** Outbox rows still there, with their age in ms. */
  readonly outbox: ReadonlyArray<{ readonly id: string; readonly ageMs: number }>;
  readonly leaks: readonly SecretLeak[];
  /** Nodes that exited on their own during the run (the launcher's notices). */
  readonly crashes: readonly string[];
  /** Milliseconds from the heal to convergence; `undefined` if it never converged. */
  readonly convergedAfterMs: number | undefined;
}

/** What a scenario promises about availability (I9). */
export interface ErrorBudget {
  /** Largest share of calls that may fail or end unknown while faults are active. */
  readonly duringFaults: number;
  /** Calls invoked this long after every fault healed must all succeed. */
  readonly settleMs: number;
}

/** One run, as the checker sees it. */
export interface RunRecord {
  readonly scenario: string;
  readonly seed: number;
  /** E4C2_DELIVERY_MAX_ATTEMPTS of the nodes (I7). */
  readonly deliveryCap: number;
  /** How many copies of one PUBLISH the network may deliver (2 when the MQTT proxy duplicates). */
  readonly networkCopies: number;
  readonly budget: ErrorBudget;
  /** When the last fault healed (ms since start). */
  readonly healedAt: number;
  /** The convergence deadline after the heal (I1, I6). */
  readonly convergenceDeadlineMs: number;
  readonly operations: readonly Operation[];
  readonly applies: readonly DeviceApply[];
  readonly faults: readonly FaultRecord[];
  readonly final: FinalState;
  /**
   * The cluster's API nodes (I9 does not count calls made while a fault holds every one of them).
   * Absent in older histories: such a run's calls are then all counted, never fewer.
   */
  readonly apiNodes?: readonly string[];
  /** The automation rule's firings (`automation-leader-kill`), checked as A1; absent elsewhere. */
  readonly automation?: AutomationObservation;
}
