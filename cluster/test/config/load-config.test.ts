// loadConfig: defaults, every problem at once, env over file, typo protection, cross-setting rules.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { C2Error } from '../../errors.ts';
import { ConfigError, loadConfig, type Config, type TelemetryConfig } from '../../config/index.ts';
import { OBSERVED_LAG_GRACE_SECONDS } from '../../domain/queries.ts';
import { REDIS_WATCHDOG_DEFAULTS } from '../../coordination/index.ts';

type Env = Record<string, string | undefined>;

/** Runs loadConfig expecting a ConfigError; returns it. */
function problemsOf(env: Env, fileText?: string): ConfigError {
  try {
    loadConfig(env, fileText);
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected ConfigError, got ${String(err)}`);
    return err;
  }
  assert.fail('loadConfig accepted an invalid configuration');
}

void describe('loadConfig defaults', () => {
  void it('runs a single embedded node from an empty environment', () => {
    const c = loadConfig({});
    assert.equal(c.dataDir, './data');
    assert.equal(c.configFile, undefined);
    assert.deepEqual(c.database, {
      kind: 'embedded',
      dataDir: 'data/postgres',
      port: 5433,
      poolMax: 10,
      idleInTransactionTimeoutMs: 60_000,
      queryTimeoutMs: 30_000,
      schema: 'public',
    });
    assert.deepEqual(c.mqtt, {
      kind: 'embedded',
      listen: { host: '127.0.0.1', port: 1884 },
      listenExplicit: false,
      clientIdPrefix: 'e4c2',
    });
    assert.deepEqual(c.redis, { kind: 'in-process' });
    assert.deepEqual(c.crypto, { mode: 'symkey', serverKeygen: false });
    assert.deepEqual(c.api, {
      grpc: { host: '127.0.0.1', port: 5555 },
      http: { host: '127.0.0.1', port: 8888 },
      metrics: { host: '127.0.0.1', port: 9464 },
      allowedHosts: [],
    });
    assert.deepEqual(c.tls, { kind: 'self-signed', dir: 'data/tls' });
    assert.deepEqual(c.kek, { kind: 'generated-file', path: 'data/kek.key' });
    assert.deepEqual(c.delivery, {
      maxAttempts: 8,
      backoffInitialMs: 500,
      backoffMaxMs: 30_000,
      deadlineMs: 600_000,
      pubackTimeoutMs: 5_000,
      claimTtlMs: 15_000,
      batches: 4,
      batchSize: 500,
      publishWindow: 256,
    });
    assert.deepEqual(c.limits, { maxPageSize: 1000, maxMessageBytes: 1_048_576 });
    assert.deepEqual(c.log, { level: 'info' });
    assert.deepEqual(c.node, { id: 'e4c2', role: 'all', shutdownTimeoutMs: 10_000 });
  });

  void it('is deep-frozen', () => {
    const c = loadConfig({});
    assert.ok(Object.isFrozen(c));
    assert.ok(Object.isFrozen(c.api.grpc));
    assert.throws(() => {
      (c.delivery as { maxAttempts: number }).maxAttempts = 1;
    }, TypeError);
  });

  void it('reads the allowed host names (env list or file array), lower-cased, and refuses others', () => {
    const env = loadConfig({ E4C2_HTTP_ALLOWED_HOSTS: ' C2.example.com, lab-1.local. ,' });
    assert.deepEqual(env.api.allowedHosts, ['c2.example.com', 'lab-1.local']);
    const file = loadConfig({}, JSON.stringify({ api: { allowedHosts: ['a.example'] } }));
    assert.deepEqual(file.api.allowedHosts, ['a.example']);
    for (const bad of ['c2.example.com:8888', 'https://c2.example.com', 'a b', '-x.example']) {
      const err = problemsOf({ E4C2_HTTP_ALLOWED_HOSTS: bad });
      assert.match(err.message, /E4C2_HTTP_ALLOWED_HOSTS: must be comma-separated host names/, bad);
    }
  });

  void it('derives the node id from HOSTNAME, reduced to the allowed characters', () => {
    assert.equal(loadConfig({ HOSTNAME: 'node-1.example' }).node.id, 'node-1.example');
    assert.equal(loadConfig({ HOSTNAME: 'weird host/name' }).node.id, 'weird-host-name');
    assert.equal(loadConfig({ HOSTNAME: 'h', E4C2_NODE_ID: 'api-2' }).node.id, 'api-2');
  });

  void it('treats empty variables as unset', () => {
    const c = loadConfig({ DATABASE_URL: '', E4C2_DB_POOL_MAX: '', E4C2_CONFIG_FILE: '' });
    assert.equal(c.database.kind, 'embedded');
    assert.equal(c.database.poolMax, 10);
  });

  void it('ignores variables that are not ours', () => {
    assert.doesNotThrow(() => loadConfig({ PATH: '/bin', E4C: 'x', NODE_ENV: 'production' }));
  });
});

void describe('loadConfig values', () => {
  void it('parses every kind of value', () => {
    const c = loadConfig({
      E4C2_DATA_DIR: '/var/lib/e4c2',
      DATABASE_URL: 'postgres://c2:pw@db.internal:5432/e4',
      E4C2_DB_POOL_MAX: '200',
      E4C2_DB_SCHEMA: 'e4_c2',
      MQTT_URL: 'mqtts://broker.internal:8883',
      E4C2_MQTT_USERNAME: 'c2',
      E4C2_MQTT_PASSWORD: 'broker-password',
      E4C2_MQTT_CLIENT_ID_PREFIX: 'c2-prod',
      REDIS_URL: 'redis://redis.internal:6379/0',
      E4C2_CRYPTO_MODE: 'pubkey',
      E4C2_PK_SERVER_KEYGEN: 'TRUE',
      E4C2_GRPC_ADDR: '0.0.0.0:5555',
      E4C2_HTTP_ADDR: '[::1]:0',
      E4C2_METRICS_ADDR: 'metrics.local:9464',
      E4C2_TLS_CERT: '/etc/e4c2/cert.pem',
      E4C2_TLS_KEY: '/etc/e4c2/key.pem',
      E4C2_KEK_FILE: '/etc/e4c2/kek',
      E4C2_DELIVERY_MAX_ATTEMPTS: '3',
      E4C2_DELIVERY_BACKOFF_INITIAL_MS: '100',
      E4C2_DELIVERY_BACKOFF_MAX_MS: '1000',
      E4C2_DELIVERY_DEADLINE_MS: '60000',
      E4C2_PUBACK_TIMEOUT_MS: '2000',
      E4C2_DELIVERY_CLAIM_TTL_MS: '4000',
      E4C2_DELIVERY_BATCHES: '2',
      E4C2_DELIVERY_BATCH_SIZE: '250',
      E4C2_DELIVERY_PUBLISH_WINDOW: '64',
      E4C2_MAX_PAGE_SIZE: '50',
      E4C2_MAX_MESSAGE_BYTES: '4096',
      E4C2_LOG_LEVEL: 'debug',
      E4C2_SHUTDOWN_TIMEOUT_MS: '2500',
    });
    assert.ok(c.database.kind === 'external');
    assert.equal(c.database.url.reveal(), 'postgres://c2:pw@db.internal:5432/e4');
    assert.equal(c.database.poolMax, 200);
    assert.equal(c.mqtt.kind === 'external' && c.mqtt.url, 'mqtts://broker.internal:8883');
    assert.equal(c.mqtt.username, 'c2');
    assert.equal(c.mqtt.password?.reveal(), 'broker-password');
    assert.equal(
      c.redis.kind === 'external' && c.redis.url.reveal(),
      'redis://redis.internal:6379/0',
    );
    assert.deepEqual(c.crypto, { mode: 'pubkey', serverKeygen: true });
    assert.deepEqual(c.api.http, { host: '::1', port: 0 });
    assert.deepEqual(c.tls, {
      kind: 'files',
      certPath: '/etc/e4c2/cert.pem',
      keyPath: '/etc/e4c2/key.pem',
    });
    assert.deepEqual(c.kek, { kind: 'file', path: '/etc/e4c2/kek' });
    assert.equal(c.delivery.deadlineMs, 60_000);
    assert.equal(c.delivery.claimTtlMs, 4000);
    assert.deepEqual(
      [c.delivery.batches, c.delivery.batchSize, c.delivery.publishWindow],
      [2, 250, 64],
    );
    assert.equal(c.limits.maxMessageBytes, 4096);
    assert.equal(c.log.level, 'debug');
    assert.equal(c.node.shutdownTimeoutMs, 2500);
  });

  void it('accepts true/false/1/0 for booleans and nothing else', () => {
    for (const [text, value] of [
      ['1', true],
      ['0', false],
      ['false', false],
      ['True', true],
    ] as const) {
      const env = { E4C2_CRYPTO_MODE: 'pubkey', E4C2_PK_SERVER_KEYGEN: text };
      assert.equal(loadConfig(env).crypto.serverKeygen, value);
    }
    const err = problemsOf({ E4C2_CRYPTO_MODE: 'pubkey', E4C2_PK_SERVER_KEYGEN: 'yes' });
    assert.deepEqual(err.problems, [
      'E4C2_PK_SERVER_KEYGEN: must be true, false, 1 or 0 (got "yes")',
    ]);
  });

  void it('reads a sampling ratio written with or without its leading zero', () => {
    for (const [raw, ratio] of [
      ['.5', 0.5],
      ['0.25', 0.25],
      ['1', 1],
      ['1.', 1],
    ] as const)
      assert.equal(loadConfig({ E4C2_TRACE_SAMPLE_RATIO: raw }).telemetry.traceSampleRatio, ratio);
    for (const raw of ['1.5', '-0.1', '.', 'half', '5e-1'])
      assert.throws(() => loadConfig({ E4C2_TRACE_SAMPLE_RATIO: raw }), /must be from 0 to 1/, raw);
  });

  void it('sends spans where the OTLP variables say, the signal-specific endpoint first', () => {
    const telemetry = (env: Record<string, string>): TelemetryConfig => loadConfig(env).telemetry;
    // The base endpoint gets v1/traces appended to its path; the traces endpoint is used as given.
    for (const [env, url] of [
      [{ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318' }, 'http://collector:4318/v1/traces'],
      [{ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://gw:8080/otlp/' }, 'http://gw:8080/otlp/v1/traces'],
      [{ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'https://c:4318/in' }, 'https://c:4318/in'],
      [
        {
          OTEL_EXPORTER_OTLP_ENDPOINT: 'http://base:4318',
          OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://traces:4318/custom/path',
        },
        'http://traces:4318/custom/path',
      ],
    ] as const) {
      assert.equal(telemetry(env).otlpTracesUrl, url, JSON.stringify(env));
      assert.equal(telemetry(env).tracesExporter, 'otlp', 'an endpoint turns the exporter on');
    }
    const none = telemetry({});
    assert.equal(none.tracesExporter, 'none');
    assert.equal(none.otlpTracesUrl, 'http://localhost:4318/v1/traces');
    assert.equal(none.otlpProtocol, 'http/json');
    assert.equal(none.serviceName, undefined, 'unset: the tracer picks it (role, resource)');
    assert.equal(telemetry({ OTEL_SERVICE_NAME: 'c2-eu' }).serviceName, 'c2-eu');
  });

  void it('takes OTEL_EXPORTER_OTLP_PROTOCOL http/json or http/protobuf, refuses the rest', () => {
    for (const protocol of ['http/json', 'http/protobuf'] as const) {
      assert.equal(
        loadConfig({ OTEL_EXPORTER_OTLP_PROTOCOL: protocol }).telemetry.otlpProtocol,
        protocol,
      );
    }
    assert.equal(
      loadConfig({
        OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
        OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: 'http/protobuf',
      }).telemetry.otlpProtocol,
      'http/protobuf',
      'the signal-specific one wins',
    );
    for (const name of ['OTEL_EXPORTER_OTLP_PROTOCOL', 'OTEL_EXPORTER_OTLP_TRACES_PROTOCOL']) {
      for (const bad of ['grpc', 'json', 'HTTP/JSON', 'http/protobuf ']) {
        const err = problemsOf({ [name]: bad });
        assert.equal(err.problems.length, 1, err.message);
        assert.match(
          err.problems[0] ?? '',
          new RegExp(
            `^${name}: the node sends OTLP over HTTP only: set http/json \\(the default\\) or http/protobuf`,
          ),
        );
      }
    }
    // The signal-specific one is read, and checked, even when the general one is fine.
    assert.equal(
      problemsOf({
        OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
        OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: 'grpc',
      }).problems.length,
      1,
    );
  });

  void it('accepts only decimal integers in range', () => {
    for (const bad of ['10.5', '1e3', '0x10', ' 7', '0', '201', '-1', 'ten']) {
      const err = problemsOf({ E4C2_DB_POOL_MAX: bad });
      assert.deepEqual(err.problems, [
        `E4C2_DB_POOL_MAX: must be an integer from 1 to 200 (got ${JSON.stringify(bad)})`,
      ]);
    }
    assert.equal(loadConfig({ E4C2_DB_POOL_MAX: '+7' }).database.poolMax, 7);
  });

  void it('checks listen addresses', () => {
    for (const bad of [
      'localhost',
      ':80',
      'localhost:70000',
      '999.1.1.1:80',
      '[::g]:80',
      'a b:1',
      '::1:80',
    ]) {
      const err = problemsOf({ E4C2_GRPC_ADDR: bad });
      assert.equal(err.problems.length, 1, bad);
      assert.match(err.problems[0] ?? '', /^E4C2_GRPC_ADDR: must be host:port/);
    }
    assert.deepEqual(loadConfig({ E4C2_GRPC_ADDR: '[::]:7000' }).api.grpc, {
      host: '::',
      port: 7000,
    });
  });

  void it('refuses a schema with capitals (PostgreSQL folds it: the node could not start)', () => {
    const err = problemsOf({ E4C2_DB_SCHEMA: 'E4C2' });
    assert.deepEqual(
      err.problems.map((p) => p.split(':')[0]),
      ['E4C2_DB_SCHEMA'],
    );
    assert.match(err.problems[0] ?? '', /lower-case letters/);
  });

  void it('checks enums, identifiers and the client id prefix', () => {
    const err = problemsOf({
      E4C2_CRYPTO_MODE: 'sym',
      E4C2_LOG_LEVEL: 'verbose',
      E4C2_DB_SCHEMA: 'public; DROP TABLE x',
      E4C2_MQTT_CLIENT_ID_PREFIX: 'has space',
      E4C2_NODE_ID: 'no/slash',
    });
    assert.deepEqual(
      err.problems.map((p) => p.split(':')[0]),
      [
        'E4C2_DB_SCHEMA',
        'E4C2_MQTT_CLIENT_ID_PREFIX',
        'E4C2_CRYPTO_MODE',
        'E4C2_LOG_LEVEL',
        'E4C2_NODE_ID',
      ],
    );
  });
});

void describe('loadConfig problems', () => {
  void it('reports every problem at once, one per line, as a C2_CONFIG error', () => {
    const err = problemsOf({
      E4C2_DB_POOL_MAX: 'many',
      E4C2_CRYPTO_MODE: 'rsa',
      E4C2_HTTP_ADDR: 'nowhere',
      E4C2_DELIVERY_MAX_ATTEMPTS: '0',
    });
    assert.ok(C2Error.is(err, 'C2_CONFIG'));
    assert.equal(err.name, 'ConfigError');
    assert.equal(err.problems.length, 4);
    assert.deepEqual(err.details, { problems: 4 });
    const lines = err.message.split('\n');
    assert.equal(lines[0], 'invalid configuration (4 problems):');
    assert.deepEqual(
      lines.slice(1),
      err.problems.map((p) => `  - ${p}`),
    );
    assert.deepEqual(err.problems, [
      'E4C2_DB_POOL_MAX: must be an integer from 1 to 200 (got "many")',
      'E4C2_CRYPTO_MODE: must be one of symkey, pubkey (got "rsa")',
      'E4C2_HTTP_ADDR: must be host:port or [ipv6]:port with a port from 0 to 65535 (got "nowhere")',
      'E4C2_DELIVERY_MAX_ATTEMPTS: must be an integer from 1 to 100 (got "0")',
    ]);
  });

  void it('bounds the delivery throughput and claim settings', () => {
    const err = problemsOf({
      E4C2_DELIVERY_BATCHES: '0',
      E4C2_DELIVERY_BATCH_SIZE: '10001',
      E4C2_DELIVERY_PUBLISH_WINDOW: 'lots',
      E4C2_DELIVERY_CLAIM_TTL_MS: '999',
    });
    assert.deepEqual(err.problems, [
      'E4C2_DELIVERY_CLAIM_TTL_MS: must be an integer from 1000 to 600000 (got "999")',
      'E4C2_DELIVERY_BATCHES: must be an integer from 1 to 64 (got "0")',
      'E4C2_DELIVERY_BATCH_SIZE: must be an integer from 1 to 10000 (got "10001")',
      'E4C2_DELIVERY_PUBLISH_WINDOW: must be an integer from 1 to 4096 (got "lots")',
    ]);
  });

  void it("reads the idle-in-transaction timeout, 0 meaning the server's own", () => {
    const timeout = (env: Env): number => loadConfig(env).database.idleInTransactionTimeoutMs;
    assert.equal(timeout({ E4C2_DB_IDLE_TX_TIMEOUT_MS: '0' }), 0);
    assert.equal(timeout({ E4C2_DB_IDLE_TX_TIMEOUT_MS: '5000' }), 5000);
    assert.deepEqual(problemsOf({ E4C2_DB_IDLE_TX_TIMEOUT_MS: '-1' }).problems, [
      'E4C2_DB_IDLE_TX_TIMEOUT_MS: must be an integer from 0 to 86400000 (got "-1")',
    ]);
  });

  void it('reads the statement timeout, 30 s by default and 0 meaning none', () => {
    const timeout = (env: Env): number => loadConfig(env).database.queryTimeoutMs;
    assert.equal(timeout({}), 30_000);
    assert.equal(timeout({ E4C2_DB_QUERY_TIMEOUT_MS: '0' }), 0);
    assert.equal(timeout({ E4C2_DB_QUERY_TIMEOUT_MS: '5000' }), 5000);
    assert.deepEqual(problemsOf({ E4C2_DB_QUERY_TIMEOUT_MS: '3600001' }).problems, [
      'E4C2_DB_QUERY_TIMEOUT_MS: must be an integer from 0 to 3600000 (got "3600001")',
    ]);
  });

  void it("reads the observed-lag grace in range, defaulting to the domain's", () => {
    assert.equal(loadConfig({}).monitoring?.lagGraceSeconds, OBSERVED_LAG_GRACE_SECONDS);
    assert.equal(
      loadConfig({ E4C2_MONITORING_LAG_GRACE_S: '600' }).monitoring?.lagGraceSeconds,
      600,
    );
    assert.deepEqual(problemsOf({ E4C2_MONITORING_LAG_GRACE_S: '5' }).problems, [
      'E4C2_MONITORING_LAG_GRACE_S: must be an integer from 10 to 86400 (got "5")',
    ]);
    assert.equal(
      problemsOf({}, JSON.stringify({ monitoring: { lagGraceSeconds: 'soon' } })).problems.length,
      1,
    );
  });

  void it("reads the monitor's byte cap in range, 64 MiB by default", () => {
    assert.equal(loadConfig({}).monitoring?.maxQueuedBytes, 64 * 1024 * 1024);
    assert.equal(
      loadConfig({}, JSON.stringify({ monitoring: { maxQueuedBytes: 2_000_000 } })).monitoring
        ?.maxQueuedBytes,
      2_000_000,
    );
    assert.deepEqual(problemsOf({ E4C2_MONITORING_MAX_QUEUED_BYTES: '1000' }).problems, [
      'E4C2_MONITORING_MAX_QUEUED_BYTES: must be an integer from 1048576 to 17179869184 (got "1000")',
    ]);
  });

  void it('reports unknown E4C2_ variables with a suggestion, never with their value', () => {
    const err = problemsOf({
      E4C2_DB_POOLMAX: '5',
      E4C2_KEK_PASSPRASE: 'correct horse battery staple',
      E4C2_ZZZ: '1',
    });
    assert.deepEqual(err.problems, [
      'E4C2_DB_POOLMAX: unknown variable (did you mean E4C2_DB_POOL_MAX?)',
      'E4C2_KEK_PASSPRASE: unknown variable (did you mean E4C2_KEK_PASSPHRASE?)',
      'E4C2_ZZZ: unknown variable',
    ]);
    assert.ok(!err.message.includes('horse'));
  });

  void it('applies the cross-setting rules', () => {
    const cases: [Env, string][] = [
      [
        { E4C2_TLS_CERT: '/c.pem' },
        'E4C2_TLS_CERT (tls.certFile) and E4C2_TLS_KEY (tls.keyFile) must be set together',
      ],
      [
        { E4C2_KEK_FILE: '/k', E4C2_KEK_PASSPHRASE: 'a passphrase long enough' },
        'set only one of E4C2_KEK_FILE (kek.file), E4C2_KEK_PASSPHRASE (kek.passphrase), E4C2_KEK_PKCS11_MODULE (kek.pkcs11.module) and E4C2_KEK_VAULT_ADDR (kek.vault.addr)',
      ],
      [
        {
          E4C2_KEK_FILE: '/k',
          E4C2_KEK_PKCS11_MODULE: '/hsm.so',
          E4C2_KEK_PKCS11_TOKEN: 't',
          E4C2_KEK_PKCS11_PIN: '1234',
        },
        'set only one of E4C2_KEK_FILE (kek.file), E4C2_KEK_PASSPHRASE (kek.passphrase), E4C2_KEK_PKCS11_MODULE (kek.pkcs11.module) and E4C2_KEK_VAULT_ADDR (kek.vault.addr)',
      ],
      [
        { E4C2_KEK_PKCS11_MODULE: '/hsm.so', E4C2_KEK_PKCS11_TOKEN: 't' },
        "E4C2_KEK_PKCS11_MODULE (kek.pkcs11.module) needs E4C2_KEK_PKCS11_TOKEN (kek.pkcs11.token) (the token's label) and E4C2_KEK_PKCS11_PIN (kek.pkcs11.pin) (its user PIN)",
      ],
      [
        { E4C2_KEK_VAULT_ADDR: 'https://vault:8200' },
        'E4C2_KEK_VAULT_ADDR (kek.vault.addr) needs either E4C2_KEK_VAULT_TOKEN (kek.vault.token) or both E4C2_KEK_VAULT_ROLE_ID (kek.vault.roleId) and E4C2_KEK_VAULT_SECRET_ID (kek.vault.secretId) (AppRole)',
      ],
      [
        {
          E4C2_KEK_VAULT_ADDR: 'https://vault:8200',
          E4C2_KEK_VAULT_TOKEN: 't',
          E4C2_KEK_VAULT_ROLE_ID: 'r',
        },
        'E4C2_KEK_VAULT_ADDR (kek.vault.addr) needs either E4C2_KEK_VAULT_TOKEN (kek.vault.token) or both E4C2_KEK_VAULT_ROLE_ID (kek.vault.roleId) and E4C2_KEK_VAULT_SECRET_ID (kek.vault.secretId) (AppRole)',
      ],
      [
        { E4C2_KEK_VAULT_TOKEN: 't' },
        'E4C2_KEK_VAULT_TOKEN (kek.vault.token), E4C2_KEK_VAULT_ROLE_ID (kek.vault.roleId) and E4C2_KEK_VAULT_SECRET_ID (kek.vault.secretId) need E4C2_KEK_VAULT_ADDR (kek.vault.addr) (the Vault holding the KEK)',
      ],
      [
        { E4C2_KEK_PKCS11_PIN: '1234' },
        'E4C2_KEK_PKCS11_TOKEN (kek.pkcs11.token) and E4C2_KEK_PKCS11_PIN (kek.pkcs11.pin) need E4C2_KEK_PKCS11_MODULE (kek.pkcs11.module) (the PKCS#11 module of the HSM)',
      ],
      [
        { DATABASE_URL: 'postgres://db/e4' },
        'E4C2_KEK_FILE (kek.file), E4C2_KEK_PASSPHRASE (kek.passphrase), E4C2_KEK_PKCS11_MODULE (kek.pkcs11.module) or E4C2_KEK_VAULT_ADDR (kek.vault.addr) is required with an external database (every node must share the key-encryption key)',
      ],
      [
        { E4C2_DELIVERY_BACKOFF_INITIAL_MS: '5000', E4C2_DELIVERY_BACKOFF_MAX_MS: '1000' },
        'E4C2_DELIVERY_BACKOFF_MAX_MS (delivery.backoffMaxMs) must be at least E4C2_DELIVERY_BACKOFF_INITIAL_MS (delivery.backoffInitialMs)',
      ],
      [
        { E4C2_DELIVERY_DEADLINE_MS: '2000', E4C2_PUBACK_TIMEOUT_MS: '3000' },
        'E4C2_PUBACK_TIMEOUT_MS (delivery.pubackTimeoutMs) must not exceed E4C2_DELIVERY_DEADLINE_MS (delivery.deadlineMs)',
      ],
      [
        { E4C2_MQTT_PASSWORD: 'pw' },
        'E4C2_MQTT_PASSWORD (mqtt.password) is set without E4C2_MQTT_USERNAME (mqtt.username)',
      ],
      [
        { E4C2_PK_SERVER_KEYGEN: 'true' },
        'E4C2_PK_SERVER_KEYGEN (crypto.pkServerKeygen) applies only to E4C2_CRYPTO_MODE=pubkey',
      ],
      [
        { MQTT_URL: 'mqtt://broker:1883', E4C2_MQTT_LISTEN_ADDR: '127.0.0.1:1883' },
        'E4C2_MQTT_LISTEN_ADDR (mqtt.listenAddr) applies only to the embedded broker, but MQTT_URL (mqtt.url) is set',
      ],
      [{ E4C2_HTTP_ADDR: '0.0.0.0:5555' }, 'E4C2_GRPC_ADDR and E4C2_HTTP_ADDR both use port 5555'],
      [
        { DATABASE_URL: 'postgres://db/e4', E4C2_KEK_FILE: '/k', E4C2_EMBEDDED_PG_PORT: '6543' },
        'E4C2_EMBEDDED_PG_PORT (database.embeddedPort) applies only to the embedded PostgreSQL, but DATABASE_URL (database.url) is set',
      ],
      [
        { E4C2_EMBEDDED_PG_PORT: '1884' },
        'E4C2_MQTT_LISTEN_ADDR and E4C2_EMBEDDED_PG_PORT both use port 1884',
      ],
      [
        { E4C2_EMBEDDED_PG_PORT: '65536' },
        'E4C2_EMBEDDED_PG_PORT: must be an integer from 0 to 65535 (got "65536")',
      ],
      [
        { E4C2_CONFIG_FILE: '/etc/e4c2.json' },
        "E4C2_CONFIG_FILE: is set, but the file's text was not passed to loadConfig",
      ],
    ];
    for (const [env, problem] of cases) assert.deepEqual(problemsOf(env).problems, [problem]);
  });

  void it('takes the embedded PostgreSQL port from E4C2_EMBEDDED_PG_PORT or the file', () => {
    const fromEnv = loadConfig({ E4C2_EMBEDDED_PG_PORT: '6543' });
    assert.equal(fromEnv.database.kind === 'embedded' && fromEnv.database.port, 6543);
    const fromFile = loadConfig(
      { E4C2_CONFIG_FILE: 'c.json' },
      JSON.stringify({ database: { embeddedPort: 0 } }),
    );
    assert.equal(fromFile.database.kind === 'embedded' && fromFile.database.port, 0);
  });

  void it('allows port 0 on several listeners', () => {
    const c = loadConfig({ E4C2_GRPC_ADDR: '127.0.0.1:0', E4C2_HTTP_ADDR: '127.0.0.1:0' });
    assert.equal(c.api.grpc.port, 0);
  });

  void it('selects the PKCS#11 KEK with its module, token and PIN (key label defaulted)', () => {
    const c = loadConfig({
      DATABASE_URL: 'postgres://db/e4',
      E4C2_KEK_PKCS11_MODULE: '/usr/lib/softhsm/libsofthsm2.so',
      E4C2_KEK_PKCS11_TOKEN: 'c2-prod',
      E4C2_KEK_PKCS11_PIN: '987654',
    });
    assert.equal(c.kek.kind, 'pkcs11');
    assert.equal(c.kek.modulePath, '/usr/lib/softhsm/libsofthsm2.so');
    assert.equal(c.kek.tokenLabel, 'c2-prod');
    assert.equal(c.kek.keyLabel, 'e4c2-kek');
    assert.equal(c.kek.pin.reveal(), '987654');
    const labelled = loadConfig({
      E4C2_KEK_PKCS11_MODULE: '/hsm.so',
      E4C2_KEK_PKCS11_TOKEN: 't',
      E4C2_KEK_PKCS11_PIN: '1',
      E4C2_KEK_PKCS11_KEY_LABEL: 'kek-2027',
    });
    assert.equal(labelled.kek.kind === 'pkcs11' && labelled.kek.keyLabel, 'kek-2027');
  });

  void it('selects the Vault transit KEK with a token or an AppRole', () => {
    const c = loadConfig({
      DATABASE_URL: 'postgres://db/e4',
      E4C2_KEK_VAULT_ADDR: 'https://vault.internal:8200/',
      E4C2_KEK_VAULT_TOKEN: 'hvs.abc',
      E4C2_KEK_VAULT_NAMESPACE: 'fleet',
    });
    assert.equal(c.kek.kind, 'vault-transit');
    assert.equal(c.kek.addr, 'https://vault.internal:8200');
    assert.equal(c.kek.keyName, 'e4c2-kek');
    assert.equal(c.kek.mount, 'transit');
    assert.equal(c.kek.namespace, 'fleet');
    assert.equal(c.kek.auth.kind === 'token' && c.kek.auth.token.reveal(), 'hvs.abc');
    const approle = loadConfig({
      E4C2_KEK_VAULT_ADDR: 'http://127.0.0.1:8200',
      E4C2_KEK_VAULT_ROLE_ID: 'c2-role',
      E4C2_KEK_VAULT_SECRET_ID: 's3cret',
      E4C2_KEK_VAULT_KEY: 'fleet-kek',
      E4C2_KEK_VAULT_MOUNT: 'kms',
    });
    assert.ok(approle.kek.kind === 'vault-transit' && approle.kek.auth.kind === 'approle');
    assert.equal(approle.kek.auth.roleId, 'c2-role');
    assert.equal(approle.kek.auth.secretId.reveal(), 's3cret');
    assert.equal(approle.kek.keyName, 'fleet-kek');
    assert.equal(approle.kek.mount, 'kms');
    assert.deepEqual(
      problemsOf({ E4C2_KEK_VAULT_ADDR: 'vault:8200', E4C2_KEK_VAULT_TOKEN: 't' }).problems,
      ['E4C2_KEK_VAULT_ADDR: must be a URL starting with https:// or http://'],
    );
  });

  void it('turns TLS off with an external database and no certificate', () => {
    const c = loadConfig({ DATABASE_URL: 'postgres://db/e4', E4C2_KEK_FILE: '/k' });
    assert.deepEqual(c.tls, { kind: 'disabled' });
  });

  void it('never quotes a secret value', () => {
    const err = problemsOf({
      E4C2_KEK_PASSPHRASE: 'short-s3cr3t',
      E4C2_MQTT_USERNAME: 'u',
      E4C2_MQTT_PASSWORD: ' ',
    });
    assert.ok(!err.message.includes('short-s3cr3t'));
    assert.deepEqual(err.problems, ['E4C2_KEK_PASSPHRASE: must be at least 16 bytes long']);
  });
});

void describe('loadConfig with a config file', () => {
  const file = JSON.stringify({
    dataDir: '/srv/e4c2',
    database: { poolMax: 20, schema: 'from_file' },
    log: { level: 'debug' },
    crypto: { mode: 'pubkey', pkServerKeygen: true },
    delivery: { maxAttempts: '4' },
    mqtt: { username: null },
  });

  void it('takes values from the file, and lets the environment override them', () => {
    const c: Config = loadConfig(
      { E4C2_CONFIG_FILE: '/etc/e4c2.json', E4C2_DB_POOL_MAX: '30' },
      file,
    );
    assert.equal(c.configFile, '/etc/e4c2.json');
    assert.equal(c.dataDir, '/srv/e4c2');
    assert.equal(c.database.poolMax, 30);
    assert.equal(c.database.schema, 'from_file');
    assert.equal(c.log.level, 'debug');
    assert.deepEqual(c.crypto, { mode: 'pubkey', serverKeygen: true });
    assert.equal(c.delivery.maxAttempts, 4);
    assert.equal(c.mqtt.username, undefined, 'null means unset');
    assert.deepEqual(c.kek, { kind: 'generated-file', path: '/srv/e4c2/kek.key' });
  });

  void it('reports unknown keys, misplaced sections and bad values with the file name', () => {
    const err = problemsOf(
      { E4C2_CONFIG_FILE: 'c2.json' },
      JSON.stringify({
        databse: { poolMax: 1 },
        database: { pool: 1, poolMax: true },
        api: 'x',
        kek: { passphrase: 'tiny' },
      }),
    );
    assert.deepEqual(err.problems, [
      'c2.json: unknown key databse (did you mean database?)',
      'c2.json: unknown key database.pool',
      'c2.json: api must be an object',
      'c2.json: database.poolMax: must be an integer from 1 to 200 (got true)',
      'c2.json: kek.passphrase: must be at least 16 bytes long',
    ]);
  });

  void it('reports malformed JSON without quoting it', () => {
    const err = problemsOf({}, '{"database": {"url": "postgres://u:hunter2hunter2@h/db",}}');
    assert.equal(err.problems.length, 1);
    assert.match(err.problems[0] ?? '', /^config file: not valid JSON/);
    assert.ok(!err.message.includes('hunter2'));
    assert.deepEqual(problemsOf({}, '[1]').problems, ['config file: must hold a JSON object']);
  });
});

void describe('variables of the command-line client', () => {
  void it('are ignored by the server, so one shell can run both', () => {
    const config = loadConfig({
      E4C2_ENDPOINT: '127.0.0.1:5555',
      E4C2_CERT: '/tmp/cert.pem',
      // The CLI's bearer token (docs/cli.md): a node refused to start with it exported.
      E4C2_TOKEN: 'a-bearer-token-of-the-cli-0123456789',
      // and its client certificate.
      E4C2_CLIENT_CERT: '/tmp/operator.pem',
      E4C2_CLIENT_KEY: '/tmp/operator.key',
    });
    assert.equal(config.crypto.mode, 'symkey');
    assert.throws(() => loadConfig({ E4C2_ENDPONT: 'x' }), /E4C2_ENDPONT: unknown variable/);
  });
});

void describe('cluster settings', () => {
  const base = { DATABASE_URL: 'postgres://db/e4', E4C2_KEK_FILE: '/k', MQTT_URL: 'mqtt://b:1883' };

  void it('needs REDIS_URL for the api and worker roles', () => {
    assert.throws(
      () => loadConfig({ ...base, E4C2_ROLE: 'worker' }),
      /E4C2_ROLE \(node.role\): the worker role needs REDIS_URL/,
    );
    assert.throws(
      () => loadConfig({ E4C2_ROLE: 'worker', REDIS_URL: 'redis://q:6379' }),
      (err: Error) =>
        /worker role needs DATABASE_URL/.test(err.message) &&
        /worker role needs MQTT_URL/.test(err.message),
    );
    const c = loadConfig({ ...base, E4C2_ROLE: 'api', REDIS_URL: 'redis://q:6379' });
    assert.equal(c.node.role, 'api');
    if (c.redis.kind !== 'external') assert.fail('REDIS_URL makes coordination external');
    assert.equal(c.redis.redlockUrls.length, 1);
  });

  void it("reads the Redis silence bound, defaulting to the watchdog's", () => {
    const silence = (env: Env): number | undefined => {
      const c = loadConfig({ ...base, REDIS_URL: 'redis://q:6379', ...env });
      return c.redis.kind === 'external' ? c.redis.silenceMs : undefined;
    };
    assert.equal(silence({}), REDIS_WATCHDOG_DEFAULTS.timeoutMs);
    assert.equal(silence({ E4C2_REDIS_SILENCE_MS: '1500' }), 1500);
    assert.throws(
      () => loadConfig({ ...base, REDIS_URL: 'redis://q', E4C2_REDIS_SILENCE_MS: '100' }),
      /E4C2_REDIS_SILENCE_MS: must be an integer from 500 to 600000 \(got "100"\)/,
    );
  });

  void it('takes 1, 3 or 5 distinct Redlock instances', () => {
    const urls = 'redis://a:1,redis://b:1,redis://c:1';
    const c = loadConfig({ ...base, REDIS_URL: 'redis://q:6379', E4C2_REDLOCK_URLS: urls });
    assert.equal(c.redis.kind === 'external' ? c.redis.redlockUrls.length : 0, 3);
    assert.throws(
      () =>
        loadConfig({
          ...base,
          REDIS_URL: 'redis://q',
          E4C2_REDLOCK_URLS: 'redis://a:1,redis://b:1',
        }),
      /1, 3 or 5 Redis instances/,
    );
    assert.throws(
      () =>
        loadConfig({
          ...base,
          REDIS_URL: 'redis://q',
          E4C2_REDLOCK_URLS: 'redis://a:1,redis://a:1,redis://c:1',
        }),
      /must not repeat/,
    );
    assert.throws(
      () => loadConfig({ ...base, E4C2_REDLOCK_URLS: 'redis://a:1' }),
      /needs REDIS_URL/,
    );
  });
});
