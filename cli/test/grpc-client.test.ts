// The real gRPC client against an in-process gRPC server built from the same .proto files (no
// database): metadata and request ids on the wire, TLS with --cert / --servername, plaintext,
// deadlines, Ctrl-C, the health fallback, streams, and the exit codes of each failure.
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import {
  Server,
  ServerCredentials,
  status,
  type Metadata,
  type ServerUnaryCall,
  type ServerWritableStream,
  type sendUnaryData,
  type UntypedServiceImplementation,
} from '@grpc/grpc-js';
import { loadSync, type ServiceDefinition } from '@grpc/proto-loader';
import { ExitCode } from '../errors.ts';
import { GrpcC2Api } from '../grpc-client.ts';
import { runCli } from '../run.ts';
import { createTestClientCa, type TestClientCa } from './support/client-ca.ts';
import { selfSignedCert } from './support/tls.ts';

const PROTO_DIR = fileURLToPath(new URL('../../api/proto/', import.meta.url));
const protos = loadSync(['c2.proto', 'e4c2_v1.proto', 'automation_v1.proto', 'health.proto'], {
  keepCase: true,
  longs: String,
  enums: String,
  defaults: true,
  includeDirs: [PROTO_DIR],
});

function service(name: string): ServiceDefinition {
  const definition = protos[name];
  assert.ok(definition !== undefined && !('format' in definition), name);
  return definition;
}

/** What the fake server saw. */
interface Seen {
  method: string;
  request: Record<string, unknown>;
  metadata: Metadata;
}

type Handler = (request: Record<string, unknown>) => object | Promise<object>;

function grpcFailure(code: status, details: string): Error {
  return Object.assign(new Error(details), { code, details });
}

/** A gRPC server with pb.C2, C2Admin and C2Automation (optionally health) answering from `handlers`. */
class FakeServer {
  readonly seen: Seen[] = [];
  readonly handlers = new Map<string, Handler>();
  readonly server = new Server();
  healthStatus: string | undefined = 'SERVING';
  port = 0;

  constructor(withHealth: boolean) {
    for (const name of ['pb.C2', 'e4c2.v1.C2Admin', 'e4c2.v1.C2Automation']) {
      const definition = service(name);
      const implementation: UntypedServiceImplementation = {};
      for (const [method, spec] of Object.entries(definition)) {
        implementation[method] = spec.responseStream
          ? (call: ServerWritableStream<Record<string, unknown>, object>) => {
              this.seen.push({ method, request: call.request, metadata: call.metadata });
              this.stream(method, call);
            }
          : (
              call: ServerUnaryCall<Record<string, unknown>, object>,
              callback: sendUnaryData<object>,
            ) => {
              this.seen.push({ method, request: call.request, metadata: call.metadata });
              this.answer(method, call.request, callback);
            };
      }
      this.server.addService(definition, implementation);
    }
    if (withHealth) {
      this.server.addService(service('grpc.health.v1.Health'), {
        Check: (_call: ServerUnaryCall<object, object>, callback: sendUnaryData<object>) => {
          this.seen.push({ method: 'Health/Check', request: {}, metadata: _call.metadata });
          callback(null, { status: this.healthStatus });
        },
      });
    }
  }

  private answer(
    method: string,
    request: Record<string, unknown>,
    callback: sendUnaryData<object>,
  ): void {
    const handler = this.handlers.get(method);
    if (handler === undefined) {
      callback(null, {});
      return;
    }
    Promise.resolve()
      .then(() => handler(request))
      .then(
        (value) => {
          callback(null, value);
        },
        (err: unknown) => {
          callback(err as Error);
        },
      );
  }

  private stream(
    method: string,
    call: ServerWritableStream<Record<string, unknown>, object>,
  ): void {
    if (method === 'SubscribeToEventStream') {
      call.write({
        type: 'CLIENT_SUBSCRIBED',
        source: 'c',
        target: 't',
        timestamp: { seconds: 1700000000, nanos: 0 },
      });
      call.end();
      return;
    }
    call.write({
      seq: '5',
      at: '2025-01-01T00:00:00Z',
      type: 'topic.rotated',
      topic: 't',
      key_version: 2,
    });
    call.end();
  }

  async start(credentials: ServerCredentials): Promise<void> {
    this.port = await new Promise<number>((resolve, reject) => {
      this.server.bindAsync('127.0.0.1:0', credentials, (err, port) => {
        if (err === null) resolve(port);
        else reject(err);
      });
    });
  }

  stop(): Promise<void> {
    return new Promise((resolve) => {
      this.server.tryShutdown(() => {
        resolve();
      });
    });
  }
}

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

let counter = 0;

/** Runs the CLI in-process with the real gRPC client. */
async function cli(
  argv: readonly string[],
  signal?: AbortSignal,
  env: Readonly<Record<string, string>> = {},
): Promise<Result> {
  let stdout = '';
  let stderr = '';
  const code = await runCli({
    argv,
    env,
    stdout: { write: (s: string) => (stdout += s) },
    stderr: { write: (s: string) => (stderr += s) },
    version: 'test',
    connect: (options) => GrpcC2Api.connect({ ...options, retry: { delaysMs: [20] } }),
    readFile: async (path) =>
      new Uint8Array(await import('node:fs/promises').then((fs) => fs.readFile(path))),
    newRequestId: () => `rid-${++counter}`,
    signal: signal ?? new AbortController().signal,
  });
  return { code, stdout, stderr };
}

void describe('gRPC client, plaintext', () => {
  const server = new FakeServer(false);
  let endpoint = '';
  before(async () => {
    await server.start(ServerCredentials.createInsecure());
    endpoint = `127.0.0.1:${server.port}`;
  });
  after(() => server.stop());

  void it('reference mutations carry the idempotency key and our user agent', async () => {
    const r = await cli([
      '-e',
      endpoint,
      '--insecure',
      'attach',
      '--client',
      'c',
      '--topic',
      't',
      '--request-id',
      'abc',
    ]);
    assert.equal(r.code, ExitCode.Ok, r.stderr);
    assert.equal(r.stdout, 'Successfully attached client c to topic t\n');
    const call = server.seen.at(-1);
    assert.equal(call?.method, 'NewTopicClient');
    assert.deepEqual(call.request, { client: { name: 'c' }, topic: 't' });
    assert.deepEqual(call.metadata.get('idempotency-key'), ['abc']);
    assert.match(String(call.metadata.get('user-agent')[0]), /^e4c2-cli\/test /);
  });

  void it('reads carry no idempotency key; int64 counts arrive as numbers', async () => {
    server.handlers.set('CountClients', () => ({ count: 12345678901 }));
    const r = await cli(['-e', endpoint, '--insecure', 'count', '--clients']);
    assert.equal(r.code, ExitCode.Ok, r.stderr);
    assert.equal(r.stdout, '12345678901\n');
    assert.deepEqual(server.seen.at(-1)?.metadata.get('idempotency-key'), []);
  });

  void it('--token-file sends the bearer token on every call, reference and v1', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'e4c2-token-'));
    try {
      const file = join(dir, 'token');
      await writeFile(file, 'abcdefghijklmnop0123456789_-\n');
      const attach = ['attach', '--client', 'c', '--topic', 't'];
      const r = await cli(['-e', endpoint, '--insecure', '--token-file', file, ...attach]);
      assert.equal(r.code, ExitCode.Ok, r.stderr);
      assert.deepEqual(server.seen.at(-1)?.metadata.get('authorization'), [
        'Bearer abcdefghijklmnop0123456789_-',
      ]);
      server.handlers.set('CountClients', () => ({ count: 1 }));
      await cli(['-e', endpoint, '--insecure', '--token-file', file, 'count', '--clients']);
      assert.equal(server.seen.at(-1)?.metadata.get('authorization').length, 1);
      const without = await cli(['-e', endpoint, '--insecure', 'count', '--clients']);
      assert.equal(without.code, ExitCode.Ok, without.stderr);
      assert.deepEqual(server.seen.at(-1)?.metadata.get('authorization'), []);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  void it('v1 calls carry request_id in the message; bytes are sent as bytes', async () => {
    server.handlers.set('RotateClientKey', (req) => ({
      key_version: 7,
      fingerprint: Buffer.from(req['public_key'] as Buffer)
        .toString('hex')
        .slice(0, 8),
    }));
    const dir = await mkdtemp(join(tmpdir(), 'e4c2-cli-'));
    try {
      await writeFile(join(dir, 'pub'), new Uint8Array(32).fill(0xab));
      const r = await cli([
        '-e',
        endpoint,
        '--insecure',
        'client',
        'rotate',
        '--name',
        'a',
        '--public-key',
        join(dir, 'pub'),
      ]);
      assert.equal(r.code, ExitCode.Ok, r.stderr);
      assert.equal(r.stdout, 'Client a key rotated to version 7 (fingerprint abababab)\n');
      assert.match(String(server.seen.at(-1)?.request['request_id']), /^rid-\d+$/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  void it('server refusals and internal errors map to exit 1 and 4', async () => {
    server.handlers.set('GetClient', () => {
      throw grpcFailure(status.NOT_FOUND, 'client "ghost" not found');
    });
    const notFound = await cli(['-e', endpoint, '--insecure', 'client', 'show', '--name', 'ghost']);
    assert.equal(notFound.code, ExitCode.Refused);
    assert.equal(notFound.stderr, 'error: client "ghost" not found (NOT_FOUND)\n');
    server.handlers.set('GetTopic', () => {
      throw grpcFailure(status.INTERNAL, 'internal error; see the server logs (request id x)');
    });
    const internal = await cli(['-e', endpoint, '--insecure', 'topic', 'show', '--name', 't']);
    assert.equal(internal.code, ExitCode.Internal);
  });

  void it('health falls back to pb.C2/HealthCheck on a server without grpc.health.v1', async () => {
    server.handlers.set('HealthCheck', () => ({ Code: 0, Status: 'OK' }));
    const r = await cli(['-e', endpoint, '--insecure', 'health']);
    assert.equal(r.code, ExitCode.Ok, r.stderr);
    assert.equal(r.stdout, 'SERVING\n');
  });

  void it('a call slower than --timeout is exit 3 (DEADLINE_EXCEEDED)', async () => {
    server.handlers.set(
      'CountTopics',
      () =>
        new Promise((resolve) =>
          setTimeout(() => {
            resolve({ count: 1 });
          }, 2000),
        ),
    );
    const started = Date.now();
    const r = await cli(['-e', endpoint, '--insecure', '--timeout', '0.2', 'count', '--topics']);
    assert.equal(r.code, ExitCode.Unreachable);
    assert.match(
      r.stderr,
      new RegExp(
        `^error: no answer from the C2 at ${endpoint} within 0\\.2 s \\(DEADLINE_EXCEEDED\\)`,
      ),
    );
    assert.ok(Date.now() - started < 1500);
  });

  void it('an automation change is not retried on UNAVAILABLE (no idempotency key: a second rule); a read is', async () => {
    const unavailable = (): never => {
      throw grpcFailure(status.UNAVAILABLE, 'connection dropped');
    };
    server.handlers.set('CreateRule', unavailable);
    server.handlers.set('ListRules', unavailable);
    const count = (method: string): number => server.seen.filter((s) => s.method === method).length;
    const create = await cli([
      ...['-e', endpoint, '--insecure', 'rules', 'create', '--action', 'rotate-topic-key'],
      ...['--every', '3600', '--topic', 't'],
    ]);
    assert.equal(create.code, ExitCode.Unreachable, create.stderr);
    assert.equal(count('CreateRule'), 1, 'sent once');
    const list = await cli(['-e', endpoint, '--insecure', 'rules', 'list']);
    assert.equal(list.code, ExitCode.Unreachable, list.stderr);
    assert.equal(count('ListRules'), 2, 'a read is retried (the test policy: once)');
  });

  void it('Ctrl-C during a call cancels it: exit 130', async () => {
    server.handlers.set(
      'CountTopics',
      () =>
        new Promise((resolve) =>
          setTimeout(() => {
            resolve({ count: 1 });
          }, 2000),
        ),
    );
    const interrupt = new AbortController();
    setTimeout(() => {
      interrupt.abort();
    }, 100);
    const r = await cli(['-e', endpoint, '--insecure', 'count', '--topics'], interrupt.signal);
    assert.equal(r.code, ExitCode.Interrupted);
    assert.equal(r.stderr, 'error: interrupted\n');
  });

  void it('streams: the reference events and the v1 log (the server ending one is exit 3)', async () => {
    const ref = await cli(['-e', endpoint, '--insecure', 'events']);
    assert.equal(ref.code, ExitCode.Unreachable, ref.stderr);
    assert.match(ref.stderr, /^error: the C2 ended the event stream/);
    assert.equal(
      ref.stdout,
      'Subscribed to server event stream...\nReceived event: Type: CLIENT_SUBSCRIBED, Source: c, Target: t, Timestamp: 2023-11-14T22:13:20Z\n',
    );
    const v1 = await cli(['-e', endpoint, '--insecure', 'events', '--after', '4', '--json']);
    assert.equal(v1.code, ExitCode.Unreachable, v1.stderr);
    assert.match(v1.stderr, /hint: resume with: e4c2 events --after 5\n$/);
    assert.deepEqual(JSON.parse(v1.stdout), {
      seq: '5',
      at: '2025-01-01T00:00:00Z',
      type: 'topic.rotated',
      client: '',
      topic: 't',
      key_version: 2,
      details: {},
    });
    assert.deepEqual(server.seen.at(-1)?.request, { after_seq: '4' });
  });

  void it('TLS towards a plaintext server is exit 3 with a hint', async () => {
    const r = await cli(['-e', endpoint, 'count', '--topics']);
    assert.equal(r.code, ExitCode.Unreachable);
    assert.equal(
      r.stderr,
      `error: cannot reach the C2 at ${endpoint}: TLS handshake failed: wrong version number (UNAVAILABLE)\n` +
        `hint: the server does not speak TLS on ${endpoint}: use --insecure for a plaintext server, or check the port\n`,
    );
  });
});

void describe('gRPC client, TLS', () => {
  const server = new FakeServer(true);
  let dir = '';
  let certPath = '';
  before(async () => {
    const { cert, key } = await selfSignedCert();
    dir = await mkdtemp(join(tmpdir(), 'e4c2-cli-tls-'));
    certPath = join(dir, 'cert.pem');
    await writeFile(certPath, cert);
    await server.start(
      ServerCredentials.createSsl(
        null,
        [{ cert_chain: Buffer.from(cert), private_key: Buffer.from(key) }],
        false,
      ),
    );
    server.handlers.set('CountTopics', () => ({ count: 2 }));
  });
  after(async () => {
    await server.stop();
    await rm(dir, { recursive: true, force: true });
  });

  void it('--cert with the self-signed certificate: by IP and by host name', async () => {
    for (const host of ['127.0.0.1', 'localhost']) {
      const r = await cli([
        '-e',
        `${host}:${server.port}`,
        '--cert',
        certPath,
        'count',
        '--topics',
      ]);
      assert.equal(r.code, ExitCode.Ok, r.stderr);
      assert.equal(r.stdout, '2\n');
    }
  });

  void it('grpc.health.v1 answers first; NOT_SERVING is exit 1', async () => {
    const ok = await cli(['-e', `127.0.0.1:${server.port}`, '-c', certPath, 'health', '--json']);
    assert.equal(ok.code, ExitCode.Ok, ok.stderr);
    assert.deepEqual(JSON.parse(ok.stdout), {
      status: 'SERVING',
      serving: true,
      service: 'grpc.health.v1.Health',
    });
    server.healthStatus = 'NOT_SERVING';
    const down = await cli(['-e', `127.0.0.1:${server.port}`, '-c', certPath, 'health']);
    server.healthStatus = 'SERVING';
    assert.equal(down.code, ExitCode.Refused);
    assert.equal(down.stdout, 'NOT_SERVING\n');
  });

  void it('a certificate for another name fails the host-name check unless --servername matches', async () => {
    const wrong = await cli([
      '-e',
      `127.0.0.1:${server.port}`,
      '--cert',
      certPath,
      '--servername',
      'c2.example.com',
      'count',
      '--topics',
    ]);
    assert.equal(wrong.code, ExitCode.Unreachable);
    assert.match(wrong.stderr, /\(UNAVAILABLE\)\nhint: TLS failed: pass the server certificate/);
    const right = await cli([
      '-e',
      `127.0.0.1:${server.port}`,
      '--cert',
      certPath,
      '--servername',
      'localhost',
      'count',
      '--topics',
    ]);
    assert.equal(right.code, ExitCode.Ok, right.stderr);
  });

  void it('without --cert the system roots do not trust it: exit 3 suggesting --cert', async () => {
    const r = await cli(['-e', `127.0.0.1:${server.port}`, 'count', '--topics']);
    assert.equal(r.code, ExitCode.Unreachable);
    assert.match(r.stderr, /certificate/);
    assert.match(
      r.stderr,
      /hint: TLS failed: pass the server certificate \(or its CA\) with --cert FILE/,
    );
  });

  void it('--insecure towards a TLS server: exit 3 suggesting --cert', async () => {
    const r = await cli([
      '-e',
      `127.0.0.1:${server.port}`,
      '--insecure',
      '--timeout',
      '2',
      'count',
      '--topics',
    ]);
    assert.equal(r.code, ExitCode.Unreachable);
    assert.match(r.stderr, /hint: .*--cert FILE/);
  });
});

void describe('gRPC client, a server that requires client certificates (mutual TLS)', () => {
  const server = new FakeServer(true);
  let ca: TestClientCa;
  let dir = '';
  let at: string[] = [];
  before(async () => {
    ca = await createTestClientCa();
    const { cert, key } = await selfSignedCert();
    dir = await mkdtemp(join(tmpdir(), 'e4c2-cli-mtls-'));
    const certPath = join(dir, 'cert.pem');
    await writeFile(certPath, cert);
    await server.start(
      ServerCredentials.createSsl(
        Buffer.from(ca.caCert),
        [{ cert_chain: Buffer.from(cert), private_key: Buffer.from(key) }],
        true,
      ),
    );
    server.handlers.set('CountTopics', () => ({ count: 3 }));
    at = ['-e', `127.0.0.1:${server.port}`, '--cert', certPath, '--timeout', '5'];
  });
  after(async () => {
    await server.stop();
    await ca.dispose();
    await rm(dir, { recursive: true, force: true });
  });

  void it('without a client certificate: exit 3, and the hint names --client-cert/--client-key', async () => {
    const r = await cli([...at, 'count', '--topics']);
    assert.equal(r.code, ExitCode.Unreachable, r.stderr);
    assert.match(
      r.stderr,
      /^error: cannot reach the C2 at 127\.0\.0\.1:\d+: TLS handshake failed: tlsv13 alert certificate required \(UNAVAILABLE\)\n/,
    );
    assert.match(
      r.stderr,
      /\nhint: the server requires a client certificate \(mutual TLS\): pass yours with --client-cert FILE --client-key FILE \(or E4C2_CLIENT_CERT and E4C2_CLIENT_KEY\)/,
    );
    assert.doesNotMatch(r.stderr, /pass the server certificate/);
  });

  void it('with --client-cert and --client-key (or their env pair) it connects, beside a token', async () => {
    const mine = await ca.issue('automation');
    const flags = await cli([
      ...at,
      '--client-cert',
      mine.certFile,
      '--client-key',
      mine.keyFile,
      'count',
      '--topics',
    ]);
    assert.equal(flags.code, ExitCode.Ok, flags.stderr);
    assert.equal(flags.stdout, '3\n');
    const tokenFile = join(dir, 'token');
    await writeFile(tokenFile, 'abcdefghijklmnop0123456789_-\n');
    const env = { E4C2_CLIENT_CERT: mine.certFile, E4C2_CLIENT_KEY: mine.keyFile };
    const fromEnv = await cli(
      [...at, '--token-file', tokenFile, 'count', '--topics'],
      undefined,
      env,
    );
    assert.equal(fromEnv.code, ExitCode.Ok, fromEnv.stderr);
    assert.equal(fromEnv.stdout, '3\n');
    assert.deepEqual(server.seen.at(-1)?.metadata.get('authorization'), [
      'Bearer abcdefghijklmnop0123456789_-',
    ]);
  });

  void it('a certificate the CA did not sign: exit 3, the hint points at the client certificate', async () => {
    const rogue = await ca.selfSigned('automation');
    const calls = server.seen.length;
    const r = await cli([
      ...at,
      '--client-cert',
      rogue.certFile,
      '--client-key',
      rogue.keyFile,
      'count',
      '--topics',
    ]);
    assert.equal(r.code, ExitCode.Unreachable, r.stderr);
    assert.match(r.stderr, /\nhint: .*--client-cert.*E4C2_TLS_CLIENT_CA/);
    assert.equal(server.seen.length, calls, 'the server handled no call');
  });
});

void describe('gRPC client, nothing listening', () => {
  void it('exit 3 naming the endpoint', async () => {
    const probe = new Server();
    const port = await new Promise<number>((resolve, reject) => {
      probe.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (err, p) => {
        if (err === null) resolve(p);
        else reject(err);
      });
    });
    probe.forceShutdown();
    const r = await cli(['-e', `127.0.0.1:${port}`, '--insecure', 'topic', 'list']);
    assert.equal(r.code, ExitCode.Unreachable);
    assert.match(
      r.stderr,
      new RegExp(`^error: cannot reach the C2 at 127\\.0\\.0\\.1:${port}: connect ECONNREFUSED`),
    );
    assert.match(r.stderr, /hint: is the C2 running and listening on/);
  });
});
