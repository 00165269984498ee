// The start-up line names every setting as an operator sets it: by its config-file key (the
// `Config` object's field names differ: it printed `crypto.serverKeygen`, a key no file has).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { describeConfig, describeSources, loadConfig } from '../../config/index.ts';
import { KNOWN_FILE_KEYS } from '../../config/settings.ts';

/** Dotted paths of the leaves of a described config. */
function leaves(value: unknown, path = ''): string[] {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return [path];
  return Object.entries(value).flatMap(([k, v]) => leaves(v, path === '' ? k : `${path}.${k}`));
}

const external = {
  DATABASE_URL: 'postgresql://db.internal:5432/e4',
  REDIS_URL: 'redis://redis.internal:6379',
  MQTT_URL: 'mqtt://broker.internal:1883',
  E4C2_ROLE: 'worker',
};

/** Between them, every kind of database, broker, Redis, certificate and key-encryption key. */
const ENVIRONMENTS: ReadonlyArray<Record<string, string>> = [
  {},
  { E4C2_CRYPTO_MODE: 'pubkey', E4C2_PK_SERVER_KEYGEN: 'true', E4C2_KEK_FILE: '/etc/e4c2/kek' },
  {
    ...external,
    E4C2_MQTT_USERNAME: 'c2',
    E4C2_MQTT_PASSWORD: 'mqtt-secret',
    E4C2_TLS_CERT: '/etc/e4c2/tls.crt',
    E4C2_TLS_KEY: '/etc/e4c2/tls.key',
    E4C2_TLS_CLIENT_CA: '/etc/e4c2/clients.crt',
    E4C2_API_CREDENTIALS_FILE: '/etc/e4c2/credentials.json',
    E4C2_KEK_PASSPHRASE: 'a passphrase of 16 bytes',
    OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318',
    OTEL_SERVICE_NAME: 'c2-eu',
  },
  {
    ...external,
    E4C2_KEK_PKCS11_MODULE: '/usr/lib/softhsm/libsofthsm2.so',
    E4C2_KEK_PKCS11_TOKEN: 'c2',
    E4C2_KEK_PKCS11_PIN: '1234',
  },
  {
    ...external,
    E4C2_KEK_VAULT_ADDR: 'https://vault:8200',
    E4C2_KEK_VAULT_ROLE_ID: 'role',
    E4C2_KEK_VAULT_SECRET_ID: 'secret',
    E4C2_KEK_VAULT_NAMESPACE: 'ops',
    E4C2_KEK_VAULT_CA_FILE: '/etc/e4c2/vault-ca.crt',
  },
  {
    ...external,
    E4C2_KEK_VAULT_ADDR: 'https://vault:8200',
    E4C2_KEK_VAULT_TOKEN: 'token',
    E4C2_TEST_FAULTS: 'no-idempotency',
    E4C2_ALLOW_TEST_FAULTS: 'true',
  },
];

/**
 * File keys the view folds into another: the base OTLP endpoint and protocol only lead to the
 * traces ones, which the view shows with the value in effect.
 */
const FOLDED = new Set(['telemetry.otlpEndpoint', 'telemetry.otlpProtocol']);

void describe('describeConfig', () => {
  void it('names every setting it shows by its config-file key', () => {
    for (const env of ENVIRONMENTS) {
      const unknown = leaves(describeConfig(loadConfig(env))).filter(
        (key) => !KNOWN_FILE_KEYS.includes(key),
      );
      assert.deepEqual(unknown, [], `not config-file keys, with ${JSON.stringify(env)}`);
    }
  });

  void it('shows every setting in some configuration', () => {
    const shown = new Set(ENVIRONMENTS.flatMap((env) => leaves(describeConfig(loadConfig(env)))));
    const missing = KNOWN_FILE_KEYS.filter((key) => !shown.has(key) && !FOLDED.has(key));
    assert.deepEqual(missing, []);
  });

  void it('shows effective values, defaults included, under the keys the file takes', () => {
    const described = describeConfig(
      loadConfig({ E4C2_CRYPTO_MODE: 'pubkey', E4C2_PK_SERVER_KEYGEN: 'true' }),
    );
    assert.deepEqual(described.crypto, { mode: 'pubkey', pkServerKeygen: true });
    assert.deepEqual(described.api, {
      grpcAddr: '127.0.0.1:5555',
      httpAddr: '127.0.0.1:8888',
      metricsAddr: '127.0.0.1:9464',
      allowedHosts: [],
    });
    assert.equal((described.database as Record<string, unknown>).embeddedPort, 5433);
    const telemetry = describeConfig(
      loadConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318' }),
    ).telemetry as Record<string, unknown>;
    assert.equal(telemetry.otlpTracesEndpoint, 'http://collector:4318/v1/traces');
  });

  void it('says apart what the settings chose: embedded services, a generated key', () => {
    assert.deepEqual(describeSources(loadConfig({})), {
      database: 'embedded',
      mqtt: 'embedded',
      redis: 'in-process',
      tls: 'self-signed',
      kek: 'generated-file',
    });
    assert.deepEqual(describeSources(loadConfig(ENVIRONMENTS[2] ?? {})), {
      database: 'external',
      mqtt: 'external',
      redis: 'external',
      tls: 'files',
      kek: 'passphrase',
    });
  });
});
