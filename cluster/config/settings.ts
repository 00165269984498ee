/**
 * The table of every setting: its environment variable, its key in the JSON config file, and
 * whether its value is secret. `loadConfig` reads through this table only, so the list of known
 * names (for typo detection) and the parsing can never drift apart.
 */

/** One setting's names. */
export interface SettingSpec {
  /** Environment variable; overrides the file. */
  readonly env: string;
  /** Dotted key in the JSON config file (`database.poolMax` is `{"database":{"poolMax":…}}`). */
  readonly file: string;
  /** Secret values are wrapped in `Secret` and never quoted in a problem message. */
  readonly secret?: true;
}

/** Every setting, in the order problems are reported. */
export const SETTINGS = {
  dataDir: { env: 'E4C2_DATA_DIR', file: 'dataDir' },

  databaseUrl: { env: 'DATABASE_URL', file: 'database.url', secret: true },
  databasePoolMax: { env: 'E4C2_DB_POOL_MAX', file: 'database.poolMax' },
  databaseIdleTxTimeoutMs: {
    env: 'E4C2_DB_IDLE_TX_TIMEOUT_MS',
    file: 'database.idleInTransactionTimeoutMs',
  },
  databaseQueryTimeoutMs: { env: 'E4C2_DB_QUERY_TIMEOUT_MS', file: 'database.queryTimeoutMs' },
  databaseSchema: { env: 'E4C2_DB_SCHEMA', file: 'database.schema' },
  embeddedPostgresPort: { env: 'E4C2_EMBEDDED_PG_PORT', file: 'database.embeddedPort' },

  mqttUrl: { env: 'MQTT_URL', file: 'mqtt.url' },
  mqttListenAddr: { env: 'E4C2_MQTT_LISTEN_ADDR', file: 'mqtt.listenAddr' },
  mqttUsername: { env: 'E4C2_MQTT_USERNAME', file: 'mqtt.username' },
  mqttPassword: { env: 'E4C2_MQTT_PASSWORD', file: 'mqtt.password', secret: true },
  mqttClientIdPrefix: { env: 'E4C2_MQTT_CLIENT_ID_PREFIX', file: 'mqtt.clientIdPrefix' },

  redisUrl: { env: 'REDIS_URL', file: 'redis.url', secret: true },
  redlockUrls: { env: 'E4C2_REDLOCK_URLS', file: 'redis.redlockUrls', secret: true },
  redisSilenceMs: { env: 'E4C2_REDIS_SILENCE_MS', file: 'redis.silenceMs' },

  cryptoMode: { env: 'E4C2_CRYPTO_MODE', file: 'crypto.mode' },
  cryptoServerKeygen: { env: 'E4C2_PK_SERVER_KEYGEN', file: 'crypto.pkServerKeygen' },

  grpcAddr: { env: 'E4C2_GRPC_ADDR', file: 'api.grpcAddr' },
  httpAddr: { env: 'E4C2_HTTP_ADDR', file: 'api.httpAddr' },
  metricsAddr: { env: 'E4C2_METRICS_ADDR', file: 'api.metricsAddr' },
  apiCredentialsFile: { env: 'E4C2_API_CREDENTIALS_FILE', file: 'api.credentialsFile' },
  httpAllowedHosts: { env: 'E4C2_HTTP_ALLOWED_HOSTS', file: 'api.allowedHosts' },
  tlsClientCa: { env: 'E4C2_TLS_CLIENT_CA', file: 'tls.clientCaFile' },

  tlsCert: { env: 'E4C2_TLS_CERT', file: 'tls.certFile' },
  tlsKey: { env: 'E4C2_TLS_KEY', file: 'tls.keyFile' },

  kekFile: { env: 'E4C2_KEK_FILE', file: 'kek.file' },
  kekPassphrase: { env: 'E4C2_KEK_PASSPHRASE', file: 'kek.passphrase', secret: true },
  kekPkcs11Module: { env: 'E4C2_KEK_PKCS11_MODULE', file: 'kek.pkcs11.module' },
  kekPkcs11Token: { env: 'E4C2_KEK_PKCS11_TOKEN', file: 'kek.pkcs11.token' },
  kekPkcs11KeyLabel: { env: 'E4C2_KEK_PKCS11_KEY_LABEL', file: 'kek.pkcs11.keyLabel' },
  kekPkcs11Pin: { env: 'E4C2_KEK_PKCS11_PIN', file: 'kek.pkcs11.pin', secret: true },
  kekVaultAddr: { env: 'E4C2_KEK_VAULT_ADDR', file: 'kek.vault.addr' },
  kekVaultKey: { env: 'E4C2_KEK_VAULT_KEY', file: 'kek.vault.key' },
  kekVaultMount: { env: 'E4C2_KEK_VAULT_MOUNT', file: 'kek.vault.mount' },
  kekVaultToken: { env: 'E4C2_KEK_VAULT_TOKEN', file: 'kek.vault.token', secret: true },
  kekVaultRoleId: { env: 'E4C2_KEK_VAULT_ROLE_ID', file: 'kek.vault.roleId' },
  kekVaultSecretId: { env: 'E4C2_KEK_VAULT_SECRET_ID', file: 'kek.vault.secretId', secret: true },
  kekVaultNamespace: { env: 'E4C2_KEK_VAULT_NAMESPACE', file: 'kek.vault.namespace' },
  kekVaultCaFile: { env: 'E4C2_KEK_VAULT_CA_FILE', file: 'kek.vault.caFile' },

  deliveryMaxAttempts: { env: 'E4C2_DELIVERY_MAX_ATTEMPTS', file: 'delivery.maxAttempts' },
  deliveryBackoffInitialMs: {
    env: 'E4C2_DELIVERY_BACKOFF_INITIAL_MS',
    file: 'delivery.backoffInitialMs',
  },
  deliveryBackoffMaxMs: { env: 'E4C2_DELIVERY_BACKOFF_MAX_MS', file: 'delivery.backoffMaxMs' },
  deliveryDeadlineMs: { env: 'E4C2_DELIVERY_DEADLINE_MS', file: 'delivery.deadlineMs' },
  pubackTimeoutMs: { env: 'E4C2_PUBACK_TIMEOUT_MS', file: 'delivery.pubackTimeoutMs' },
  deliveryClaimTtlMs: { env: 'E4C2_DELIVERY_CLAIM_TTL_MS', file: 'delivery.claimTtlMs' },
  deliveryBatches: { env: 'E4C2_DELIVERY_BATCHES', file: 'delivery.batches' },
  deliveryBatchSize: { env: 'E4C2_DELIVERY_BATCH_SIZE', file: 'delivery.batchSize' },
  deliveryPublishWindow: { env: 'E4C2_DELIVERY_PUBLISH_WINDOW', file: 'delivery.publishWindow' },

  automationEnabled: { env: 'E4C2_AUTOMATION_ENABLED', file: 'automation.enabled' },
  automationLeaseTtlMs: { env: 'E4C2_AUTOMATION_LEASE_TTL_MS', file: 'automation.leaseTtlMs' },
  automationTickMs: { env: 'E4C2_AUTOMATION_TICK_MS', file: 'automation.tickMs' },

  monitoringEnabled: { env: 'E4C2_MONITORING', file: 'monitoring.enabled' },
  monitoringMaxQueued: { env: 'E4C2_MONITORING_MAX_QUEUED', file: 'monitoring.maxQueued' },
  monitoringMaxQueuedBytes: {
    env: 'E4C2_MONITORING_MAX_QUEUED_BYTES',
    file: 'monitoring.maxQueuedBytes',
  },
  monitoringLagGraceS: { env: 'E4C2_MONITORING_LAG_GRACE_S', file: 'monitoring.lagGraceSeconds' },

  maxPageSize: { env: 'E4C2_MAX_PAGE_SIZE', file: 'limits.maxPageSize' },
  maxMessageBytes: { env: 'E4C2_MAX_MESSAGE_BYTES', file: 'limits.maxMessageBytes' },

  logLevel: { env: 'E4C2_LOG_LEVEL', file: 'log.level' },

  tracesExporter: { env: 'OTEL_TRACES_EXPORTER', file: 'telemetry.tracesExporter' },
  otlpEndpoint: { env: 'OTEL_EXPORTER_OTLP_ENDPOINT', file: 'telemetry.otlpEndpoint' },
  otlpTracesEndpoint: {
    env: 'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT',
    file: 'telemetry.otlpTracesEndpoint',
  },
  otlpProtocol: { env: 'OTEL_EXPORTER_OTLP_PROTOCOL', file: 'telemetry.otlpProtocol' },
  otlpTracesProtocol: {
    env: 'OTEL_EXPORTER_OTLP_TRACES_PROTOCOL',
    file: 'telemetry.otlpTracesProtocol',
  },
  serviceName: { env: 'OTEL_SERVICE_NAME', file: 'telemetry.serviceName' },
  traceSampleRatio: { env: 'E4C2_TRACE_SAMPLE_RATIO', file: 'telemetry.traceSampleRatio' },

  nodeId: { env: 'E4C2_NODE_ID', file: 'node.id' },
  role: { env: 'E4C2_ROLE', file: 'node.role' },
  shutdownTimeoutMs: { env: 'E4C2_SHUTDOWN_TIMEOUT_MS', file: 'node.shutdownTimeoutMs' },

  // Test only (the chaos suite): broken variants, refused unless explicitly allowed.
  testFaults: { env: 'E4C2_TEST_FAULTS', file: 'testing.faults' },
  allowTestFaults: { env: 'E4C2_ALLOW_TEST_FAULTS', file: 'testing.allowFaults' },
} as const satisfies Record<string, SettingSpec>;

/**
 * Names the file cannot set: it is read by the caller before `loadConfig` runs, so it is only
 * ever an environment variable.
 */
export const CONFIG_FILE_ENV = 'E4C2_CONFIG_FILE';

/** Prefix of our own environment variables; an unknown one is reported as a likely typo. */
export const ENV_PREFIX = 'E4C2_';

/**
 * Variables of the `e4c2` command-line client. The server ignores them, so one shell can both
 * point the CLI at a node and start a node.
 */
export const CLIENT_ENV_NAMES: readonly string[] = [
  'E4C2_ENDPOINT',
  'E4C2_CERT',
  'E4C2_TOKEN',
  'E4C2_CLIENT_CERT',
  'E4C2_CLIENT_KEY',
];

/** Every known `E4C2_*` variable (plus the unprefixed service URLs, for suggestions). */
export const KNOWN_ENV_NAMES: readonly string[] = [
  CONFIG_FILE_ENV,
  ...CLIENT_ENV_NAMES,
  ...Object.values(SETTINGS).map((s: SettingSpec) => s.env),
];

/** Every known leaf key of the config file. */
export const KNOWN_FILE_KEYS: readonly string[] = Object.values(SETTINGS).map(
  (s: SettingSpec) => s.file,
);
