// End to end: `e4c2` as a child process against a real C2 node (`bin/start.ts`, the `npm start`
// composition root) on the machine's PostgreSQL (a private schema) and Mosquitto, over TLS with
// a throwaway certificate. Checks stdout and exit codes of the main verbs.
//
// The node runs as a process rather than in-process because cli/ may not import cluster/ (lint
// layering), and the C2 service an ApiServer needs lives there. Skipped only when api/index.ts
// is missing (the server side is not in the tree).
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { freePort } from '../../bin/free-ports.ts';
import { ExitCode } from '../errors.ts';
import { GrpcC2Api } from '../grpc-client.ts';
import { runCli } from '../run.ts';
import { createTestClientCa, type TestClientCa, type TestClientCert } from './support/client-ca.ts';
import { selfSignedCert } from './support/tls.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const API_READY = existsSync(join(ROOT, 'api', 'index.ts'));
const DATABASE_URL = process.env['TEST_DATABASE_URL'] ?? 'postgres://postgres@127.0.0.1:5432/test';
const MQTT_URL = process.env['MQTT_TEST_URL'] ?? 'mqtt://127.0.0.1:1883';
const START_TIMEOUT_MS = 60_000;

/** The environment without our own variables (a developer's E4C2_ENDPOINT must not leak in). */
function cleanEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(process.env)) {
    if (!name.startsWith('E4C2_') && !['DATABASE_URL', 'MQTT_URL', 'REDIS_URL'].includes(name)) {
      env[name] = value;
    }
  }
  return env;
}

interface CliResult {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs `node --import tsx cli/main.ts ...args` and collects its output. */
function e4c2(args: readonly string[], env: NodeJS.ProcessEnv = cleanEnv()): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'cli/main.ts', ...args], {
      cwd: ROOT,
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString('utf8')));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
    child.once('error', reject);
    child.once('close', (code) => {
      resolve({ code, stdout, stderr });
    });
  });
}

/** One in-process health check (fast: no child process); true when the node is serving. */
async function serving(endpoint: string, certFile: string): Promise<boolean> {
  const code = await runCli({
    argv: ['-e', endpoint, '-c', certFile, '--timeout', '1', 'health'],
    env: {},
    stdout: { write: () => true },
    stderr: { write: () => true },
    version: 'e2e',
    connect: (options) => GrpcC2Api.connect({ ...options, retry: { delaysMs: [] } }),
    readFile: async (path) =>
      new Uint8Array(await import('node:fs/promises').then((f) => f.readFile(path))),
    newRequestId: () => 'e2e-health',
    signal: new AbortController().signal,
  });
  return code === ExitCode.Ok;
}

/**
 * Readiness without the CLI, for a node whose TLS listener takes only client certificates: its
 * plain `/readyz` (operations port) answers 200 and its gRPC port accepts connections. So the
 * tests of client certificates do not depend, for their set-up, on what they test.
 */
async function ready(metrics: string, endpoint: string): Promise<boolean> {
  try {
    const res = await fetch(`http://${metrics}/readyz`, { signal: AbortSignal.timeout(1000) });
    await res.body?.cancel();
    if (!res.ok) return false;
  } catch {
    return false;
  }
  const [host = '', port = ''] = endpoint.split(':');
  return new Promise((resolve) => {
    const socket = connect({ host, port: Number(port) });
    socket.setTimeout(1000);
    const done = (accepted: boolean) => (): void => {
      socket.destroy();
      resolve(accepted);
    };
    socket.once('connect', done(true));
    socket.once('error', done(false));
    socket.once('timeout', done(false));
  });
}

function exited(child: ChildProcess, timeoutMs: number): Promise<boolean> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      resolve(false);
    }, timeoutMs);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve(true);
    });
  });
}

/** A C2 node started by {@link startNode}. */
interface NodeUnderTest {
  /** Its gRPC address, `127.0.0.1:<port>`. */
  readonly endpoint: string;
  /** A private temporary directory (removed by `stop`). */
  readonly dir: string;
  /** Its self-signed TLS certificate (PEM file). */
  readonly certFile: string;
  /** Its private PostgreSQL schema. */
  readonly schema: string;
  /** Stops it, drops its schema, removes `dir`. */
  stop(): Promise<void>;
}

/**
 * Starts `bin/start.ts` on a private schema with a throwaway certificate and waits until it
 * serves. `env` adds settings (a client CA, a credentials file). `probe`: `health` is an `e4c2
 * health` call; `readyz` is {@link ready}, for a node the CLI cannot reach without a client
 * certificate.
 */
async function startNode(
  env: NodeJS.ProcessEnv = {},
  probe: 'health' | 'readyz' = 'health',
): Promise<NodeUnderTest> {
  const schema = `cli_e2e_${randomBytes(5).toString('hex')}`;
  const admin = new pg.Client({ connectionString: DATABASE_URL });
  await admin.connect();
  await admin.query(`CREATE SCHEMA ${schema}`);
  await admin.end();

  const dir = await mkdtemp(join(tmpdir(), 'e4c2-cli-e2e-'));
  const { cert, key } = await selfSignedCert();
  const certFile = join(dir, 'cert.pem');
  await writeFile(certFile, cert);
  await writeFile(join(dir, 'key.pem'), key, { mode: 0o600 });
  const endpoint = `127.0.0.1:${await freePort()}`;
  const metrics = `127.0.0.1:${probe === 'readyz' ? await freePort() : 0}`;

  const node = spawn(process.execPath, ['--import', 'tsx', 'bin/start.ts'], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: {
      ...cleanEnv(),
      DATABASE_URL,
      MQTT_URL,
      E4C2_DB_SCHEMA: schema,
      E4C2_KEK_PASSPHRASE: randomBytes(16).toString('hex'),
      E4C2_GRPC_ADDR: endpoint,
      E4C2_HTTP_ADDR: '127.0.0.1:0',
      E4C2_METRICS_ADDR: metrics,
      E4C2_TLS_CERT: certFile,
      E4C2_TLS_KEY: join(dir, 'key.pem'),
      E4C2_DATA_DIR: join(dir, 'data'),
      E4C2_NODE_ID: 'cli-e2e',
      E4C2_LOG_LEVEL: 'warn',
      ...env,
    },
  });
  let nodeOutput = '';
  node.stdout.on('data', (chunk: Buffer) => (nodeOutput += chunk.toString('utf8')));
  node.stderr.on('data', (chunk: Buffer) => (nodeOutput += chunk.toString('utf8')));
  const stop = async (): Promise<void> => {
    node.kill('SIGTERM');
    if (!(await exited(node, 15_000))) {
      node.kill('SIGKILL');
      await exited(node, 5_000);
    }
    const pgAdmin = new pg.Client({ connectionString: DATABASE_URL });
    await pgAdmin.connect();
    await pgAdmin.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
    await pgAdmin.end();
    await rm(dir, { recursive: true, force: true });
  };
  const deadline = Date.now() + START_TIMEOUT_MS;
  for (;;) {
    if (node.exitCode !== null) {
      await stop();
      assert.fail(`the C2 node exited with ${node.exitCode} during start-up:\n${nodeOutput}`);
    }
    if (probe === 'health' ? await serving(endpoint, certFile) : await ready(metrics, endpoint)) {
      break;
    }
    if (Date.now() > deadline) {
      await stop();
      assert.fail(`the C2 node did not serve on ${endpoint} within 60 s:\n${nodeOutput}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  return { endpoint, dir, certFile, schema, stop };
}

void describe(
  'e4c2 against a real C2 node',
  {
    skip: API_READY ? false : 'api/index.ts is missing: the C2 API server is not in this tree yet',
  },
  () => {
    let node: NodeUnderTest | undefined;
    let dir = '';
    let certFile = '';
    let endpoint = '';
    /** Global flags of every CLI call: the node's address and its certificate. */
    let at: string[] = [];

    before(async () => {
      node = await startNode();
      ({ dir, certFile, endpoint } = node);
      at = ['-e', endpoint, '--cert', certFile];
    });

    after(async () => {
      await node?.stop();
    });

    void it('health over TLS with --cert', async () => {
      const r = await e4c2([...at, 'health']);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout, 'SERVING\n');
    });

    void it('client create with --key, and with --password', async () => {
      const keyFile = join(dir, 'sensor.key');
      await writeFile(keyFile, randomBytes(32));
      const r = await e4c2([...at, 'client', 'create', '--name', 'e2e-sensor', '--key', keyFile]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout, 'Client e2e-sensor created successfully\n');
      const passFile = join(dir, 'gateway.pass');
      await writeFile(passFile, 'a long enough password');
      const p = await e4c2([
        ...at,
        'client',
        'create',
        '--name',
        'e2e-gateway',
        '--password',
        passFile,
      ]);
      assert.equal(p.code, 0, p.stderr);
      assert.equal(
        p.stdout,
        'Derived symmetric key from password\nClient e2e-gateway created successfully\n',
      );
    });

    void it('topic create, attach, client list, count', async () => {
      const t = await e4c2([...at, 'topic', 'create', '--name', 'e2e/temp']);
      assert.equal(t.code, 0, t.stderr);
      assert.equal(t.stdout, 'Topic e2e/temp created successfully\n');
      const a = await e4c2([...at, 'attach', '--client', 'e2e-sensor', '--topic', 'e2e/temp']);
      assert.equal(a.code, 0, a.stderr);
      assert.equal(a.stdout, 'Successfully attached client e2e-sensor to topic e2e/temp\n');
      const list = await e4c2([...at, 'client', 'list']);
      assert.equal(list.code, 0, list.stderr);
      assert.equal(list.stdout, 'e2e-gateway\ne2e-sensor\n');
      const clients = await e4c2([...at, 'count', '--clients']);
      assert.equal(clients.stdout, '2\n');
      const ofTopic = await e4c2([...at, 'count', '--clients', '--topic', 'e2e/temp', '--json']);
      assert.deepEqual(JSON.parse(ofTopic.stdout), { count: 1 });
      const topics = await e4c2([...at, 'client', 'list-topics', '--name', 'e2e-sensor']);
      assert.equal(topics.stdout, 'e2e/temp\n');
    });

    void it('topic create says whether it created the topic or rotated the key of an existing one', async () => {
      const create = ['topic', 'create', '--name', 'e2e/twice'];
      const first = await e4c2([...at, ...create, '--json']);
      assert.equal(first.code, 0, first.stderr);
      const made = JSON.parse(first.stdout) as Record<string, unknown>;
      assert.deepEqual(
        [made['topic'], made['created'], made['key_version'], made['members']],
        ['e2e/twice', true, 1, 0],
      );
      const again = await e4c2([...at, ...create, '--json']);
      assert.equal(again.code, 0, again.stderr);
      const rotated = JSON.parse(again.stdout) as Record<string, unknown>;
      assert.deepEqual([rotated['created'], rotated['key_version']], [false, 2]);
      assert.notEqual(rotated['fingerprint'], made['fingerprint']);
      const human = await e4c2([...at, ...create]);
      assert.equal(human.code, 0, human.stderr);
      assert.match(
        human.stdout,
        /^Topic e2e\/twice already existed: its key was rotated to version 3 \(fingerprint [^ ]+, 0 members\)\n$/,
      );
      // The later tests count the topics.
      assert.equal((await e4c2([...at, 'topic', 'remove', '--name', 'e2e/twice'])).code, 0);
    });

    void it('topic rotate gives version 2; the same --request-id does not rotate twice', async () => {
      const r = await e4c2([
        ...at,
        'topic',
        'rotate',
        '--name',
        'e2e/temp',
        '--json',
        '--request-id',
        'e2e-rot-1',
      ]);
      assert.equal(r.code, 0, r.stderr);
      const first = JSON.parse(r.stdout) as { topic: string; key_version: number; members: number };
      assert.equal(first.topic, 'e2e/temp');
      assert.equal(first.key_version, 2);
      assert.equal(first.members, 1);
      const again = await e4c2([
        ...at,
        'topic',
        'rotate',
        '--name',
        'e2e/temp',
        '--json',
        '--request-id',
        'e2e-rot-1',
      ]);
      assert.equal(again.code, 0, again.stderr);
      assert.deepEqual(JSON.parse(again.stdout), first);
    });

    void it('status shows the rollout of version 2', async () => {
      const r = await e4c2([...at, 'status', '--topic', 'e2e/temp']);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /^topic {8}e2e\/temp\nkey version {2}2\nmembers {6}1\n/);
      const j = await e4c2([...at, 'status', '--topic', 'e2e/temp', '--json']);
      const status = JSON.parse(j.stdout) as {
        key_version: number;
        rollout: { members: number; delivered: number; pending: number; failed: number };
      };
      assert.equal(status.key_version, 2);
      const { members, delivered, pending, failed } = status.rollout;
      assert.equal(members, 1);
      assert.equal(delivered + pending + failed, members);
    });

    void it('client show --json: identity, key versions, topics', async () => {
      const r = await e4c2([...at, 'client', 'show', '--name', 'e2e-sensor', '--json']);
      assert.equal(r.code, 0, r.stderr);
      const details = JSON.parse(r.stdout) as {
        name: string;
        control_topic: string;
        key_version: number;
        keys: { version: number; fingerprint: string }[];
        topics: { topic: string; desired_version: number }[];
      };
      assert.equal(details.name, 'e2e-sensor');
      assert.match(details.control_topic, /^e4\/[0-9a-f]{32}$/);
      assert.equal(details.key_version, 1);
      assert.ok(details.keys.length >= 1);
      assert.deepEqual(
        details.topics.map((t) => [t.topic, t.desired_version]),
        [['e2e/temp', 2]],
      );
      const human = await e4c2([...at, 'client', 'show', '--name', 'e2e-sensor']);
      assert.match(human.stdout, /^name {12}e2e-sensor\n/);
      assert.match(
        human.stdout,
        /\nTOPIC +DESIRED +DELIVERED +CONFIRMED +STATE +SEEN USING\ne2e\/temp +2 /,
      );
    });

    void it('client resync --all resyncs every client once; the same --request-id again does nothing twice', async () => {
      const resyncEvents = async (): Promise<string[]> => {
        const db = new pg.Client({ connectionString: DATABASE_URL });
        await db.connect();
        try {
          const { rows } = await db.query<{ client_name: string }>(
            `SELECT client_name FROM ${node?.schema ?? 'missing'}.events WHERE type = 'client.resync' ORDER BY seq`,
          );
          return rows.map((r) => r.client_name);
        } finally {
          await db.end();
        }
      };
      const before = await resyncEvents();
      const run = ['client', 'resync', '--all', '--json', '--request-id', 'e2e-fleet-1'];
      const r = await e4c2([...at, ...run]);
      assert.equal(r.code, 0, r.stderr);
      const first = JSON.parse(r.stdout) as { resynced: number; refused: unknown[] };
      assert.equal(first.resynced, 2);
      assert.deepEqual(first.refused, []);
      const after = await resyncEvents();
      assert.deepEqual(after.slice(before.length).sort(), ['e2e-gateway', 'e2e-sensor']);
      // Run again with the same request id (as after an interruption): the stored outcomes.
      const again = await e4c2([...at, ...run]);
      assert.equal(again.code, 0, again.stderr);
      assert.equal((JSON.parse(again.stdout) as { resynced: number }).resynced, 2);
      assert.equal((await resyncEvents()).length, after.length);
    });

    void it('protect-message and unprotect-message round-trip', async () => {
      const p = await e4c2([
        ...at,
        'protect-message',
        '--topic',
        'e2e/temp',
        '--message',
        'aGVsbG8=',
      ]);
      assert.equal(p.code, 0, p.stderr);
      assert.match(p.stdout, /^[A-Za-z0-9+/]+=*$/, 'base64 without a newline');
      const u = await e4c2([
        ...at,
        'unprotect-message',
        '--topic',
        'e2e/temp',
        '--message',
        p.stdout,
      ]);
      assert.equal(u.code, 0, u.stderr);
      assert.equal(u.stdout, 'aGVsbG8=');
    });

    void it('an unknown client is exit 1 with the server message', async () => {
      const r = await e4c2([...at, 'client', 'show', '--name', 'ghost']);
      assert.equal(r.code, 1);
      assert.equal(r.stdout, '');
      assert.match(r.stderr, /^error: .*\(NOT_FOUND\)\n$/);
      const ref = await e4c2([...at, 'client', 'remove', '--name', 'ghost']);
      assert.equal(ref.code, 1);
      assert.match(ref.stderr, /\(NOT_FOUND\)\n$/);
    });

    void it('E4C2_ENDPOINT and E4C2_CERT stand in for -e and --cert', async () => {
      const r = await e4c2(['count', '--topics'], {
        ...cleanEnv(),
        E4C2_ENDPOINT: endpoint,
        E4C2_CERT: certFile,
      });
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout, '1\n');
    });

    void it('the event log: events --after 0 --json until Ctrl-C (exit 0)', async () => {
      const child = spawn(
        process.execPath,
        ['--import', 'tsx', 'cli/main.ts', ...at, 'events', '--after', '0', '--json'],
        {
          cwd: ROOT,
          env: cleanEnv(),
          stdio: ['ignore', 'pipe', 'pipe'],
        },
      );
      let stdout = '';
      let stderr = '';
      child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
      const gotLines = new Promise<void>((resolve) => {
        child.stdout.on('data', (chunk: Buffer) => {
          stdout += chunk.toString('utf8');
          if (stdout.split('\n').length > 3) resolve();
        });
      });
      const timeout = new Promise<void>((resolve) => setTimeout(resolve, 20_000));
      await Promise.race([gotLines, timeout]);
      child.kill('SIGINT');
      const code = await new Promise<number | null>((resolve) => child.once('close', resolve));
      assert.equal(code, 0, stderr);
      const records = stdout
        .trimEnd()
        .split('\n')
        .map((line) => JSON.parse(line) as { seq: string; type: string });
      assert.ok(records.length >= 3, stdout);
      const seqs = records.map((r) => BigInt(r.seq));
      assert.deepEqual(
        [...seqs].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0)),
        seqs,
        'in order',
      );
    });

    void it('--insecure towards the TLS node is exit 3', async () => {
      const r = await e4c2(['-e', endpoint, '--insecure', '--timeout', '3', 'count', '--topics']);
      assert.equal(r.code, 3);
      assert.match(r.stderr, /--cert FILE/);
    });

    void it('an unreachable endpoint is exit 3 naming it', async () => {
      const port = await freePort();
      const r = await e4c2(['-e', `127.0.0.1:${port}`, '--cert', certFile, 'client', 'list']);
      assert.equal(r.code, 3);
      assert.equal(r.stdout, '');
      assert.match(
        r.stderr,
        new RegExp(`^error: cannot reach the C2 at 127\\.0\\.0\\.1:${port}: `),
      );
    });
  },
);

void describe(
  'e4c2 against a real C2 node that requires client certificates (E4C2_TLS_CLIENT_CA)',
  {
    skip: API_READY ? false : 'api/index.ts is missing: the C2 API server is not in this tree yet',
  },
  () => {
    let ca: TestClientCa | undefined;
    let node: NodeUnderTest | undefined;
    let automation: TestClientCert;
    let auditor: TestClientCert;
    const adminToken = randomBytes(32).toString('base64url');
    /** The node's address and certificate; no client certificate. */
    let at: string[] = [];
    const as = (id: TestClientCert): string[] => [
      '--client-cert',
      id.certFile,
      '--client-key',
      id.keyFile,
    ];

    before(async () => {
      ca = await createTestClientCa();
      automation = await ca.issue('automation');
      auditor = await ca.issue('auditor');
      // The API's credentials file (docs/api.md#authentication): certificates by subject CN.
      const credentialsFile = join(dirname(ca.caFile), 'credentials.json');
      await writeFile(
        credentialsFile,
        JSON.stringify({
          tokens: [
            {
              name: 'root',
              role: 'admin',
              sha256: createHash('sha256').update(adminToken).digest('hex'),
            },
          ],
          certificates: [
            { subject: 'automation', role: 'admin' },
            { subject: 'auditor', role: 'read-only' },
          ],
        }),
      );
      node = await startNode(
        { E4C2_TLS_CLIENT_CA: ca.caFile, E4C2_API_CREDENTIALS_FILE: credentialsFile },
        'readyz',
      );
      at = ['-e', node.endpoint, '--cert', node.certFile];
    });

    after(async () => {
      await node?.stop();
      await ca?.dispose();
    });

    void it('without a client certificate: exit 3, the hint names --client-cert/--client-key', async () => {
      // As the audit ran it: E4C2_CERT and a token, but no client certificate.
      assert.ok(node !== undefined, 'the node started');
      const tokenFile = join(node.dir, 'token');
      await writeFile(tokenFile, `${adminToken}\n`, { mode: 0o600 });
      const r = await e4c2(['--token-file', tokenFile, 'topic', 'list'], {
        ...cleanEnv(),
        E4C2_ENDPOINT: node.endpoint,
        E4C2_CERT: node.certFile,
      });
      assert.equal(r.code, 3, r.stderr);
      assert.equal(r.stdout, '');
      assert.match(r.stderr, /TLS handshake failed: .*certificate required \(UNAVAILABLE\)\n/);
      assert.match(
        r.stderr,
        /\nhint: the server requires a client certificate \(mutual TLS\): pass yours with --client-cert FILE --client-key FILE/,
      );
    });

    void it('with --client-cert/--client-key the certificate is its role in the credentials file', async () => {
      const created = await e4c2([...at, ...as(automation), 'topic', 'create', '--name', 'mtls/t']);
      assert.equal(created.code, 0, created.stderr);
      assert.equal(created.stdout, 'Topic mtls/t created successfully\n');
      assert.ok(node !== undefined, 'the node started');
      const env = {
        ...cleanEnv(),
        E4C2_ENDPOINT: node.endpoint,
        E4C2_CERT: node.certFile,
        E4C2_CLIENT_CERT: auditor.certFile,
        E4C2_CLIENT_KEY: auditor.keyFile,
      };
      const listed = await e4c2(['topic', 'list'], env);
      assert.equal(listed.code, 0, listed.stderr);
      assert.equal(listed.stdout, 'mtls/t\n');
      const denied = await e4c2(['topic', 'create', '--name', 'mtls/denied'], env);
      assert.equal(denied.code, 1, denied.stderr);
      assert.match(denied.stderr, /\(PERMISSION_DENIED\)\n/);
    });

    void it('a token beside a certificate: the token decides', async () => {
      assert.ok(node !== undefined, 'the node started');
      const tokenFile = join(node.dir, 'token');
      await writeFile(tokenFile, `${adminToken}\n`, { mode: 0o600 });
      const r = await e4c2([
        ...at,
        ...as(auditor),
        '--token-file',
        tokenFile,
        'topic',
        'create',
        '--name',
        'mtls/by-token',
      ]);
      assert.equal(r.code, 0, r.stderr);
    });

    void it('a certificate from the CA but not in the credentials file is UNAUTHENTICATED (exit 1)', async () => {
      assert.ok(ca !== undefined, 'the CA was made');
      const stranger = await ca.issue('stranger');
      const r = await e4c2([...at, ...as(stranger), 'topic', 'list']);
      assert.equal(r.code, 1, r.stderr);
      assert.match(r.stderr, /\(UNAUTHENTICATED\)\n/);
    });

    void it('a certificate the CA did not sign cannot connect: exit 3', async () => {
      assert.ok(ca !== undefined, 'the CA was made');
      const rogue = await ca.selfSigned('automation');
      const r = await e4c2([...at, ...as(rogue), '--timeout', '5', 'topic', 'list']);
      assert.equal(r.code, 3, r.stderr);
      assert.match(r.stderr, /\nhint: .*--client-cert/);
    });
  },
);
