/**
 * Authentication end to end: bearer tokens with roles on gRPC and HTTP, the actor in the audit
 * log, and mutual TLS with client certificates issued by a configured CA.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { credentials as grpcCredentials, Metadata, status, type ServiceError } from '@grpc/grpc-js';
import { ensureSelfSignedCert } from '../../cluster/embedded/index.ts';
import { credentialAuthenticator, newToken, parseApiCredentials } from '../auth/index.ts';
import { GrpcTestClient, httpCall, startApi, type ApiHarness } from './support/api-harness.ts';
import { createTestClientCa, type TestClientCa } from './support/client-ca.ts';
import { startMutualTlsApi } from './support/mutual-tls-api.ts';

function bearer(token: string): Metadata {
  const metadata = new Metadata();
  metadata.set('authorization', `Bearer ${token}`);
  return metadata;
}

function grpcError(code: number, errorCode: string) {
  return (err: ServiceError): boolean => {
    assert.equal(err.code, code);
    assert.equal(err.metadata.get('e4c2-error-code')[0], errorCode);
    return true;
  };
}

void describe('bearer tokens', () => {
  const reader = newToken();
  const operator = newToken();
  const admin = newToken();
  let a: ApiHarness;
  before(async () => {
    const creds = parseApiCredentials(
      JSON.stringify({
        tokens: [
          { name: 'dashboard', role: 'read-only', sha256: reader.sha256 },
          { name: 'ops-alice', role: 'operator', sha256: operator.sha256 },
          { name: 'root', role: 'admin', sha256: admin.sha256 },
        ],
      }),
    );
    a = await startApi({
      api: {
        authenticate: credentialAuthenticator(creds),
        idempotencyPerActor: true,
        consoleDir: fileURLToPath(new URL('../../web/', import.meta.url)),
      },
    });
  });
  after(async () => {
    await a.close();
  });

  void it('gRPC: no token is UNAUTHENTICATED; a read-only token reads but cannot create', async () => {
    await assert.rejects(
      a.grpc.call('CountClients'),
      grpcError(status.UNAUTHENTICATED, 'C2_UNAUTHENTICATED'),
    );
    assert.deepEqual(await a.grpc.call('CountClients', {}, bearer(reader.token)), { count: '0' });
    await assert.rejects(
      a.grpc.call('NewTopic', { topic: 'denied' }, bearer(reader.token)),
      grpcError(status.PERMISSION_DENIED, 'C2_PERMISSION_DENIED'),
    );
    assert.deepEqual(await a.grpc.call('CountTopics', {}, bearer(admin.token)), { count: '0' });
  });

  void it('HTTP: 401 without a token, 403 for a role too weak, and the actor in the audit log', async () => {
    assert.equal((await a.http('GET', '/e4/clients')).status, 401);
    const weak = await a.http('POST', '/e4/topic/audited-topic', {
      headers: { authorization: `Bearer ${reader.token}` },
    });
    assert.equal(weak.status, 403, weak.text);
    const v1 = await a.http('DELETE', '/v1/clients/nobody', {
      headers: { authorization: `Bearer ${operator.token}` },
    });
    assert.equal((v1.json as { error: { code: string } }).error.code, 'C2_PERMISSION_DENIED');
    // NewTopic is the reference's rotation too: an operator may rotate, only an admin create.
    const create = (token: string) =>
      a.http('POST', '/e4/topic/audited-topic', { headers: { authorization: `Bearer ${token}` } });
    const refused = await create(operator.token);
    assert.equal(refused.status, 403, refused.text);
    assert.match(refused.text, /creating one needs admin/);
    assert.equal((await create(admin.token)).status, 200);
    const rotated = await create(operator.token);
    assert.equal(rotated.status, 200, rotated.text);
    // Our NewTopic follows the same rule, and says what it did.
    const v1Create = (token: string, topic: string) =>
      a.http('POST', `/v1/topics/${topic}`, { headers: { authorization: `Bearer ${token}` } });
    const v1Refused = await v1Create(operator.token, 'v1-audited-topic');
    assert.equal(v1Refused.status, 403, v1Refused.text);
    assert.match(v1Refused.text, /creating one needs admin/);
    const v1Rotated = await v1Create(operator.token, 'audited-topic');
    assert.equal(v1Rotated.status, 200, v1Rotated.text);
    assert.equal((v1Rotated.json as { created: boolean }).created, false);
    assert.equal((await v1Create(reader.token, 'audited-topic')).status, 403);
    const { rows } = await a.h.schema.pool.query<{ actor: string; operation: string }>(
      "SELECT actor, operation FROM audit_log WHERE subject = 'audited-topic' ORDER BY id",
    );
    assert.deepEqual(rows, [
      { actor: 'token:root', operation: 'NewTopic' },
      { actor: 'token:ops-alice', operation: 'RotateTopicKey' },
      { actor: 'token:ops-alice', operation: 'RotateTopicKey' },
    ]);
  });

  void it('a call refused or failed after authentication is logged with its actor', async () => {
    const missing = `no-such-client-${Date.now()}`;
    const http = await a.http('DELETE', `/v1/clients/${missing}`, {
      headers: { authorization: `Bearer ${admin.token}` },
    });
    assert.equal(http.status, 404, http.text);
    await assert.rejects(
      a.grpc.call('CountTopicsForClient', { client: { name: missing } }, bearer(reader.token)),
      grpcError(status.NOT_FOUND, 'C2_NOT_FOUND'),
    );
    const rejected = a.log.lines.filter(
      (l) =>
        (l.msg === 'request rejected' || l.msg === 'call rejected') &&
        l.obj['code'] === 'C2_NOT_FOUND',
    );
    assert.deepEqual(
      rejected.slice(-2).map((l) => [l.msg, l.obj['actor']]),
      [
        ['request rejected', 'token:root'],
        ['call rejected', 'token:dashboard'],
      ],
    );
  });

  void it('the reference health checks answer without credentials, on both transports', async () => {
    const http = await a.http('GET', '/e4/health-check');
    assert.equal(http.status, 200, http.text);
    assert.equal(http.text, '{"Code":"0","Status":"OK"}');
    assert.deepEqual(await a.grpc.call('HealthCheck'), { Code: '0', Status: 'OK' });
  });

  void it('idempotency keys are per caller: one caller neither replays nor blocks another', async () => {
    const headers = (token: string) => ({
      authorization: `Bearer ${token}`,
      'idempotency-key': 'shared-key-1',
    });
    for (const topic of ['idem-a', 'idem-c']) {
      const made = await a.http('POST', `/e4/topic/${topic}`, {
        headers: { authorization: `Bearer ${admin.token}` },
      });
      assert.equal(made.status, 200, made.text);
    }
    const first = await a.http('POST', '/e4/topic/idem-a', { headers: headers(operator.token) });
    assert.equal(first.status, 200, first.text);
    const other = await a.http('POST', '/e4/topic/idem-b', { headers: headers(admin.token) });
    assert.equal(other.status, 200, other.text);
    const retry = await a.http('POST', '/e4/topic/idem-a', { headers: headers(operator.token) });
    assert.equal(retry.status, 200, retry.text);
    const reused = await a.http('POST', '/e4/topic/idem-c', { headers: headers(operator.token) });
    assert.equal(reused.status, 409, 'same caller, same key, another request');
    const { rows } = await a.h.schema.pool.query<{ subject: string; actor: string }>(
      "SELECT subject, actor FROM audit_log WHERE subject LIKE 'idem-%' AND request_id IS NOT NULL ORDER BY subject",
    );
    assert.deepEqual(rows, [
      { subject: 'idem-a', actor: 'token:ops-alice' },
      { subject: 'idem-b', actor: 'token:root' },
    ]);
  });

  void it('the web console is public; the API calls it makes are not', async () => {
    const page = await a.http('GET', '/console/');
    assert.equal(page.status, 200);
    assert.match(page.text, /E4 C2 console/);
    assert.equal((await a.http('GET', '/v1/topics')).status, 401);
  });

  void it('a refused request changes nothing', async () => {
    const before = await a.http('GET', '/e4/topics/count', {
      headers: { authorization: `Bearer ${reader.token}` },
    });
    await a.http('POST', '/e4/topic/never-created', {
      headers: { authorization: `Bearer ${reader.token}` },
    });
    const afterwards = await a.http('GET', '/e4/topics/count', {
      headers: { authorization: `Bearer ${reader.token}` },
    });
    assert.deepEqual(afterwards.json, before.json);
  });
});

void describe('mutual TLS', () => {
  let dir: string;
  let ca: TestClientCa;
  let serverCert: string;
  let a: ApiHarness;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'e4c2-mtls-'));
    ca = createTestClientCa();
    const pair = await ensureSelfSignedCert(dir);
    serverCert = await readFile(pair.certPath, 'utf8');
    a = await startMutualTlsApi(
      { cert: serverCert, key: await readFile(pair.keyPath, 'utf8') },
      ca,
    );
  });
  after(async () => {
    await a.close();
    ca.dispose();
    await rm(dir, { recursive: true, force: true });
  });

  void it('HTTPS: a listed certificate is its role; no certificate or a foreign one cannot connect', async () => {
    const port = a.api.httpAddress.port;
    const automation = ca.issue('automation');
    const ok = await httpCall(port, 'POST', '/e4/topic/mtls-topic', {
      ca: serverCert,
      clientCert: automation,
    });
    assert.equal(ok.status, 200, ok.text);
    const auditor = await httpCall(port, 'POST', '/e4/topic/mtls-denied', {
      ca: serverCert,
      clientCert: ca.issue('auditor'),
    });
    assert.equal(auditor.status, 403);
    const unlisted = await httpCall(port, 'GET', '/e4/topics', {
      ca: serverCert,
      clientCert: ca.issue('stranger'),
    });
    assert.equal(unlisted.status, 401);
    await assert.rejects(httpCall(port, 'GET', '/e4/topics', { ca: serverCert }));
    await assert.rejects(
      httpCall(port, 'GET', '/e4/topics', {
        ca: serverCert,
        clientCert: ca.selfSigned('automation'),
      }),
    );
  });

  void it('gRPC: the client certificate authenticates the channel', async () => {
    const target = `127.0.0.1:${a.api.grpcAddress.port}`;
    const options = { 'grpc.ssl_target_name_override': 'localhost' };
    const automation = ca.issue('automation');
    const client = new GrpcTestClient(
      target,
      'pb.C2',
      grpcCredentials.createSsl(
        Buffer.from(serverCert),
        Buffer.from(automation.key),
        Buffer.from(automation.cert),
      ),
      options,
    );
    const anonymous = new GrpcTestClient(
      target,
      'pb.C2',
      grpcCredentials.createSsl(Buffer.from(serverCert)),
      options,
    );
    try {
      assert.deepEqual(await client.call('NewTopic', { topic: 'grpc-mtls' }), {});
      await assert.rejects(anonymous.call('CountTopics'), (err: ServiceError) => {
        assert.equal(err.code, status.UNAVAILABLE);
        return true;
      });
    } finally {
      client.close();
      anonymous.close();
    }
  });
});
