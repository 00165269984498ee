/** The composition root's reading of the API credentials file and client CA. */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { pino } from 'pino';
import { loadConfig } from '../../cluster/config/index.ts';
import { ensureSelfSignedCert } from '../../cluster/embedded/index.ts';
import { C2Error } from '../../cluster/errors.ts';
import { apiAuthMaterial } from '../api-auth.ts';
import { startC2Node, tlsMaterial } from '../c2-node.ts';

void describe('API authentication material', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'e4c2-api-auth-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  void it('without a credentials file: no authenticator, and a note saying so', async () => {
    const material = await apiAuthMaterial(loadConfig({}));
    assert.equal(material.authenticate, undefined);
    assert.match(material.note, /authentication is off/);
  });

  void it('with a file: an authenticator that refuses an anonymous caller', async () => {
    const file = join(dir, 'credentials.json');
    await writeFile(
      file,
      JSON.stringify({ tokens: [{ name: 'a', role: 'admin', sha256: 'a'.repeat(64) }] }),
    );
    const material = await apiAuthMaterial(loadConfig({ E4C2_API_CREDENTIALS_FILE: file }));
    assert.match(material.note, /1 token\(s\)/);
    assert.ok(material.authenticate !== undefined);
    const authenticate = material.authenticate;
    assert.throws(
      () =>
        authenticate({
          transport: 'http',
          operation: 'GetClients',
          peer: undefined,
          header: () => undefined,
        }),
      (err: unknown) => C2Error.is(err, 'C2_UNAUTHENTICATED'),
    );
  });

  void it('a missing or malformed file is C2_CONFIG naming the file, not its content', async () => {
    const missing = join(dir, 'absent.json');
    await assert.rejects(
      apiAuthMaterial(loadConfig({ E4C2_API_CREDENTIALS_FILE: missing })),
      (err: unknown) => C2Error.is(err, 'C2_CONFIG') && String(err).includes('ENOENT'),
    );
    const malformed = join(dir, 'malformed.json');
    await writeFile(malformed, '{"tokens": [{"name": "secret-looking-value"');
    await assert.rejects(
      apiAuthMaterial(loadConfig({ E4C2_API_CREDENTIALS_FILE: malformed })),
      (err: unknown) =>
        C2Error.is(err, 'C2_CONFIG') && !String(err).includes('secret-looking-value'),
    );
  });

  void it('a client CA file without a certificate is refused at start, naming the setting', async () => {
    // It was accepted, and every client's handshake was then refused for good.
    const tls = await ensureSelfSignedCert(join(dir, 'tls'));
    const config = (clientCa: string) =>
      loadConfig({
        E4C2_TLS_CERT: tls.certPath,
        E4C2_TLS_KEY: tls.keyPath,
        E4C2_TLS_CLIENT_CA: clientCa,
      });
    const notPem = join(dir, 'not-a-ca.json');
    await writeFile(notPem, '{"tokens": []}');
    await assert.rejects(apiAuthMaterial(config(notPem)), (err: unknown) => {
      assert.ok(C2Error.is(err, 'C2_CONFIG'));
      assert.match(err.message, /E4C2_TLS_CLIENT_CA\) holds no PEM certificate/);
      return true;
    });
    const damaged = join(dir, 'damaged.pem');
    await writeFile(damaged, '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n');
    await assert.rejects(apiAuthMaterial(config(damaged)), /holds a damaged PEM certificate/);
    const material = await apiAuthMaterial(config(tls.certPath));
    assert.match(material.note, /mutual TLS required/, 'the banner says so, authentication off');
  });

  void it('a TLS file that cannot be read is C2_CONFIG naming its setting', async () => {
    const tls = await ensureSelfSignedCert(join(dir, 'tls-files'));
    const missing = join(dir, 'absent-cert.pem');
    await assert.rejects(
      tlsMaterial(loadConfig({ E4C2_TLS_CERT: missing, E4C2_TLS_KEY: tls.keyPath })),
      (err: unknown) => {
        assert.ok(C2Error.is(err, 'C2_CONFIG'), String(err));
        assert.equal(err.message, `cannot read ${missing} (E4C2_TLS_CERT): ENOENT`);
        return true;
      },
    );
    const material = await tlsMaterial(
      loadConfig({ E4C2_TLS_CERT: tls.certPath, E4C2_TLS_KEY: tls.keyPath }),
    );
    assert.match(material.tls?.cert ?? '', /BEGIN CERTIFICATE/);
  });

  void it('a node refuses an unreadable TLS file before it connects to the database', async () => {
    const tls = await ensureSelfSignedCert(join(dir, 'tls-order'));
    const missing = join(dir, 'absent-key.pem');
    const kekFile = join(dir, 'kek-order.key');
    await writeFile(kekFile, randomBytes(32).toString('hex'), { mode: 0o600 });
    const config = loadConfig({
      E4C2_ROLE: 'api',
      // Nothing listens there: reaching it would fail with another error (and after retries).
      DATABASE_URL: 'postgres://127.0.0.1:1/none',
      REDIS_URL: 'redis://127.0.0.1:1',
      E4C2_KEK_FILE: kekFile,
      E4C2_TLS_CERT: tls.certPath,
      E4C2_TLS_KEY: missing,
    });
    await assert.rejects(startC2Node(config, pino({ level: 'silent' })), (err: unknown) => {
      assert.ok(C2Error.is(err, 'C2_CONFIG'), String(err));
      assert.equal(err.message, `cannot read ${missing} (E4C2_TLS_KEY): ENOENT`);
      return true;
    });
  });

  void it('a client CA without TLS is a configuration problem', () => {
    assert.throws(
      () =>
        loadConfig({
          DATABASE_URL: 'postgres://127.0.0.1/test',
          E4C2_KEK_FILE: '/dev/null',
          E4C2_TLS_CLIENT_CA: '/etc/ca.pem',
        }),
      /E4C2_TLS_CLIENT_CA \(tls.clientCaFile\) needs TLS/,
    );
  });
});
