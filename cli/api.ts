/**
 * The CLI's view of the C2 API: the request and response shapes of every RPC it calls, and the
 * {@link C2Api} interface the commands talk to. `grpc-client.ts` implements it over gRPC; unit
 * tests implement it with a fake. Field names are the proto names exactly (`keepCase`), int64
 * fields arrive as decimal strings, bytes as `Uint8Array`, enums as their names.
 */

/** A reference `pb.Client`: only a name. */
export interface ClientRef {
  readonly name: string;
}

/** An empty request or response message. */
export type Empty = Record<string, never>;

/** The request and response types of one RPC. */
export interface Rpc<Req, Res> {
  readonly request: Req;
  readonly response: Res;
}

/** An int64 count as proto-loader returns it (`longs: String`). */
export interface CountResponse {
  readonly count: string;
}

/** Paging fields of the reference list RPCs. */
export interface Page {
  readonly offset: number;
  readonly count: number;
}

/** A reference event (`pb.Event`). */
export interface ReferenceEvent {
  readonly type: string;
  readonly source: string;
  readonly target: string;
  readonly timestamp: { readonly seconds: string; readonly nanos: number } | null;
}

/** Every RPC of the reference service `pb.C2` the CLI calls (all unary ones). */
export interface ReferenceRpcs {
  NewClient: Rpc<{ client: ClientRef; key: Uint8Array }, Empty>;
  RemoveClient: Rpc<{ client: ClientRef }, Empty>;
  ResetClient: Rpc<{ client: ClientRef }, Empty>;
  NewClientKey: Rpc<{ client: ClientRef }, Empty>;
  NewTopic: Rpc<{ topic: string }, Empty>;
  RemoveTopic: Rpc<{ topic: string }, Empty>;
  NewTopicClient: Rpc<{ client: ClientRef; topic: string }, Empty>;
  RemoveTopicClient: Rpc<{ client: ClientRef; topic: string }, Empty>;
  CountTopicsForClient: Rpc<{ client: ClientRef }, CountResponse>;
  GetTopicsForClient: Rpc<{ client: ClientRef } & Page, { topics: string[] }>;
  CountClientsForTopic: Rpc<{ topic: string }, CountResponse>;
  GetClientsForTopic: Rpc<{ topic: string } & Page, { clients: ClientRef[] }>;
  CountClients: Rpc<Empty, CountResponse>;
  GetClients: Rpc<Page, { clients: ClientRef[] }>;
  CountTopics: Rpc<Empty, CountResponse>;
  GetTopics: Rpc<Page, { topics: string[] }>;
  LinkClient: Rpc<{ sourceClient: ClientRef; targetClient: ClientRef }, Empty>;
  UnlinkClient: Rpc<{ sourceClient: ClientRef; targetClient: ClientRef }, Empty>;
  CountLinkedClients: Rpc<{ client: ClientRef }, CountResponse>;
  GetLinkedClients: Rpc<{ client: ClientRef } & Page, { clients: ClientRef[] }>;
  SendClientPubKey: Rpc<{ sourceClient: ClientRef; targetClient: ClientRef }, Empty>;
  RemoveClientPubKey: Rpc<{ sourceClient: ClientRef; targetClient: ClientRef }, Empty>;
  ResetClientPubKeys: Rpc<{ targetClient: ClientRef }, Empty>;
  NewC2Key: Rpc<{ force: boolean }, Empty>;
  ProtectMessage: Rpc<
    { topic: string; binaryData: Uint8Array },
    { topic: string; protectedBinaryData: Uint8Array }
  >;
  UnprotectMessage: Rpc<
    { topic: string; protectedBinaryData: Uint8Array },
    { topic: string; binaryData: Uint8Array }
  >;
  HealthCheck: Rpc<Empty, { Code: string; Status: string }>;
  GetCryptoMode: Rpc<Empty, { CryptoMode: string }>;
}

/** `e4c2.v1.KeyVersion`. */
export interface KeyVersion {
  readonly version: number;
  readonly fingerprint: string;
  readonly created_at: string;
}

/** `e4c2.v1.Delivery`: the state of a client's control-message queue. */
export interface Delivery {
  readonly state: string;
  readonly attempts: number;
  readonly error: string;
  readonly failed_at: string;
  readonly last_delivery_at: string;
  /**
   * The last command the device rejected in a delivery receipt (`''`: none, or a server of an
   * earlier release): when, the reason, the command type.
   */
  readonly last_rejected_at: string;
  readonly last_rejection_reason: string;
  readonly last_rejected_command: string;
}

/** `e4c2.v1.ClientTopic`: one topic of a client and its key delivery. */
export interface ClientTopic {
  readonly topic: string;
  readonly topic_hash: string;
  readonly desired_version: number;
  readonly delivered_version: number;
  /** Confirmed by the device with a receipt (0 or absent: none; stock devices send none). */
  readonly confirmed_version?: number;
  readonly state: string;
  /** Key version traffic monitoring saw the device use (public-key mode; 0 or absent: never). */
  readonly observed_version?: number;
  readonly observed_at?: string;
  /** Seen under an older version than the delivered one, well after the delivery. */
  readonly observed_behind?: boolean;
}

/** `e4c2.v1.ClientDetails`. */
export interface ClientDetails {
  readonly name: string;
  readonly id: string;
  readonly control_topic: string;
  readonly key_version: number;
  readonly delivered_key_version: number;
  readonly c2_key_version: number;
  readonly keys: readonly KeyVersion[];
  readonly delivery: Delivery | null;
  readonly topics: readonly ClientTopic[];
}

/** `e4c2.v1.Rollout`: where the members of a topic stand for one key version. */
export interface Rollout {
  readonly members: number;
  /** Accepted by the broker (QoS 1). */
  readonly delivered: number;
  /** Acknowledged by the devices themselves (delivery receipts; absent from older servers). */
  readonly confirmed?: number;
  readonly pending: number;
  readonly failed: number;
}

/** `e4c2.v1.TopicDetails`. */
export interface TopicDetails {
  readonly name: string;
  readonly topic_hash: string;
  readonly key_version: number;
  readonly keys: readonly KeyVersion[];
  readonly rollout: Rollout | null;
}

/** `e4c2.v1.RotationStatus`. */
export interface RotationStatus {
  readonly topic: string;
  readonly key_version: number;
  readonly rollout: Rollout | null;
}

/** `e4c2.v1.EventRecord`: one entry of the resumable event log. */
export interface EventRecord {
  readonly seq: string;
  readonly at: string;
  readonly type: string;
  readonly client: string;
  readonly topic: string;
  readonly key_version: number;
  readonly details: Readonly<Record<string, string>>;
}

/** Every unary RPC of our service `e4c2.v1.C2Admin` the CLI calls. */
export interface AdminRpcs {
  GetClient: Rpc<{ name: string }, ClientDetails>;
  /** Clients in name order after `cursor` ("" for the first page); `next_cursor` "" at the end. */
  ListClients: Rpc<
    { cursor: string; limit: number },
    {
      clients: readonly { name: string; key_version: number; delivery_state: string }[];
      next_cursor: string;
    }
  >;
  RemoveClient: Rpc<
    { name: string; reset: boolean; request_id: string },
    { reset_pending: boolean }
  >;
  RotateClientKey: Rpc<
    { name: string; public_key: Uint8Array; request_id: string },
    { key_version: number; fingerprint: string }
  >;
  ResyncClient: Rpc<{ name: string; request_id: string }, { keys_resent?: string[] }>;
  GetTopic: Rpc<{ name: string }, TopicDetails>;
  RotateTopicKey: Rpc<
    { name: string; request_id: string },
    { key_version: number; fingerprint: string; members: number }
  >;
  /** The reference NewTopic, saying whether it created the topic or rotated its key. */
  NewTopic: Rpc<
    { name: string; request_id: string },
    { created: boolean; key_version: number; fingerprint: string; members: number }
  >;
  GetRotationStatus: Rpc<{ name: string; version: number }, RotationStatus>;
  GetC2PublicKey: Rpc<Empty, { version: number; public_key: string; fingerprint: string }>;
  ReconcileAfterRestore: Rpc<ReconcileAfterRestoreRequest, ReconcileAfterRestoreResponse>;
  GetRestoreStatus: Rpc<Record<string, never>, { pending: boolean; restored_position: string }>;
  /** A page of the event log; after the newest position, `next_after_seq` is the newest. */
  ListEvents: Rpc<
    { after_seq: string; limit: number },
    { events: readonly EventRecord[]; next_after_seq: string }
  >;
  GetTopicTraffic: Rpc<{ name: string }, TopicTraffic>;
}

/** `e4c2.v1.TopicTraffic`: what traffic monitoring saw on a topic. */
export interface TopicTraffic {
  readonly topic: string;
  readonly key_version: number;
  readonly counts: ReadonlyArray<{
    readonly key_version: number;
    readonly class: string;
    readonly messages: string | number;
    readonly first_at: string;
    readonly last_at: string;
  }>;
  readonly devices: ReadonlyArray<{
    readonly client: string;
    readonly key_version: number;
    readonly last_at: string;
  }>;
}

/** `e4c2.v1.IssuedSubject`: what the off-site event archive saw of one topic or client. */
export interface IssuedSubject {
  readonly name: string;
  readonly version: number;
  readonly removed: boolean;
  /** Clients: the position of the name's last creation in the archive ("" when not seen). */
  readonly created_seq?: string;
}

/** `e4c2.v1.MembershipChange`: a membership's last state in the archive, after the backup. */
export interface MembershipChange {
  readonly client: string;
  readonly topic: string;
  readonly attached: boolean;
}

/** `e4c2.v1.ReconcileAfterRestoreRequest`. */
export interface ReconcileAfterRestoreRequest {
  readonly version_margin: number;
  readonly event_seq_margin: string;
  readonly topics: readonly IssuedSubject[];
  readonly clients: readonly IssuedSubject[];
  readonly c2_key_version: number;
  readonly archive_last_seq: string;
  readonly memberships: readonly MembershipChange[];
  /** Run on a database not marked as restored (refused otherwise). */
  readonly force: boolean;
}

/** `e4c2.v1.ReconcileAfterRestoreResponse`. */
export interface ReconcileAfterRestoreResponse {
  readonly topics_rotated: number;
  readonly unreachable_clients: readonly string[];
  readonly missing_clients: readonly string[];
  readonly missing_topics: readonly string[];
  readonly resurrected_clients: readonly string[];
  readonly resurrected_topics: readonly string[];
  readonly c2_key_rotated_after_backup: boolean;
  readonly event_seq_floor: string;
  /** Absent from servers that predate it (as the membership lists). */
  readonly archive_ends_before_backup?: boolean;
  readonly missing_memberships?: readonly MembershipChange[];
  readonly resurrected_memberships?: readonly MembershipChange[];
}

/** An automation rule message (`e4c2.v1.AutomationRule`), proto field names. */
export type AutomationMessage = Readonly<Record<string, unknown>>;

/**
 * Every unary RPC of `e4c2.v1.C2Automation` the CLI calls (docs/automation.md). Requests and
 * responses are the proto messages (field names as in the .proto).
 */
export interface AutomationRpcs {
  ListRules: Rpc<Empty, { rules: AutomationMessage[] }>;
  GetRule: Rpc<{ rule_id: string }, AutomationMessage>;
  CreateRule: Rpc<{ rule: AutomationMessage }, AutomationMessage>;
  UpdateRule: Rpc<
    { rule_id: string; expected_version: number; rule: AutomationMessage },
    AutomationMessage
  >;
  DeleteRule: Rpc<{ rule_id: string; expected_version: number }, { rule_id: string }>;
  AddTrigger: Rpc<
    { rule_id: string; expected_version: number; trigger: AutomationMessage },
    AutomationMessage
  >;
  RemoveTrigger: Rpc<
    { rule_id: string; expected_version: number; trigger_id: string },
    AutomationMessage
  >;
  AddTarget: Rpc<
    { rule_id: string; expected_version: number; target: AutomationMessage },
    AutomationMessage
  >;
  RemoveTarget: Rpc<
    { rule_id: string; expected_version: number; target_id: string },
    AutomationMessage
  >;
  GetAutomationStatus: Rpc<Empty, AutomationMessage>;
  PauseAutomation: Rpc<{ reason: string }, AutomationMessage>;
  ResumeAutomation: Rpc<Empty, AutomationMessage>;
  ListFirings: Rpc<{ rule_id: string; limit: number }, { firings: AutomationMessage[] }>;
}

/** Per-call options. */
export interface CallOptions {
  /**
   * Idempotency key of a mutating reference call, sent as `idempotency-key` metadata (our
   * server returns the first outcome for a repeated key; v1 calls carry `request_id` instead).
   */
  readonly idempotencyKey?: string;
}

/** A server stream the caller can iterate and cancel. */
export interface EventStream<T> extends AsyncIterable<T> {
  /** Resolves once the connection to the server is up; never rejects (errors surface in iteration). */
  readonly connected: Promise<void>;
  /** Ends the stream; a pending iteration then rejects with a CANCELLED status. */
  cancel(): void;
}

/** The result of the standard `grpc.health.v1.Health/Check`. */
export interface HealthStatus {
  /** `SERVING`, `NOT_SERVING`, `UNKNOWN` or `SERVICE_UNKNOWN`. */
  readonly status: string;
}

/**
 * Everything the commands need from the server. Failures reject with the gRPC status error
 * (`{ code, details }`); `run.ts` maps those to exit codes.
 */
export interface C2Api {
  /** One unary call on the reference service `pb.C2`. */
  reference<M extends keyof ReferenceRpcs>(
    method: M,
    request: ReferenceRpcs[M]['request'],
    options?: CallOptions,
  ): Promise<ReferenceRpcs[M]['response']>;
  /** One unary call on our service `e4c2.v1.C2Admin`. */
  admin<M extends keyof AdminRpcs>(
    method: M,
    request: AdminRpcs[M]['request'],
  ): Promise<AdminRpcs[M]['response']>;
  /** One unary call on `e4c2.v1.C2Automation` (absent in API fakes that do not serve it). */
  automation?<M extends keyof AutomationRpcs>(
    method: M,
    request: AutomationRpcs[M]['request'],
  ): Promise<AutomationRpcs[M]['response']>;
  /** `pb.C2/SubscribeToEventStream`: live events only. */
  referenceEvents(): EventStream<ReferenceEvent>;
  /** `e4c2.v1.C2Admin/StreamEvents`: the event log after `afterSeq` ("0": from the start), then live. */
  adminEvents(afterSeq: string): EventStream<EventRecord>;
  /** `grpc.health.v1.Health/Check` for the whole server (service ""). */
  health(): Promise<HealthStatus>;
  /** Releases the connection; idempotent. */
  close(): void;
}
