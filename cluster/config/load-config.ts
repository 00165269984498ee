/**
 * `loadConfig`: environment (+ optional JSON file text) → validated, frozen {@link Config}.
 */
import { join } from 'node:path';
import { ConfigError } from './config-error.ts';
import { parseConfigFile } from './config-file.ts';
import type {
  ApiConfig,
  AutomationConfig,
  Config,
  CryptoConfig,
  CryptoMode,
  DatabaseConfig,
  DeliveryConfig,
  KekConfig,
  LimitsConfig,
  ListenAddress,
  LogConfig,
  LogLevel,
  MonitoringConfig,
  TelemetryConfig,
  NodeRole,
  MqttConfig,
  OtlpProtocol,
  NodeConfig,
  RedisConfig,
  TestFault,
  TestingConfig,
  TlsConfig,
} from './config-types.ts';
import { TEST_FAULT_NAMES } from './config-types.ts';
import { deepFreeze } from './deep-freeze.ts';
import {
  parseBoolean,
  parseEnum,
  parseInteger,
  parseHostNames,
  parseListenAddress,
  parsePattern,
  parseString,
  parseUrl,
  type Parser,
} from './parse-values.ts';
import { RESOURCE_ATTRIBUTES_ENV, resourceAttributesProblem } from './resource-attributes.ts';
import { Secret } from './secret.ts';
import { SettingReader } from './setting-reader.ts';
import { CONFIG_FILE_ENV, ENV_PREFIX, KNOWN_ENV_NAMES, SETTINGS as S } from './settings.ts';
import { didYouMean } from './suggest.ts';

const CRYPTO_MODES: readonly CryptoMode[] = ['symkey', 'pubkey'];
const LOG_LEVELS: readonly LogLevel[] = ['fatal', 'error', 'warn', 'info', 'debug', 'trace'];
const NODE_ROLES: readonly NodeRole[] = ['all', 'api', 'worker'];

/** Postgres identifiers are at most 63 bytes; no quoting needed for this shape. */
// Lower case only: PostgreSQL folds unquoted names to lower case, so a schema named with
// capitals was created under one name and looked for under another (the node failed at start,
// "no schema has been selected to create in"); pg_dump -n folds it too.
const parseSchema = parsePattern(
  /^[a-z_][a-z0-9_]{0,62}$/,
  'a plain identifier (lower-case letters, digits, _; 1 to 63 characters; not starting with a digit)',
);
const parseClientIdPrefix = parsePattern(
  /^[A-Za-z0-9_-]{1,32}$/,
  '1 to 32 letters, digits, _ or -',
);
const NODE_ID_PATTERN = /^[A-Za-z0-9._-]{1,64}$/;
const parseNodeId = parsePattern(NODE_ID_PATTERN, '1 to 64 letters, digits, ., _ or -');

/** Wraps a URL parser's success as a {@link Secret} holding the URL exactly as given. */
function secretUrl(schemes: readonly string[]): Parser<Secret> {
  const parse = parseUrl({ schemes, allowCredentials: true });
  return (raw) => {
    const parsed = parse(raw);
    return parsed.ok ? { ok: true, value: new Secret(raw as string) } : parsed;
  };
}

/** A passphrase of at least 16 UTF-8 bytes (the same floor as E4 passwords). */
const parsePassphrase: Parser<Secret> = (raw) =>
  typeof raw === 'string' && Buffer.byteLength(raw, 'utf8') >= 16
    ? { ok: true, value: new Secret(raw) }
    : { ok: false, reason: 'must be at least 16 bytes long' };

const parseSecret: Parser<Secret> = (raw) => {
  const parsed = parseString(raw);
  return parsed.ok ? { ok: true, value: new Secret(parsed.value) } : parsed;
};

/**
 * Default node id from `HOSTNAME` (set by shells and container runtimes), reduced to the node-id
 * alphabet. It is read from `env` rather than `os.hostname()` to keep `loadConfig` pure; two
 * processes on one host should set `E4C2_NODE_ID` explicitly.
 */
function defaultNodeId(env: Readonly<Record<string, string | undefined>>): string {
  const cleaned = (env.HOSTNAME ?? '').replace(/[^A-Za-z0-9._-]/g, '-').slice(0, 64);
  return cleaned === '' ? 'e4c2' : cleaned;
}

/**
 * Builds the configuration of a C2 node.
 *
 * Pure: it reads nothing but its arguments. Each setting comes from its environment variable,
 * else from the JSON config file, else from its default; the defaults run a working single-node
 * C2 on a fresh machine (embedded Postgres and broker, data under `./data`). An empty environment
 * variable counts as unset. Unknown `E4C2_*` variables and unknown file keys are errors, to catch
 * typos. The result is deep-frozen; secret settings are {@link Secret}s.
 *
 * @param env - usually `process.env`
 * @param fileText - text of the file named by `E4C2_CONFIG_FILE`, read by the caller
 * @throws {@link ConfigError} (code `C2_CONFIG`) listing every problem; never quoting a secret
 */
export function loadConfig(
  env: Readonly<Record<string, string | undefined>>,
  fileText?: string,
): Config {
  const configFile = env[CONFIG_FILE_ENV] === '' ? undefined : env[CONFIG_FILE_ENV];
  const early: string[] = [];
  let fileValues: ReadonlyMap<string, unknown> = new Map();
  if (fileText !== undefined) {
    const contents = parseConfigFile(fileText, configFile ?? 'config file');
    fileValues = contents.values;
    early.push(...contents.problems);
  } else if (configFile !== undefined) {
    early.push(`${CONFIG_FILE_ENV}: is set, but the file's text was not passed to loadConfig`);
  }
  for (const name of Object.keys(env).sort()) {
    if (name.startsWith(ENV_PREFIX) && !KNOWN_ENV_NAMES.includes(name)) {
      early.push(`${name}: unknown variable${didYouMean(name, KNOWN_ENV_NAMES)}`);
    }
  }

  const r = new SettingReader(env, fileValues, configFile ?? 'config file');
  const dataDir = r.withDefault(S.dataDir, parseString, './data');
  const database = readDatabase(r, dataDir);
  const mqtt = readMqtt(r);
  const redis = readRedis(r);
  const crypto = readCrypto(r);
  const api = readApi(r);
  checkDistinctAddresses(r, [
    ...listeners(api),
    ...(mqtt.kind === 'embedded' ? [{ spec: S.mqttListenAddr, address: mqtt.listen }] : []),
    // The embedded PostgreSQL listens on 127.0.0.1 only.
    ...(database.kind === 'embedded'
      ? [{ spec: S.embeddedPostgresPort, address: { host: '127.0.0.1', port: database.port } }]
      : []),
  ]);
  const tls = readTls(r, dataDir, database.kind);
  if (api.clientCaFile !== undefined && tls.kind === 'disabled')
    r.problem(
      `${r.name(S.tlsClientCa)} needs TLS: set ${r.name(S.tlsCert)} and ${r.name(S.tlsKey)} too`,
    );
  const kek = readKek(r, dataDir, database.kind);
  const delivery = readDelivery(r);
  const automation: AutomationConfig = {
    enabled: r.withDefault(S.automationEnabled, parseBoolean, true),
    leaseTtlMs: r.withDefault(S.automationLeaseTtlMs, parseInteger(1_000, 300_000), 10_000),
    tickMs: r.withDefault(S.automationTickMs, parseInteger(50, 60_000), 1_000),
  };
  const monitoring: MonitoringConfig = {
    enabled: r.withDefault(S.monitoringEnabled, parseBoolean, false),
    maxQueued: r.withDefault(S.monitoringMaxQueued, parseInteger(100, 10_000_000), 10_000),
    // 64 MiB by default: 10,000 messages of a few KiB, where the count cap alone allowed 10,000
    // of the broker's largest. The floor fits one message of the C2's own largest default.
    maxQueuedBytes: r.withDefault(
      S.monitoringMaxQueuedBytes,
      parseInteger(1_048_576, 17_179_869_184),
      67_108_864,
    ),
    // The default is the domain's OBSERVED_LAG_GRACE_SECONDS (a test keeps the two equal).
    lagGraceSeconds: r.withDefault(S.monitoringLagGraceS, parseInteger(10, 86_400), 60),
  };
  const limits = readLimits(r);
  const log: LogConfig = { level: r.withDefault(S.logLevel, parseEnum(LOG_LEVELS), 'info') };
  const telemetry = readTelemetry(r);
  // Read by the SDK, which would drop a malformed value silently (debug level): refused here.
  const attributes = env[RESOURCE_ATTRIBUTES_ENV];
  const attributesProblem =
    attributes === undefined ? undefined : resourceAttributesProblem(attributes);
  if (attributesProblem !== undefined)
    r.problem(
      `${RESOURCE_ATTRIBUTES_ENV}: ${attributesProblem}; the OpenTelemetry SDK would drop every attribute it sets`,
    );
  const testing = readTesting(r);
  const node: NodeConfig = {
    id: r.withDefault(S.nodeId, parseNodeId, defaultNodeId(env)),
    role: r.withDefault(S.role, parseEnum(NODE_ROLES), 'all'),
    shutdownTimeoutMs: r.withDefault(S.shutdownTimeoutMs, parseInteger(100, 600_000), 10_000),
  };

  if (node.role !== 'all' && database.kind === 'embedded' && !r.failed(S.databaseUrl)) {
    r.problem(
      `${r.name(S.role)}: the ${node.role} role needs ${r.name(S.databaseUrl)} (nodes of a cluster share one database)`,
    );
  }
  if (node.role === 'worker' && mqtt.kind === 'embedded' && !r.failed(S.mqttUrl)) {
    r.problem(`${r.name(S.role)}: the worker role needs ${r.name(S.mqttUrl)} (the fleet's broker)`);
  }
  if (node.role !== 'all' && redis.kind === 'in-process' && !r.failed(S.redisUrl)) {
    r.problem(
      `${r.name(S.role)}: the ${node.role} role needs ${r.name(S.redisUrl)} (the shared queue of a cluster)`,
    );
  }
  const problems = [...early, ...r.problems];
  if (problems.length > 0) throw new ConfigError(problems);
  const config: Config = {
    ...(fileText !== undefined && configFile !== undefined ? { configFile } : {}),
    dataDir,
    database,
    mqtt,
    redis,
    crypto,
    api,
    tls,
    kek,
    delivery,
    automation,
    monitoring,
    limits,
    log,
    telemetry,
    node,
    ...(testing === undefined ? {} : { testing }),
  };
  return deepFreeze(config);
}

/**
 * Test-only broken variants (the chaos suite's proof that its checker catches bugs): refused
 * unless `E4C2_ALLOW_TEST_FAULTS=true` says the caller knows. Never in production.
 */
function readTesting(r: SettingReader): TestingConfig | undefined {
  const raw = r.withDefault(S.testFaults, parseString, '');
  const allowed = r.withDefault(S.allowTestFaults, parseBoolean, false);
  const names = raw
    .split(',')
    .map((f) => f.trim())
    .filter((f) => f !== '');
  if (names.length === 0) return undefined;
  const known: readonly string[] = TEST_FAULT_NAMES;
  const faults = names.filter((f): f is TestFault => known.includes(f));
  for (const f of names)
    if (!known.includes(f))
      r.problem(`${r.name(S.testFaults)}: unknown test fault "${f}" (${known.join(', ')})`);
  if (!allowed)
    r.problem(
      `${r.name(S.testFaults)}: test-only broken variants need ${r.name(S.allowTestFaults)}=true; never in production`,
    );
  return { faults };
}

/**
 * Default bound on a node's statements: far above any statement a node runs (the fan-out of a
 * 100,000-device rotation inserts its rows in well under a second), and far below the many
 * minutes TCP takes to report a black-holed connection.
 */
export const DEFAULT_QUERY_TIMEOUT_MS = 30_000;

function readDatabase(r: SettingReader, dataDir: string): DatabaseConfig {
  const url = r.optional(S.databaseUrl, secretUrl(['postgres', 'postgresql']));
  const common = {
    poolMax: r.withDefault(S.databasePoolMax, parseInteger(1, 200), 10),
    idleInTransactionTimeoutMs: r.withDefault(
      S.databaseIdleTxTimeoutMs,
      parseInteger(0, 86_400_000),
      60_000,
    ),
    queryTimeoutMs: r.withDefault(
      S.databaseQueryTimeoutMs,
      parseInteger(0, 3_600_000),
      DEFAULT_QUERY_TIMEOUT_MS,
    ),
    schema: r.withDefault(S.databaseSchema, parseSchema, 'public'),
  };
  // 5433, not 5432: a developer machine often runs PostgreSQL on 5432 already.
  const port = r.withDefault(S.embeddedPostgresPort, parseInteger(0, 65_535), 5433);
  const embedded = url === undefined && !r.failed(S.databaseUrl);
  if (!embedded && r.isSet(S.embeddedPostgresPort)) {
    r.problem(
      `${r.name(S.embeddedPostgresPort)} applies only to the embedded PostgreSQL, but ${r.name(S.databaseUrl)} is set`,
    );
  }
  return embedded
    ? { kind: 'embedded', dataDir: join(dataDir, 'postgres'), port, ...common }
    : { kind: 'external', url: url ?? new Secret(''), ...common };
}

function readMqtt(r: SettingReader): MqttConfig {
  const url = r.optional(
    S.mqttUrl,
    parseUrl({ schemes: ['mqtt', 'mqtts', 'tcp', 'tls', 'ws', 'wss'], allowCredentials: false }),
  );
  const embedded = url === undefined && !r.failed(S.mqttUrl);
  // 1884, not 1883: a developer machine often runs Mosquitto on 1883 already, and the embedded
  // broker must not fail `npm start` there.
  const listen = r.withDefault(S.mqttListenAddr, parseListenAddress, {
    host: '127.0.0.1',
    port: 1884,
  });
  if (!embedded && r.isSet(S.mqttListenAddr)) {
    r.problem(
      `${r.name(S.mqttListenAddr)} applies only to the embedded broker, but ${r.name(S.mqttUrl)} is set`,
    );
  }
  const username = r.optional(S.mqttUsername, parseString);
  const password = r.optional(S.mqttPassword, parseSecret);
  if (password !== undefined && username === undefined && !r.failed(S.mqttUsername)) {
    r.problem(`${r.name(S.mqttPassword)} is set without ${r.name(S.mqttUsername)}`);
  }
  const common = {
    ...(username === undefined ? {} : { username }),
    ...(password === undefined ? {} : { password }),
    clientIdPrefix: r.withDefault(S.mqttClientIdPrefix, parseClientIdPrefix, 'e4c2'),
  };
  return embedded
    ? { kind: 'embedded', listen, listenExplicit: r.isSet(S.mqttListenAddr), ...common }
    : { kind: 'external', url: url?.href ?? '', ...common };
}

/**
 * Default ping interval and allowance of the watchdog on a node's non-blocking Redis connections
 * (`RedisWatchdog`): far above any healthy answer, far below TCP's 15 minutes.
 */
export const DEFAULT_REDIS_SILENCE_MS = 5000;

function readRedis(r: SettingReader): RedisConfig {
  const url = r.optional(S.redisUrl, secretUrl(['redis', 'rediss']));
  const redlock = r.optional(S.redlockUrls, secretUrlList(['redis', 'rediss']));
  if (url === undefined) {
    if (redlock !== undefined) r.problem(`${r.name(S.redlockUrls)} needs ${r.name(S.redisUrl)}`);
    return { kind: 'in-process' };
  }
  const silenceMs = r.withDefault(
    S.redisSilenceMs,
    parseInteger(500, 600_000),
    DEFAULT_REDIS_SILENCE_MS,
  );
  return { kind: 'external', url, redlockUrls: redlock ?? [url], silenceMs };
}

/** Comma-separated Redis URLs for a Redlock quorum: 1, 3 or 5 distinct independent instances. */
function secretUrlList(schemes: readonly string[]): Parser<readonly Secret[]> {
  const one = secretUrl(schemes);
  return (raw) => {
    if (typeof raw !== 'string') return { ok: false, reason: 'must be comma-separated URLs' };
    const parts = raw.split(',').map((p) => p.trim());
    const values: Secret[] = [];
    for (const part of parts) {
      const parsed = one(part);
      if (!parsed.ok) return parsed;
      values.push(parsed.value);
    }
    if (![1, 3, 5].includes(values.length)) {
      return { ok: false, reason: `must list 1, 3 or 5 Redis instances (got ${values.length})` };
    }
    if (new Set(parts).size !== parts.length)
      return { ok: false, reason: 'must not repeat an instance', sensitive: true };
    return { ok: true, value: values };
  };
}

function readCrypto(r: SettingReader): CryptoConfig {
  const mode = r.withDefault(S.cryptoMode, parseEnum(CRYPTO_MODES), 'symkey');
  const serverKeygen = r.withDefault(S.cryptoServerKeygen, parseBoolean, false);
  if (serverKeygen && mode === 'symkey' && !r.failed(S.cryptoMode)) {
    r.problem(`${r.name(S.cryptoServerKeygen)} applies only to ${S.cryptoMode.env}=pubkey`);
  }
  return { mode, serverKeygen };
}

function readApi(r: SettingReader): ApiConfig {
  return {
    grpc: r.withDefault(S.grpcAddr, parseListenAddress, { host: '127.0.0.1', port: 5555 }),
    http: r.withDefault(S.httpAddr, parseListenAddress, { host: '127.0.0.1', port: 8888 }),
    metrics: r.withDefault(S.metricsAddr, parseListenAddress, { host: '127.0.0.1', port: 9464 }),
    ...optionalEntry('credentialsFile', r.optional(S.apiCredentialsFile, parseString)),
    ...optionalEntry('clientCaFile', r.optional(S.tlsClientCa, parseString)),
    allowedHosts: r.withDefault(S.httpAllowedHosts, parseHostNames, []),
  };
}

/** `{ [name]: value }`, or nothing when the value is absent (exactOptionalPropertyTypes). */
function optionalEntry<K extends string, V>(name: K, value: V | undefined): Partial<Record<K, V>> {
  return value === undefined ? {} : ({ [name]: value } as Record<K, V>);
}

/** A listening address and the setting that chose it. */
interface Listener {
  readonly spec: (typeof S)[keyof typeof S];
  readonly address: ListenAddress;
}

function listeners(api: ApiConfig): Listener[] {
  return [
    { spec: S.grpcAddr, address: api.grpc },
    { spec: S.httpAddr, address: api.http },
    { spec: S.metricsAddr, address: api.metrics },
  ];
}

const WILDCARD_HOSTS = new Set(['0.0.0.0', '::']);

/** Two listeners on one port would fail at bind time; say so now, with the other problems. */
function checkDistinctAddresses(r: SettingReader, listening: readonly Listener[]): void {
  const clashes = (a: ListenAddress, b: ListenAddress): boolean =>
    a.port !== 0 &&
    a.port === b.port &&
    (a.host === b.host || WILDCARD_HOSTS.has(a.host) || WILDCARD_HOSTS.has(b.host));
  listening.forEach((first, i) => {
    for (const second of listening.slice(i + 1)) {
      if (clashes(first.address, second.address)) {
        r.problem(`${first.spec.env} and ${second.spec.env} both use port ${first.address.port}`);
      }
    }
  });
}

function readTls(r: SettingReader, dataDir: string, db: DatabaseConfig['kind']): TlsConfig {
  const certPath = r.optional(S.tlsCert, parseString);
  const keyPath = r.optional(S.tlsKey, parseString);
  if (certPath !== undefined && keyPath !== undefined) return { kind: 'files', certPath, keyPath };
  if (certPath !== undefined || keyPath !== undefined) {
    r.problem(`${r.name(S.tlsCert)} and ${r.name(S.tlsKey)} must be set together`);
  }
  return db === 'embedded'
    ? { kind: 'self-signed', dir: join(dataDir, 'tls') }
    : { kind: 'disabled' };
}

/** Key label of the PKCS#11 KEK when none is set. */
export const DEFAULT_PKCS11_KEY_LABEL = 'e4c2-kek';

function readKek(r: SettingReader, dataDir: string, db: DatabaseConfig['kind']): KekConfig {
  const path = r.optional(S.kekFile, parseString);
  const passphrase = r.optional(S.kekPassphrase, parsePassphrase);
  const pkcs11 = readPkcs11Kek(r);
  const vault = readVaultKek(r);
  const chosen = [path, passphrase, pkcs11, vault].filter((v) => v !== undefined).length;
  const kekSettings = [S.kekFile, S.kekPassphrase, S.kekPkcs11Module, S.kekVaultAddr];
  const names = kekSettings.map((k) => r.name(k));
  const listed = names.slice(0, -1).join(', ');
  const last = names.at(-1) ?? '';
  if (chosen > 1) r.problem(`set only one of ${listed} and ${last}`);
  if (path !== undefined) return { kind: 'file', path };
  if (passphrase !== undefined) return { kind: 'passphrase', passphrase };
  if (pkcs11 !== undefined && pkcs11 !== 'invalid') return pkcs11;
  if (vault !== undefined && vault !== 'invalid') return vault;
  const failed = kekSettings.some((s) => r.failed(s));
  if (db === 'external' && !failed && pkcs11 === undefined && vault === undefined) {
    // A key generated per node would make every node unable to read the others' keys.
    r.problem(
      `${listed} or ${last} is required with an external database (every node must share the key-encryption key)`,
    );
  }
  return { kind: 'generated-file', path: join(dataDir, 'kek.key') };
}

/** Key name of the Vault transit KEK when none is set. */
export const DEFAULT_VAULT_KEY = 'e4c2-kek';

const parseVaultAddr = parseUrl({
  schemes: ['https', 'http'],
  allowCredentials: false,
  credentialsHint: 'Vault credentials are E4C2_KEK_VAULT_TOKEN or the AppRole settings',
});

/**
 * The Vault transit KEK, when its address is set (a token, or an AppRole's role and secret id,
 * is then required); `'invalid'` when the settings are incomplete (the problem is reported).
 */
function readVaultKek(r: SettingReader): KekConfig | 'invalid' | undefined {
  const addr = r.optional(S.kekVaultAddr, parseVaultAddr);
  const token = r.optional(S.kekVaultToken, parseSecret);
  const roleId = r.optional(S.kekVaultRoleId, parseString);
  const secretId = r.optional(S.kekVaultSecretId, parseSecret);
  const keyName = r.optional(S.kekVaultKey, parseString) ?? DEFAULT_VAULT_KEY;
  const mount = r.optional(S.kekVaultMount, parseString) ?? 'transit';
  const namespace = r.optional(S.kekVaultNamespace, parseString);
  const caFile = r.optional(S.kekVaultCaFile, parseString);
  const authSet = token !== undefined || roleId !== undefined || secretId !== undefined;
  if (addr === undefined) {
    if (authSet && !r.failed(S.kekVaultAddr)) {
      r.problem(
        `${r.name(S.kekVaultToken)}, ${r.name(S.kekVaultRoleId)} and ${r.name(S.kekVaultSecretId)} need ${r.name(S.kekVaultAddr)} (the Vault holding the KEK)`,
      );
    }
    return r.failed(S.kekVaultAddr) ? 'invalid' : undefined;
  }
  let auth: Extract<KekConfig, { kind: 'vault-transit' }>['auth'] | undefined;
  if (token !== undefined && roleId === undefined && secretId === undefined)
    auth = { kind: 'token', token };
  else if (token === undefined && roleId !== undefined && secretId !== undefined)
    auth = { kind: 'approle', roleId, secretId };
  if (auth === undefined) {
    r.problem(
      `${r.name(S.kekVaultAddr)} needs either ${r.name(S.kekVaultToken)} or both ${r.name(S.kekVaultRoleId)} and ${r.name(S.kekVaultSecretId)} (AppRole)`,
    );
    return 'invalid';
  }
  return {
    kind: 'vault-transit',
    addr: addr.href.replace(/\/$/, ''),
    keyName,
    mount,
    auth,
    ...(namespace === undefined ? {} : { namespace }),
    ...(caFile === undefined ? {} : { caFile }),
  };
}

/**
 * The PKCS#11 KEK, when its module is set (token and PIN are then required); `'invalid'` when
 * the settings are incomplete (the problem is reported).
 */
function readPkcs11Kek(r: SettingReader): KekConfig | 'invalid' | undefined {
  const modulePath = r.optional(S.kekPkcs11Module, parseString);
  const tokenLabel = r.optional(S.kekPkcs11Token, parseString);
  const keyLabel = r.optional(S.kekPkcs11KeyLabel, parseString) ?? DEFAULT_PKCS11_KEY_LABEL;
  const pin = r.optional(S.kekPkcs11Pin, parseSecret);
  if (modulePath === undefined) {
    if (tokenLabel !== undefined || pin !== undefined) {
      r.problem(
        `${r.name(S.kekPkcs11Token)} and ${r.name(S.kekPkcs11Pin)} need ${r.name(S.kekPkcs11Module)} (the PKCS#11 module of the HSM)`,
      );
    }
    return undefined;
  }
  if (tokenLabel === undefined || pin === undefined) {
    r.problem(
      `${r.name(S.kekPkcs11Module)} needs ${r.name(S.kekPkcs11Token)} (the token's label) and ${r.name(S.kekPkcs11Pin)} (its user PIN)`,
    );
    return 'invalid';
  }
  return { kind: 'pkcs11', modulePath, tokenLabel, keyLabel, pin };
}

/**
 * Defaults of the delivery settings. The throughput ones (batches, batch size, publish window)
 * were measured with the fan-out benchmark (bench/RESULTS.md), which runs its engines with them.
 */
export const DELIVERY_DEFAULTS = {
  maxAttempts: 8,
  backoffInitialMs: 500,
  backoffMaxMs: 30_000,
  deadlineMs: 600_000,
  pubackTimeoutMs: 5_000,
  claimTtlMs: 15_000,
  batches: 4,
  batchSize: 500,
  publishWindow: 256,
} as const satisfies DeliveryConfig;

function readDelivery(r: SettingReader): DeliveryConfig {
  const d = DELIVERY_DEFAULTS;
  const delivery: DeliveryConfig = {
    maxAttempts: r.withDefault(S.deliveryMaxAttempts, parseInteger(1, 100), d.maxAttempts),
    backoffInitialMs: r.withDefault(
      S.deliveryBackoffInitialMs,
      parseInteger(1, 600_000),
      d.backoffInitialMs,
    ),
    backoffMaxMs: r.withDefault(S.deliveryBackoffMaxMs, parseInteger(1, 3_600_000), d.backoffMaxMs),
    deadlineMs: r.withDefault(S.deliveryDeadlineMs, parseInteger(1_000, 86_400_000), d.deadlineMs),
    pubackTimeoutMs: r.withDefault(
      S.pubackTimeoutMs,
      parseInteger(100, 600_000),
      d.pubackTimeoutMs,
    ),
    claimTtlMs: r.withDefault(S.deliveryClaimTtlMs, parseInteger(1_000, 600_000), d.claimTtlMs),
    batches: r.withDefault(S.deliveryBatches, parseInteger(1, 64), d.batches),
    batchSize: r.withDefault(S.deliveryBatchSize, parseInteger(1, 10_000), d.batchSize),
    publishWindow: r.withDefault(S.deliveryPublishWindow, parseInteger(1, 4_096), d.publishWindow),
  };
  const anyFailed = [
    S.deliveryBackoffInitialMs,
    S.deliveryBackoffMaxMs,
    S.deliveryDeadlineMs,
    S.pubackTimeoutMs,
  ].some((s) => r.failed(s));
  if (!anyFailed && delivery.backoffMaxMs < delivery.backoffInitialMs) {
    r.problem(
      `${r.name(S.deliveryBackoffMaxMs)} must be at least ${r.name(S.deliveryBackoffInitialMs)}`,
    );
  }
  if (!anyFailed && delivery.pubackTimeoutMs > delivery.deadlineMs) {
    r.problem(`${r.name(S.pubackTimeoutMs)} must not exceed ${r.name(S.deliveryDeadlineMs)}`);
  }
  return delivery;
}

function readLimits(r: SettingReader): LimitsConfig {
  return {
    maxPageSize: r.withDefault(S.maxPageSize, parseInteger(1, 100_000), 1000),
    // 268435455 is the largest MQTT packet (remaining length) there is.
    maxMessageBytes: r.withDefault(S.maxMessageBytes, parseInteger(1024, 268_435_455), 1_048_576),
  };
}

/** A decimal number from 0 to 1 (a sampling ratio). */
const parseRatio: Parser<number> = (raw) => {
  const n =
    typeof raw === 'number'
      ? raw
      : typeof raw === 'string' && /^(\d+(\.\d*)?|\.\d+)$/.test(raw)
        ? Number(raw)
        : NaN;
  if (n >= 0 && n <= 1) return { ok: true, value: n };
  return { ok: false, reason: 'must be from 0 to 1' };
};

/** The one OTLP protocol the node's exporter speaks (`@opentelemetry/exporter-trace-otlp-http`). */
const parseOtlpProtocol: Parser<OtlpProtocol> = (raw) =>
  raw === 'http/json' || raw === 'http/protobuf'
    ? { ok: true, value: raw }
    : {
        ok: false,
        reason:
          'the node sends OTLP over HTTP only: set http/json (the default) or http/protobuf (an OpenTelemetry Collector or Jaeger takes both on port 4318)',
      };

/**
 * Where an OTLP/HTTP exporter sends spans given the base endpoint (`OTEL_EXPORTER_OTLP_ENDPOINT`):
 * `v1/traces` relative to its path, as the OpenTelemetry specification says.
 */
function tracesUrlOf(base: URL): string {
  const url = new URL(base);
  url.pathname = `${url.pathname.replace(/\/+$/, '')}/v1/traces`;
  return url.toString();
}

function readTelemetry(r: SettingReader): TelemetryConfig {
  // Never quoted back nor printed with a secret: credentials and query strings are refused
  // (an api_key in the query was accepted and printed in the start-up log).
  const parseEndpoint = parseUrl({
    schemes: ['http', 'https'],
    allowCredentials: false,
    credentialsHint: 'a collector that needs them takes them in OTEL_EXPORTER_OTLP_HEADERS',
    allowQuery: false,
  });
  const base = r.optional(S.otlpEndpoint, parseEndpoint);
  // The signal-specific endpoint is the whole URL, used as given, and wins over the base one.
  const traces = r.optional(S.otlpTracesEndpoint, parseEndpoint);
  const generalProtocol = r.optional(S.otlpProtocol, parseOtlpProtocol);
  const tracesProtocol = r.optional(S.otlpTracesProtocol, parseOtlpProtocol);
  const endpointSet = base !== undefined || traces !== undefined;
  return {
    // The OpenTelemetry default is otlp; without an endpoint we record nothing rather than send
    // spans to a collector nobody runs on localhost.
    tracesExporter: r.withDefault(
      S.tracesExporter,
      parseEnum(['none', 'otlp'] as const),
      endpointSet ? 'otlp' : 'none',
    ),
    otlpTracesUrl: traces?.toString() ?? tracesUrlOf(base ?? new URL('http://localhost:4318')),
    otlpProtocol: tracesProtocol ?? generalProtocol ?? 'http/json',
    serviceName: r.optional(S.serviceName, parseString),
    traceSampleRatio: r.withDefault(S.traceSampleRatio, parseRatio, 1),
  };
}
