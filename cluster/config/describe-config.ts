/**
 * A printable view of the effective configuration, for `npm start` and diagnostics, under the
 * names an operator sets: each setting's key in the config file (its environment variable is in
 * the table of cluster/config/README.md). The `Config` object's own field names differ
 * (`crypto.serverKeygen` for `crypto.pkServerKeygen`, `api.grpc` for `api.grpcAddr`...), and a
 * start-up line that printed them named settings no file or variable has.
 */
import type { Config, KekConfig } from './config-types.ts';
import { Secret } from './secret.ts';
import { SETTINGS, type SettingSpec } from './settings.ts';

const REDACTED = '[redacted]';

/**
 * Shows where a service URL points without what authenticates to it: scheme, host, port and path
 * stay; user info and the query string (libpq accepts `?password=`) become `[redacted]`.
 */
function redactUrl(secret: Secret): string {
  let url: URL;
  try {
    url = new URL(secret.reveal());
  } catch {
    return REDACTED;
  }
  const credentials = url.username !== '' || url.password !== '' ? `${REDACTED}@` : '';
  const query = url.search === '' ? '' : `?${REDACTED}`;
  return `${url.protocol}//${credentials}${url.host}${url.pathname}${query}`;
}

const isListenAddress = (v: object): v is { host: string; port: number } => {
  const keys = Object.keys(v);
  return keys.length === 2 && keys.includes('host') && keys.includes('port');
};

/** Secrets whose non-secret part (where the service is) is worth printing. */
const URL_KEYS = new Set<string>([
  SETTINGS.databaseUrl.file,
  SETTINGS.redisUrl.file,
  SETTINGS.redlockUrls.file,
]);

/** A value as printed: secrets redacted, listen addresses as `host:port`. */
function shown(value: unknown, fileKey: string): unknown {
  if (value instanceof Secret) return URL_KEYS.has(fileKey) ? redactUrl(value) : REDACTED;
  if (Array.isArray(value)) return value.map((item: unknown) => shown(item, fileKey));
  if (typeof value === 'object' && value !== null && isListenAddress(value)) {
    return value.host.includes(':')
      ? `[${value.host}]:${value.port}`
      : `${value.host}:${value.port}`;
  }
  return value;
}

type Kek<K extends KekConfig['kind']> = Extract<KekConfig, { kind: K }>;
const kekOf = <K extends KekConfig['kind']>(c: Config, ...kinds: K[]): Kek<K> | undefined =>
  (kinds as string[]).includes(c.kek.kind) ? (c.kek as Kek<K>) : undefined;
const vaultAuth = (c: Config) => kekOf(c, 'vault-transit')?.auth;

/**
 * Where each setting's effective value is in a `Config`; undefined when it does not apply (an
 * embedded broker has no `mqtt.url`) or is unset. A mapped type: a setting added to SETTINGS
 * without its line here does not compile.
 */
const VALUE_OF: { readonly [K in keyof typeof SETTINGS]: (c: Config) => unknown } = {
  dataDir: (c) => c.dataDir,
  databaseUrl: (c) => (c.database.kind === 'external' ? c.database.url : undefined),
  databasePoolMax: (c) => c.database.poolMax,
  databaseIdleTxTimeoutMs: (c) => c.database.idleInTransactionTimeoutMs,
  databaseQueryTimeoutMs: (c) => c.database.queryTimeoutMs,
  databaseSchema: (c) => c.database.schema,
  embeddedPostgresPort: (c) => (c.database.kind === 'embedded' ? c.database.port : undefined),
  mqttUrl: (c) => (c.mqtt.kind === 'external' ? c.mqtt.url : undefined),
  mqttListenAddr: (c) => (c.mqtt.kind === 'embedded' ? c.mqtt.listen : undefined),
  mqttUsername: (c) => c.mqtt.username,
  mqttPassword: (c) => c.mqtt.password,
  mqttClientIdPrefix: (c) => c.mqtt.clientIdPrefix,
  redisUrl: (c) => (c.redis.kind === 'external' ? c.redis.url : undefined),
  redlockUrls: (c) => (c.redis.kind === 'external' ? c.redis.redlockUrls : undefined),
  redisSilenceMs: (c) => (c.redis.kind === 'external' ? c.redis.silenceMs : undefined),
  cryptoMode: (c) => c.crypto.mode,
  cryptoServerKeygen: (c) => c.crypto.serverKeygen,
  grpcAddr: (c) => c.api.grpc,
  httpAddr: (c) => c.api.http,
  metricsAddr: (c) => c.api.metrics,
  apiCredentialsFile: (c) => c.api.credentialsFile,
  httpAllowedHosts: (c) => c.api.allowedHosts,
  tlsClientCa: (c) => c.api.clientCaFile,
  tlsCert: (c) => (c.tls.kind === 'files' ? c.tls.certPath : undefined),
  tlsKey: (c) => (c.tls.kind === 'files' ? c.tls.keyPath : undefined),
  // A generated key file is where the KEK is; the start-up line's `sources.kek` says generated.
  kekFile: (c) => kekOf(c, 'file', 'generated-file')?.path,
  kekPassphrase: (c) => kekOf(c, 'passphrase')?.passphrase,
  kekPkcs11Module: (c) => kekOf(c, 'pkcs11')?.modulePath,
  kekPkcs11Token: (c) => kekOf(c, 'pkcs11')?.tokenLabel,
  kekPkcs11KeyLabel: (c) => kekOf(c, 'pkcs11')?.keyLabel,
  kekPkcs11Pin: (c) => kekOf(c, 'pkcs11')?.pin,
  kekVaultAddr: (c) => kekOf(c, 'vault-transit')?.addr,
  kekVaultKey: (c) => kekOf(c, 'vault-transit')?.keyName,
  kekVaultMount: (c) => kekOf(c, 'vault-transit')?.mount,
  kekVaultToken: (c) => {
    const auth = vaultAuth(c);
    return auth?.kind === 'token' ? auth.token : undefined;
  },
  kekVaultRoleId: (c) => {
    const auth = vaultAuth(c);
    return auth?.kind === 'approle' ? auth.roleId : undefined;
  },
  kekVaultSecretId: (c) => {
    const auth = vaultAuth(c);
    return auth?.kind === 'approle' ? auth.secretId : undefined;
  },
  kekVaultNamespace: (c) => kekOf(c, 'vault-transit')?.namespace,
  kekVaultCaFile: (c) => kekOf(c, 'vault-transit')?.caFile,
  deliveryMaxAttempts: (c) => c.delivery.maxAttempts,
  deliveryBackoffInitialMs: (c) => c.delivery.backoffInitialMs,
  deliveryBackoffMaxMs: (c) => c.delivery.backoffMaxMs,
  deliveryDeadlineMs: (c) => c.delivery.deadlineMs,
  pubackTimeoutMs: (c) => c.delivery.pubackTimeoutMs,
  deliveryClaimTtlMs: (c) => c.delivery.claimTtlMs,
  deliveryBatches: (c) => c.delivery.batches,
  deliveryBatchSize: (c) => c.delivery.batchSize,
  deliveryPublishWindow: (c) => c.delivery.publishWindow,
  automationEnabled: (c) => c.automation?.enabled,
  automationLeaseTtlMs: (c) => c.automation?.leaseTtlMs,
  automationTickMs: (c) => c.automation?.tickMs,
  monitoringEnabled: (c) => c.monitoring?.enabled,
  monitoringMaxQueued: (c) => c.monitoring?.maxQueued,
  monitoringMaxQueuedBytes: (c) => c.monitoring?.maxQueuedBytes,
  monitoringLagGraceS: (c) => c.monitoring?.lagGraceSeconds,
  maxPageSize: (c) => c.limits.maxPageSize,
  maxMessageBytes: (c) => c.limits.maxMessageBytes,
  logLevel: (c) => c.log.level,
  tracesExporter: (c) => c.telemetry.tracesExporter,
  // The Config keeps the URL spans go to, whichever of the two endpoints gave it: that is what
  // the traces endpoint means (the base endpoint is only a way to derive it).
  otlpEndpoint: () => undefined,
  otlpTracesEndpoint: (c) => c.telemetry.otlpTracesUrl,
  otlpProtocol: () => undefined,
  otlpTracesProtocol: (c) => c.telemetry.otlpProtocol,
  serviceName: (c) => c.telemetry.serviceName,
  traceSampleRatio: (c) => c.telemetry.traceSampleRatio,
  nodeId: (c) => c.node.id,
  role: (c) => c.node.role,
  shutdownTimeoutMs: (c) => c.node.shutdownTimeoutMs,
  testFaults: (c) => c.testing?.faults.join(','),
  allowTestFaults: (c) => (c.testing === undefined ? undefined : true),
};

/** Sets `value` at the dotted `key` of `target`, creating the objects on the way. */
function setAt(target: Record<string, unknown>, key: string, value: unknown): void {
  const parts = key.split('.');
  let node = target;
  for (const part of parts.slice(0, -1)) {
    node[part] ??= {};
    node = node[part] as Record<string, unknown>;
  }
  node[parts[parts.length - 1] as string] = value;
}

/**
 * A JSON-friendly copy of `config` for printing, shaped and named as the config file is
 * (`{"crypto": {"pkServerKeygen": false}, "api": {"grpcAddr": "127.0.0.1:5555"}, ...}`), with
 * effective values (defaults included; settings that do not apply left out): every secret is
 * `'[redacted]'` (service URLs keep their scheme, host, port and path), listen addresses are
 * `host:port` strings.
 */
export function describeConfig(config: Config): Record<string, unknown> {
  const described: Record<string, unknown> = {};
  for (const [name, spec] of Object.entries(SETTINGS) as Array<
    [keyof typeof SETTINGS, SettingSpec]
  >) {
    const value = VALUE_OF[name](config);
    if (value !== undefined) setAt(described, spec.file, shown(value, spec.file));
  }
  return described;
}

/**
 * What the settings chose where they name no setting themselves: which database, broker, queue
 * Redis, certificate and key-encryption key the node uses (`embedded`, `in-process`,
 * `self-signed`, `generated-file`...), and the config file read, if any.
 */
export function describeSources(config: Config): Record<string, string> {
  return {
    ...(config.configFile === undefined ? {} : { configFile: config.configFile }),
    database: config.database.kind,
    mqtt: config.mqtt.kind,
    redis: config.redis.kind,
    tls: config.tls.kind,
    kek: config.kek.kind,
  };
}
