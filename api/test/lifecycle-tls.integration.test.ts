/**
 * The node around the operations: TLS on both surfaces, start-up failures, probes and
 * grpc.health.v1, the authentication seam, internal errors, and graceful shutdown.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { credentials, Metadata, status, type ServiceError } from '@grpc/grpc-js';
import { ensureSelfSignedCert } from '../../cluster/embedded/index.ts';
import { C2Error } from '../../cluster/errors.ts';
import { eventually } from '../../cluster/test/support/eventually.ts';
import {
  requiredChecksPass,
  runReadinessChecks,
  type ReadinessCheck,
} from '../../cluster/telemetry/index.ts';
import { ApiServer } from '../index.ts';
import {
  GrpcTestClient,
  httpCall,
  MemoryLogger,
  startApi,
  type ApiHarness,
  type Message,
} from './support/api-harness.ts';

async function occupiedPort(): Promise<{ server: Server; port: number }> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  assert.ok(address !== null && typeof address === 'object', 'bound');
  return { server, port: address.port };
}

void describe('TLS', () => {
  let dir: string;
  let a: ApiHarness;
  let cert: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'e4c2-api-tls-'));
    const pair = await ensureSelfSignedCert(dir);
    cert = await readFile(pair.certPath, 'utf8');
    a = await startApi({ api: { tls: { cert, key: await readFile(pair.keyPath, 'utf8') } } });
  });
  after(async () => {
    await a.close();
    await rm(dir, { recursive: true, force: true });
  });

  void it('a gRPC client that trusts the certificate connects to 127.0.0.1 as localhost', async () => {
    const client = new GrpcTestClient(
      `127.0.0.1:${a.api.grpcAddress.port}`,
      'pb.C2',
      credentials.createSsl(Buffer.from(cert)),
      { 'grpc.ssl_target_name_override': 'localhost' },
    );
    try {
      assert.deepEqual(await client.call('HealthCheck'), { Code: '0', Status: 'OK' });
      assert.deepEqual(await client.call('CountClients'), { count: '0' });
    } finally {
      client.close();
    }
  });

  void it('a plain-text gRPC client cannot talk to it', async () => {
    const client = new GrpcTestClient(`127.0.0.1:${a.api.grpcAddress.port}`, 'pb.C2');
    try {
      await assert.rejects(
        client.call('HealthCheck'),
        (err: ServiceError) => err.code === status.UNAVAILABLE,
      );
    } finally {
      client.close();
    }
  });

  void it('HTTPS with the certificate as CA; a client that does not trust it is refused', async () => {
    const port = a.api.httpAddress.port;
    const res = await httpCall(port, 'GET', '/e4/health-check', { ca: cert });
    assert.equal(res.text, '{"Code":"0","Status":"OK"}');
    await assert.rejects(httpCall(port, 'GET', '/e4/health-check', { ca: '' }));
  });

  void it('an unusable certificate and key is a C2_CONFIG error at start', async () => {
    const log = new MemoryLogger();
    await assert.rejects(
      ApiServer.start({
        service: a.h.service,
        grpc: { host: '127.0.0.1', port: 0 },
        http: { host: '127.0.0.1', port: 0 },
        tls: { cert, key: 'not a key' },
        readiness: () => Promise.resolve({ ready: true, checks: {} }),
        logger: log,
      }),
      (err: unknown) => C2Error.is(err, 'C2_CONFIG'),
    );
  });
});

void describe('the node', () => {
  let a: ApiHarness;
  before(async () => {
    a = await startApi({
      api: {
        readinessTimeoutMs: 200,
        authenticate: (request) => {
          if (request.header('authorization') === 'Bearer wrong')
            throw new C2Error('C2_UNAUTHENTICATED', 'bad token');
          return `${request.transport}:${request.header('x-operator') ?? 'anonymous'}`;
        },
      },
    });
  });
  after(async () => {
    await a.close();
  });

  void it('a port in use is a clear C2_UNAVAILABLE error, and nothing stays bound', async () => {
    const taken = await occupiedPort();
    try {
      const start = (grpcPort: number, httpPort: number): Promise<ApiServer> =>
        ApiServer.start({
          service: a.h.service,
          grpc: { host: '127.0.0.1', port: grpcPort },
          http: { host: '127.0.0.1', port: httpPort },
          readiness: () => Promise.resolve({ ready: true, checks: {} }),
          logger: new MemoryLogger(),
        });
      await assert.rejects(start(taken.port, 0), (err: unknown) => {
        assert.ok(C2Error.is(err, 'C2_UNAVAILABLE'));
        assert.equal(err.message, `port ${taken.port} on 127.0.0.1 is already in use (gRPC)`);
        return true;
      });
      const free = await occupiedPort();
      const grpcPort = free.port;
      await new Promise<void>((resolve) =>
        free.server.close(() => {
          resolve();
        }),
      );
      await assert.rejects(start(grpcPort, taken.port), (err: unknown) => {
        assert.ok(C2Error.is(err, 'C2_UNAVAILABLE'));
        assert.equal(err.message, `port ${taken.port} on 127.0.0.1 is already in use (HTTP)`);
        return true;
      });
      // The gRPC listener of the failed start was closed again.
      const again = await start(grpcPort, 0);
      await again.close(1000);
    } finally {
      await new Promise<void>((resolve) =>
        taken.server.close(() => {
          resolve();
        }),
      );
    }
  });

  void it('/healthz is always 200; /readyz and grpc.health.v1 follow readiness and setReady', async () => {
    const health = new GrpcTestClient(
      `127.0.0.1:${a.api.grpcAddress.port}`,
      'grpc.health.v1.Health',
    );
    try {
      assert.deepEqual((await a.http('GET', '/healthz')).json, { status: 'ok' });
      // Probes answer HEAD with the status and no body; operations still refuse it.
      for (const probe of ['/healthz', '/readyz']) {
        const head = await a.http('HEAD', probe);
        assert.equal(head.status, 200, probe);
        assert.equal(head.text, '', `${probe}: no body`);
      }
      assert.equal((await a.http('HEAD', '/e4/clients')).status, 405);
      const ready = await a.http('GET', '/readyz');
      assert.equal(ready.status, 200);
      assert.deepEqual(ready.json, { ready: true, checks: { postgres: { ok: true } } });
      assert.deepEqual(await health.call('Check', {}), { status: 'SERVING' });
      assert.deepEqual(await health.call('Check', { service: 'pb.C2' }), { status: 'SERVING' });
      await assert.rejects(
        health.call('Check', { service: 'nope' }),
        (e: ServiceError) => e.code === status.NOT_FOUND,
      );
      // A name too long to echo in a trailer: the answer (and the connection) hung until the deadline.
      await assert.rejects(
        health.call('Check', { service: 'x'.repeat(100_000) }),
        (e: ServiceError) => {
          assert.equal(e.code, status.NOT_FOUND, e.message);
          assert.match(e.details, /^unknown service x{64}… \(100000 characters\)$/);
          return true;
        },
      );
      assert.deepEqual(
        await health.call('Check', {}),
        { status: 'SERVING' },
        'connection still usable',
      );

      a.setReadiness({
        ready: false,
        checks: { postgres: { ok: true }, mqtt: { ok: false, message: 'connection refused' } },
      });
      const down = await a.http('GET', '/readyz');
      assert.equal(down.status, 503);
      assert.deepEqual(down.json, {
        ready: false,
        checks: { postgres: { ok: true }, mqtt: { ok: false, message: 'connection refused' } },
      });
      assert.deepEqual(await health.call('Check', {}), { status: 'NOT_SERVING' });
      assert.equal((await a.http('GET', '/healthz')).status, 200);

      a.setReadiness({ ready: false, checks: { postgres: true, mqtt: false } });
      assert.deepEqual((await a.http('GET', '/readyz')).json, {
        ready: false,
        checks: { postgres: { ok: true }, mqtt: { ok: false } },
      });

      a.setReadiness({ ready: true, checks: { postgres: { ok: true } } });
      a.api.setReady(false);
      const draining = await a.http('GET', '/readyz');
      assert.equal(draining.status, 503);
      assert.deepEqual((draining.json as { checks: Message }).checks['api'], {
        ok: false,
        message: 'this node is draining',
      });
      assert.deepEqual(await health.call('Check', {}), { status: 'NOT_SERVING' });
      a.api.setReady(true);
      assert.equal((await a.http('GET', '/readyz')).status, 200);

      // Watch: the status at once, then each change; an unknown service is SERVICE_UNKNOWN.
      const stream = health.stream('Watch', {});
      const seen: string[] = [];
      stream.on('data', (m: Message) => seen.push(String(m['status'])));
      stream.on('error', () => undefined);
      await eventually(() => {
        assert.deepEqual(seen, ['SERVING']);
      });
      a.api.setReady(false);
      await eventually(() => {
        assert.deepEqual(seen, ['SERVING', 'NOT_SERVING']);
      });
      a.api.setReady(true);
      await eventually(() => {
        assert.deepEqual(seen, ['SERVING', 'NOT_SERVING', 'SERVING']);
      });
      stream.cancel();
      const unknown = health.stream('Watch', { service: 'no.Such' });
      const first = await new Promise<Message>((resolve) => unknown.once('data', resolve));
      assert.deepEqual(first, { status: 'SERVICE_UNKNOWN' });
      unknown.cancel();
      unknown.on('error', () => undefined);
    } finally {
      health.close();
    }
  });

  void it('a silent dependency that is not required leaves the API ready, and is named', async () => {
    // The node's own composition: each check bounded by READINESS_CHECK_TIMEOUT_MS, the API's
    // bound around the whole (default). With the two equal, the outer one fired first: every
    // API node went unready when the queue Redis went silent, and the balancers dropped them all.
    const checks: ReadinessCheck[] = [
      { name: 'postgres', ok: () => Promise.resolve(true) },
      { name: 'redis', ok: () => new Promise<never>(() => undefined), required: false },
    ];
    const api = await ApiServer.start({
      service: a.h.service,
      grpc: { host: '127.0.0.1', port: 0 },
      http: { host: '127.0.0.1', port: 0 },
      readiness: async () => {
        const results = await runReadinessChecks(checks);
        return { ready: requiredChecksPass(checks, results), checks: results };
      },
      logger: new MemoryLogger(),
    });
    try {
      const res = await httpCall(api.httpAddress.port, 'GET', '/readyz');
      assert.equal(res.status, 200, res.text);
      const body = res.json as { ready: boolean; checks: Record<string, { ok: boolean }> };
      assert.deepEqual(body.checks['redis'], { ok: false }, 'the silent dependency is named');
    } finally {
      await api.close(1000);
    }
  });

  void it('a readiness function that hangs or throws reports not ready', async () => {
    const log = new MemoryLogger();
    for (const readiness of [
      () => new Promise<never>(() => undefined),
      () => Promise.reject(new Error('boom')),
    ]) {
      const api = await ApiServer.start({
        service: a.h.service,
        grpc: { host: '127.0.0.1', port: 0 },
        http: { host: '127.0.0.1', port: 0 },
        readiness,
        readinessTimeoutMs: 100,
        logger: log,
      });
      try {
        const res = await httpCall(api.httpAddress.port, 'GET', '/readyz');
        assert.equal(res.status, 503);
        assert.equal((res.json as { ready: boolean }).ready, false);
      } finally {
        await api.close(1000);
      }
    }
  });

  void it('authenticate is the seam: its actor reaches the audit log; its refusal is 401', async () => {
    const res = await a.http('POST', '/e4/topic/audited', { headers: { 'x-operator': 'ops-1' } });
    assert.equal(res.status, 200, res.text);
    const { rows } = await a.h.schema.pool.query<{ actor: string }>(
      "SELECT actor FROM audit_log WHERE subject = 'audited'",
    );
    assert.deepEqual(rows, [{ actor: 'http:ops-1' }]);
    const refused = await a.http('GET', '/e4/clients', {
      headers: { authorization: 'Bearer wrong' },
    });
    assert.equal(refused.status, 401);
    const v1 = await a.http('GET', '/v1/clients', { headers: { authorization: 'Bearer wrong' } });
    assert.equal((v1.json as { error: { code: string } }).error.code, 'C2_UNAUTHENTICATED');
  });

  void it('internal errors reach clients as a generic message with the request id, and the logs', async () => {
    const service = a.h.service;
    const original = service.countClients.bind(service);
    service.countClients = () => Promise.reject(new Error('password=hunter2 refused'));
    try {
      const res = await a.http('GET', '/e4/clients/count');
      assert.equal(res.status, 500);
      const requestId = String(res.headers['x-request-id']);
      const message = `internal error; see the server logs (request id ${requestId})`;
      assert.equal((res.json as { error: string; code: number }).error, message);
      assert.equal((res.json as { code: number }).code, 13);
      assert.ok(!res.text.includes('hunter2'), 'no secret in the response');
      const logged = a.log.lines.find(
        (l) => l.level === 'error' && l.obj['requestId'] === requestId,
      );
      assert.ok(logged, 'the failure is logged with its request id');
      assert.match((logged.obj['err'] as Error).message, /hunter2/);

      await assert.rejects(a.grpc.call('CountClients'), (err: ServiceError) => {
        assert.equal(err.code, 13);
        assert.match(
          err.details,
          /^internal error; see the server logs \(request id [0-9a-f-]+\)$/,
        );
        assert.equal(err.metadata.get('e4c2-error-code')[0], 'C2_INTERNAL');
        return true;
      });
    } finally {
      service.countClients = original;
    }
  });
});

void describe('graceful shutdown', () => {
  void it('finishes in-flight requests, ends event streams with OK, then refuses', async () => {
    let delay = 0;
    // Each slow request says when the server holds it, so the shutdown starts while both are
    // in flight (a fixed sleep could fire before a loaded server has even read them).
    let slowEntered = 0;
    const a = await startApi({
      api: {
        authenticate: async (request) => {
          if (request.header('x-slow') !== undefined) {
            slowEntered++;
            await sleep(delay);
          }
          return 'test';
        },
      },
    });
    try {
      const stream = a.grpc.stream('SubscribeToEventStream');
      const streamStatus = new Promise<number>((resolve) => {
        stream.on('status', (s: { code: number }) => {
          resolve(s.code);
        });
        stream.on('error', () => undefined);
        stream.on('data', () => undefined);
      });
      await eventually(() => {
        assert.ok(
          a.log.lines.some((l) => l.msg === 'event stream opened'),
          'stream opened',
        );
      });
      delay = 1000;
      const slowHttp = a.http('GET', '/e4/clients/count', { headers: { 'x-slow': '1' } });
      const slowGrpc = a.grpc.call('CountTopics', {}, slowMetadata());
      await eventually(() => {
        assert.equal(slowEntered, 2, 'both slow requests in flight');
      });
      const closing = a.api.close(5000);
      const [httpRes, grpcRes] = await Promise.all([slowHttp, slowGrpc]);
      assert.equal(httpRes.status, 200);
      assert.deepEqual(grpcRes, { count: '0' });
      assert.equal(await streamStatus, 0);
      await closing;
      await assert.rejects(a.http('GET', '/healthz'));
    } finally {
      await a.close();
    }
  });

  void it('cuts what is still running after the timeout', async () => {
    const a = await startApi({
      api: {
        authenticate: async (request) => {
          if (request.header('x-slow') !== undefined) await sleep(3000);
          return 'test';
        },
      },
    });
    try {
      const slow = a.http('GET', '/e4/clients/count', { headers: { 'x-slow': '1' } }).then(
        (r) => r.status,
        () => 'cut',
      );
      await sleep(100);
      const started = Date.now();
      await a.api.close(200);
      assert.ok(Date.now() - started < 1500, `closed in ${Date.now() - started} ms`);
      assert.equal(await slow, 'cut');
    } finally {
      await a.close();
    }
  });
});

function slowMetadata(): Metadata {
  const metadata = new Metadata();
  metadata.set('x-slow', '1');
  return metadata;
}
