/**
 * The typed, validated configuration of a C2 node, nested by area. `loadConfig` builds it;
 * everything else only reads it. Durations are milliseconds (`Ms` suffix), sizes are bytes.
 */
import type { Secret } from './secret.ts';

/** `E4C2_CRYPTO_MODE`: the E4 mode of the whole fleet. */
export type CryptoMode = 'symkey' | 'pubkey';

/** `E4C2_LOG_LEVEL`: pino's levels. */
export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace';

/** A TCP listen address. `port` 0 asks the OS for a free port (the node prints the real one). */
export interface ListenAddress {
  /** Hostname, IPv4 address, or IPv6 address without brackets. */
  readonly host: string;
  /** 0..65535. */
  readonly port: number;
}

/** Settings shared by both database kinds. */
interface DatabaseCommon {
  /** Connections per node, 1..200. */
  readonly poolMax: number;
  /**
   * PostgreSQL ends a node's session left idle inside a transaction this long (ms; 0: the
   * server's own setting), so a node that vanished mid-transaction cannot hold row locks for
   * hours (see `PoolOptions.idleInTransactionTimeoutMs`).
   */
  readonly idleInTransactionTimeoutMs: number;
  /**
   * Bound on every statement of a node (ms; 0: none): PostgreSQL cancels a longer one, and the
   * node gives up on a connection that does not answer at all (see
   * `PoolOptions.queryTimeoutMs`). Migrations are not bounded.
   */
  readonly queryTimeoutMs: number;
  /** Postgres schema holding the C2 tables (a plain identifier). */
  readonly schema: string;
}

/**
 * Where the truth lives (DESIGN R1). Without `DATABASE_URL` the node runs an embedded PostgreSQL
 * whose files live in `dataDir`.
 */
export type DatabaseConfig =
  | (DatabaseCommon & {
      readonly kind: 'embedded';
      readonly dataDir: string;
      /** Wanted port on 127.0.0.1 (0: any free port); a taken one falls back to a free one. */
      readonly port: number;
    })
  | (DatabaseCommon & { readonly kind: 'external'; readonly url: Secret });

/** Settings shared by both broker kinds. */
interface MqttCommon {
  /** Username the C2 connects with (and, embedded, the one the broker accepts). */
  readonly username?: string;
  /** Password for {@link MqttCommon.username}. */
  readonly password?: Secret;
  /** Client id prefix; every process appends its own unique suffix. */
  readonly clientIdPrefix: string;
}

/** The MQTT broker: an external one at `url`, or an embedded one listening on `listen`. */
export type MqttConfig =
  | (MqttCommon & {
      readonly kind: 'embedded';
      readonly listen: ListenAddress;
      /**
       * The operator set the address: a taken port is then an error, never a silent move to
       * another port (devices set up for this one would reach whatever holds it).
       */
      readonly listenExplicit: boolean;
    })
  | (MqttCommon & { readonly kind: 'external'; readonly url: string });

/**
 * Cross-node coordination (Redlock, BullMQ, leader election). Without `REDIS_URL` the node runs
 * single-node in-process equivalents behind the same interfaces (DESIGN §8).
 */
export type RedisConfig =
  | { readonly kind: 'in-process' }
  | {
      readonly kind: 'external';
      /** The Redis of the BullMQ queues (run it with `maxmemory-policy noeviction`). */
      readonly url: Secret;
      /**
       * The independent Redis instances of the Redlock quorum (1, 3 or 5); `E4C2_REDLOCK_URLS`,
       * comma-separated, defaulting to `REDIS_URL` alone.
       */
      readonly redlockUrls: readonly Secret[];
      /**
       * A non-blocking connection (queue producer, Redlock, automation lease) is pinged this
       * often and reset when a ping goes unanswered this long (`RedisWatchdog`);
       * `E4C2_REDIS_SILENCE_MS`, 500..600000, default 5000.
       */
      readonly silenceMs: number;
    };

/** E4 crypto settings. */
export interface CryptoConfig {
  readonly mode: CryptoMode;
  /**
   * Public-key mode only: whether the C2 may generate device private keys. Off by default, so a
   * device's private key never exists outside the device unless the operator opts in.
   */
  readonly serverKeygen: boolean;
}

/** Where the node listens. */
export interface ApiConfig {
  readonly grpc: ListenAddress;
  readonly http: ListenAddress;
  /** Prometheus metrics, on their own port. */
  readonly metrics: ListenAddress;
  /**
   * The API credentials file (bearer token digests and client certificates with their roles).
   * Without it the API does not authenticate callers: fit for loopback-only development.
   */
  readonly credentialsFile?: string;
  /** PEM CA bundle for client certificates: mutual TLS is then required on both listeners. */
  readonly clientCaFile?: string;
  /**
   * Without a credentials file, HTTP API requests must name an IP address, `localhost`, or one of
   * these host names (lower case), against DNS rebinding. Unused with a credentials file.
   */
  readonly allowedHosts: readonly string[];
}

/**
 * TLS for the API listeners: operator-provided files, a self-signed certificate generated under
 * the data dir (embedded database, no files given), or disabled (external database and no files:
 * TLS is expected to be terminated in front of the nodes).
 */
export type TlsConfig =
  | { readonly kind: 'files'; readonly certPath: string; readonly keyPath: string }
  | { readonly kind: 'self-signed'; readonly dir: string }
  | { readonly kind: 'disabled' };

/**
 * The key-encryption key of the key vault (DESIGN R8): a 32-byte key file, a passphrase (put
 * through a salted KDF, the salt stored in the database), or a key file the embedded mode
 * generates on first start.
 */
export type KekConfig =
  | { readonly kind: 'file'; readonly path: string }
  | { readonly kind: 'passphrase'; readonly passphrase: Secret }
  | { readonly kind: 'generated-file'; readonly path: string }
  | {
      /** An AES-256 key inside an HSM, used over PKCS#11 (it never leaves the token). */
      readonly kind: 'pkcs11';
      readonly modulePath: string;
      readonly tokenLabel: string;
      readonly keyLabel: string;
      readonly pin: Secret;
    }
  | {
      /** A key of HashiCorp Vault's transit engine (it never leaves Vault). */
      readonly kind: 'vault-transit';
      readonly addr: string;
      readonly keyName: string;
      readonly mount: string;
      readonly auth:
        | { readonly kind: 'token'; readonly token: Secret }
        | { readonly kind: 'approle'; readonly roleId: string; readonly secretId: Secret };
      readonly namespace?: string;
      /** PEM file of the CA of Vault's certificate. */
      readonly caFile?: string;
    };

/** Delivery of control messages (DESIGN R5, R6). */
export interface DeliveryConfig {
  /** Transmissions per command before it is marked failed, 1..100. */
  readonly maxAttempts: number;
  /** First retry delay; doubles per attempt (with jitter) up to `backoffMaxMs`. */
  readonly backoffInitialMs: number;
  /** Ceiling of the retry delay. */
  readonly backoffMaxMs: number;
  /**
   * Total time a command may spend in retries. Every attempt is protected again with a fresh
   * timestamp, so devices' 10-minute freshness window limits one attempt, not this deadline.
   */
  readonly deadlineMs: number;
  /** How long one publish waits for the broker's PUBACK. */
  readonly pubackTimeoutMs: number;
  /**
   * How long a device claim lasts without renewal (renewed every third of it while a batch
   * works): how long the devices of a node that died wait before another node takes them, and
   * how long a paused node may stall before its claims lapse.
   */
  readonly claimTtlMs: number;
  /** Device batches (engine) or queue jobs (worker) a process runs at once, 1..64. */
  readonly batches: number;
  /** Devices per batch, and outbox rows per claim, 1..10,000. */
  readonly batchSize: number;
  /**
   * Publishes of one batch awaiting their PUBACK at once (at most one per device), 1..4,096.
   * A process keeps up to `batches` x `publishWindow` commands in flight on its one connection:
   * keep that within what the broker queues for a client.
   */
  readonly publishWindow: number;
}

/** Input limits of the API (DESIGN §10). */
export interface LimitsConfig {
  /** Largest page a list call returns. */
  readonly maxPageSize: number;
  /** Largest request or MQTT payload accepted, in bytes. */
  readonly maxMessageBytes: number;
}

/**
 * The OTLP encodings the node sends: OTLP/HTTP with JSON bodies (the default) or protobuf bodies.
 * OTLP over gRPC is not offered.
 */
export type OtlpProtocol = 'http/json' | 'http/protobuf';

/** OpenTelemetry tracing (metrics are always served on `api.metrics`). */
export interface TelemetryConfig {
  /** `otlp` sends spans over OTLP/HTTP to `otlpTracesUrl`; `none` records nothing. */
  readonly tracesExporter: 'none' | 'otlp';
  /**
   * Where spans are POSTed: `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` as given, else
   * `OTEL_EXPORTER_OTLP_ENDPOINT` with `v1/traces` appended to its path (the OpenTelemetry rules).
   */
  readonly otlpTracesUrl: string;
  /**
   * `OTEL_EXPORTER_OTLP_TRACES_PROTOCOL`, else `OTEL_EXPORTER_OTLP_PROTOCOL`, else `http/json`;
   * `grpc` and anything else refused.
   */
  readonly otlpProtocol: OtlpProtocol;
  /**
   * `service.name` of the spans when set; unset, the one of `OTEL_RESOURCE_ATTRIBUTES`, else one
   * after the node's role (telemetry's `defaultServiceName`).
   */
  readonly serviceName: string | undefined;
  /** Share of new traces recorded, 0..1 (a trace continued from a parent follows the parent). */
  readonly traceSampleRatio: number;
}

/** Logging. */
export interface LogConfig {
  readonly level: LogLevel;
}

/**
 * What a process does: `all` is a single node (API, outbox relay and delivery in one process);
 * in a cluster, `api` nodes serve requests and relay the outbox, `worker` nodes deliver.
 */
export type NodeRole = 'all' | 'api' | 'worker';

/** This process. */
export interface NodeConfig {
  /** `E4C2_ROLE`; `api` and `worker` need `REDIS_URL` (the shared queue). */
  readonly role: NodeRole;
  /** Name of this node in logs, metrics and leases. */
  readonly id: string;
  /** Grace period of an orderly shutdown before it is forced. */
  readonly shutdownTimeoutMs: number;
}

/**
 * Broken variants of the C2 that the chaos suite switches on to prove its checker catches real
 * bugs (docs/chaos.md). TEST ONLY: `no-idempotency` ignores request ids, so a retried rotation
 * rotates again (breaks I4).
 */
export const TEST_FAULT_NAMES = ['no-idempotency'] as const;

/** One of {@link TEST_FAULT_NAMES}. */
export type TestFault = (typeof TEST_FAULT_NAMES)[number];

/** `E4C2_TEST_FAULTS`, accepted only with `E4C2_ALLOW_TEST_FAULTS=true`. Never in production. */
export interface TestingConfig {
  readonly faults: readonly TestFault[];
}

/** The automation engine (docs/automation.md). */
export interface AutomationConfig {
  /** Whether this node runs the engine (roles `all` and `worker`); the API serves rules anyway. */
  readonly enabled: boolean;
  /** Leader lease time to live: a dead leader is replaced within about 4/3 of it plus a tick. */
  readonly leaseTtlMs: number;
  /** Pause between scheduler ticks of the leader. */
  readonly tickMs: number;
}

/**
 * Traffic monitoring (worker and `all` roles): subscribe to every topic and classify what devices
 * publish (docs/monitoring.md). Off by default: it receives all the fleet's data traffic.
 */
export interface MonitoringConfig {
  readonly enabled: boolean;
  /** Messages waiting for classification beyond which new ones are dropped (counted). */
  readonly maxQueued: number;
  /** Payload bytes waiting for classification beyond which new messages are dropped (counted). */
  readonly maxQueuedBytes: number;
  /**
   * How long after a membership last changed a device seen under an older key still counts as
   * in flight rather than as having lost its command (GetClient's `observedBehind`, the
   * `resync-lagging` action). Read wherever GetClient is served, so on API nodes too.
   */
  readonly lagGraceSeconds: number;
}

/** The whole configuration. Deep-frozen. */
export interface Config {
  /** Path of the JSON config file the values came from, when one was used. */
  readonly configFile?: string;
  /** Everything the embedded mode persists lives below this directory. */
  readonly dataDir: string;
  readonly database: DatabaseConfig;
  readonly mqtt: MqttConfig;
  readonly redis: RedisConfig;
  readonly crypto: CryptoConfig;
  readonly api: ApiConfig;
  readonly tls: TlsConfig;
  readonly kek: KekConfig;
  readonly delivery: DeliveryConfig;
  /** Always set by `loadConfig`; optional so hand-built test configs need not spell it out. */
  readonly automation?: AutomationConfig;
  /** Always set by `loadConfig`; optional so hand-built test configs need not spell it out. */
  readonly monitoring?: MonitoringConfig;
  readonly limits: LimitsConfig;
  readonly log: LogConfig;
  readonly telemetry: TelemetryConfig;
  readonly node: NodeConfig;
  /** Test-only broken variants; absent unless set (and allowed). */
  readonly testing?: TestingConfig;
}
