// Secrets never leave a Config by accident: not in errors, JSON, util.inspect or describeConfig.
import assert from 'node:assert/strict';
import { inspect } from 'node:util';
import { describe, it } from 'node:test';
import { describeConfig, loadConfig, Secret, type ConfigError } from '../../config/index.ts';

const PASSWORD = 'Zx9-very-secret-db-pass';

/** Every rendering of a config or an error that could reach a log. */
function renderings(value: unknown): string[] {
  return [
    JSON.stringify(value),
    inspect(value, { depth: Infinity, showHidden: true }),
    String(value),
  ];
}

void describe('Secret', () => {
  void it('redacts every conversion except reveal()', () => {
    const s = new Secret('hunter2');
    assert.equal(s.reveal(), 'hunter2');
    assert.equal(String(s), '[redacted]');
    // eslint-disable-next-line @typescript-eslint/restrict-template-expressions -- the point of the test
    assert.equal(`${s}`, '[redacted]');
    assert.equal(JSON.stringify({ s }), '{"s":"[redacted]"}');
    assert.equal(inspect(s), '[redacted]');
    assert.equal(inspect({ s }, { showHidden: true }), '{ s: [redacted] }');
    assert.deepEqual(Object.keys(s), []);
    // eslint-disable-next-line @typescript-eslint/no-misused-spread -- spreads happen in log calls
    assert.deepEqual({ ...s }, {});
  });
});

void describe('secrets in the configuration', () => {
  const env = {
    DATABASE_URL: `postgresql://c2:${PASSWORD}@db.internal:5432/e4?sslmode=require&password=${PASSWORD}`,
    REDIS_URL: `rediss://:${PASSWORD}@redis.internal:6380/2`,
    E4C2_MQTT_USERNAME: 'c2',
    E4C2_MQTT_PASSWORD: PASSWORD,
    E4C2_KEK_PASSPHRASE: `${PASSWORD}-kek`,
  };

  void it('keeps them out of JSON, util.inspect and describeConfig', () => {
    const config = loadConfig(env);
    const described = describeConfig(config);
    for (const text of [...renderings(config), ...renderings(described)]) {
      assert.ok(!text.includes(PASSWORD), text);
    }
    assert.deepEqual(described.database, {
      url: 'postgresql://[redacted]@db.internal:5432/e4?[redacted]',
      poolMax: 10,
      idleInTransactionTimeoutMs: 60_000,
      queryTimeoutMs: 30_000,
      schema: 'public',
    });
    assert.deepEqual(described.redis, {
      url: 'rediss://[redacted]@redis.internal:6380/2',
      redlockUrls: ['rediss://[redacted]@redis.internal:6380/2'],
      silenceMs: 5000,
    });
    assert.deepEqual(described.kek, { passphrase: '[redacted]' });
    assert.equal((described.mqtt as Record<string, unknown>).password, '[redacted]');
    assert.equal((described.api as Record<string, unknown>).grpcAddr, '127.0.0.1:5555');
  });

  void it('keeps the Vault token and AppRole secret id out of JSON, util.inspect and describeConfig', () => {
    for (const env of [
      { E4C2_KEK_VAULT_ADDR: 'https://vault:8200', E4C2_KEK_VAULT_TOKEN: PASSWORD },
      {
        E4C2_KEK_VAULT_ADDR: 'https://vault:8200',
        E4C2_KEK_VAULT_ROLE_ID: 'role',
        E4C2_KEK_VAULT_SECRET_ID: PASSWORD,
      },
    ]) {
      const config = loadConfig(env);
      for (const text of [...renderings(config), ...renderings(describeConfig(config))]) {
        assert.ok(!text.includes(PASSWORD), text);
      }
    }
  });

  void it('keeps the PKCS#11 PIN out of JSON, util.inspect and describeConfig', () => {
    const config = loadConfig({
      E4C2_KEK_PKCS11_MODULE: '/usr/lib/softhsm/libsofthsm2.so',
      E4C2_KEK_PKCS11_TOKEN: 'c2',
      E4C2_KEK_PKCS11_PIN: PASSWORD,
    });
    const described = describeConfig(config);
    for (const text of [...renderings(config), ...renderings(described)]) {
      assert.ok(!text.includes(PASSWORD), text);
    }
    assert.deepEqual((described.kek as Record<string, unknown>).pkcs11, {
      module: '/usr/lib/softhsm/libsofthsm2.so',
      token: 'c2',
      keyLabel: 'e4c2-kek',
      pin: '[redacted]',
    });
  });

  void it('keeps a secret of the OTLP endpoints out of errors and out of the configuration', () => {
    const problem = (name: string, endpoint: string): string => {
      try {
        loadConfig({ [name]: endpoint });
      } catch (err) {
        return (err as Error).message;
      }
      return assert.fail(`${name}=${endpoint} was accepted`);
    };
    // Credentials were quoted back in the error; a key in the query was accepted and printed in
    // the start-up log. The signal-specific endpoint follows the same rules.
    for (const name of ['OTEL_EXPORTER_OTLP_ENDPOINT', 'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT']) {
      for (const endpoint of [
        `https://apikey:${PASSWORD}@collector.example:4318 `,
        `https://apikey:${PASSWORD}@collector.example:4318`,
        `https://collector.example:4318/?api_key=${PASSWORD}`,
        `https://collector.example:4318/#${PASSWORD}`,
      ]) {
        const message = problem(name, endpoint);
        assert.ok(!message.includes(PASSWORD), message);
        assert.ok(message.includes(name), message);
      }
      assert.match(
        problem(name, `https://apikey:${PASSWORD}@collector.example:4318`),
        /OTEL_EXPORTER_OTLP_HEADERS/,
      );
    }
    const config = loadConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://jaeger:4318' });
    assert.equal(config.telemetry.tracesExporter, 'otlp');
    assert.equal(config.telemetry.otlpTracesUrl, 'http://jaeger:4318/v1/traces');
  });

  void it('names the Vault credential settings when the Vault address carries credentials', () => {
    assert.throws(
      () =>
        loadConfig({
          E4C2_KEK_VAULT_ADDR: `https://u:${PASSWORD}@vault:8200`,
          E4C2_KEK_VAULT_TOKEN: 't',
        }),
      (err: Error) =>
        !err.message.includes(PASSWORD) && /E4C2_KEK_VAULT_TOKEN or the AppRole/.test(err.message),
    );
  });

  void it('keeps a DATABASE_URL password out of error messages, however the URL is wrong', () => {
    const badUrls = [
      `postgres://c2:${PASSWORD}@db.internal:notaport/e4`,
      `mysql://c2:${PASSWORD}@db.internal/e4`,
      `postgres:c2:${PASSWORD}@db.internal/e4`,
      `c2:${PASSWORD}@db.internal`,
    ];
    for (const url of badUrls) {
      let error: ConfigError | undefined;
      try {
        loadConfig({ DATABASE_URL: url, E4C2_DB_POOL_MAX: 'x', E4C2_KEK_FILE: '/k' });
      } catch (err) {
        error = err as ConfigError;
      }
      assert.ok(error !== undefined, url);
      assert.equal(error.problems.length, 2, url);
      assert.match(error.problems[0] ?? '', /^DATABASE_URL: /);
      for (const text of [
        error.message,
        ...error.problems,
        inspect(error),
        JSON.stringify(error),
      ]) {
        assert.ok(!text.includes(PASSWORD), text);
      }
    }
  });

  void it('rejects credentials inside MQTT_URL without echoing them', () => {
    let message = '';
    try {
      loadConfig({ MQTT_URL: `mqtt://c2:${PASSWORD}@broker:1883` });
    } catch (err) {
      message = (err as Error).message;
    }
    assert.match(message, /MQTT_URL: must not contain credentials/);
    assert.ok(!message.includes(PASSWORD));
  });

  void it('shows file values of secret settings as redacted too', () => {
    const file = JSON.stringify({ redis: { url: `redis://:${PASSWORD}@r:6379` } });
    const config = loadConfig({}, file);
    assert.ok(!JSON.stringify(describeConfig(config)).includes(PASSWORD));
    assert.ok(!inspect(config, { depth: Infinity }).includes(PASSWORD));
  });
});
