/**
 * Observability of a real cluster: an API node and a delivery worker started in this process by
 * `startC2Node` (the code of `npm start`), on the machine's PostgreSQL (a private schema), a
 * private `redis-server` (queue and Redlock) and the machine's Mosquitto, with simulated devices.
 *
 * - Metrics: one topic rotation moves the counters of both `/metrics` endpoints (API calls,
 *   rotations, relay, lock, deliveries, attempts, PUBACK latency), and the cluster-wide gauges
 *   settle (outbox empty, no convergence lag, every device idle).
 * - Traces: with an in-memory exporter, the rotation is one trace: the API span, its transaction,
 *   the outbox relay, the queue job (on the worker, through the traceparent in the job data) and
 *   one MQTT publish per device, each with the right parent.
 * - Secrets (I8): no key used in the test (device identity keys, topic keys v1 and v2, the KEK),
 *   in hex or base64, appears in the captured log lines, metrics, spans, or any command sent to
 *   Redis (job data included).
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { SpanKind } from '@opentelemetry/api';
import {
  InMemorySpanExporter,
  SimpleSpanProcessor,
  type ReadableSpan,
} from '@opentelemetry/sdk-trace-node';
import { Redis } from 'ioredis';
import { loadConfig } from '../../cluster/config/index.ts';
import { TEST_MQTT_URL } from '../../cluster/test/support/c2-harness.ts';
import { eventually } from '../../cluster/test/support/eventually.ts';
import {
  createTestSchema,
  TEST_DATABASE_URL,
  type TestSchema,
} from '../../cluster/test/support/postgres.ts';
import { SimDevice } from '../../cluster/test/support/sim-device.ts';
import { createLogger } from '../../cluster/telemetry/index.ts';
import { E4Client, randomSymKey, toHex, topicHash } from '../../e4/index.ts';
import { startC2Node, type C2Node } from '../c2-node.ts';
import { httpJson, type JsonAnswer } from './support/http-json.ts';
import { startPrivateRedis, type PrivateRedis } from './support/redis-server.ts';

const DEVICES = 5;
const rand = randomBytes(3).toString('hex');

/** One sample of a Prometheus text exposition. */
interface Sample {
  readonly name: string;
  readonly labels: Record<string, string>;
  readonly value: number;
}

function parseExposition(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    assert.ok(m !== null, `malformed exposition line: ${line}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g))
      labels[l[1] ?? ''] = l[2] ?? '';
    samples.push({ name: m[1] ?? '', labels, value: Number(m[3]) });
  }
  return samples;
}

/** The value of the series `name` whose labels include `labels` (0 when absent). */
function valueOf(samples: readonly Sample[], name: string, labels: Record<string, string> = {}) {
  const found = samples.find(
    (s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v),
  );
  return found?.value ?? 0;
}

async function scrape(node: C2Node): Promise<{ text: string; samples: Sample[] }> {
  const res = await fetch(`${node.addresses.health}/metrics`);
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type') ?? '', /^text\/plain/);
  const text = await res.text();
  return { text, samples: parseExposition(text) };
}

function expectStatus(answer: JsonAnswer, status: number, what: string): JsonAnswer {
  assert.equal(answer.status, status, `${what}: ${JSON.stringify(answer.json)}`);
  return answer;
}

/** Every textual form a key could leak in. */
function forms(key: Uint8Array): string[] {
  const b = Buffer.from(key);
  return [
    b.toString('hex'),
    b.toString('hex').toUpperCase(),
    b.toString('base64'),
    b.toString('base64url'),
  ];
}

void describe('observability of an API node and a worker', () => {
  let schema: TestSchema | undefined;
  let redis: PrivateRedis | undefined;
  let monitor: Redis | undefined;
  let dir: string | undefined;
  let api: C2Node | undefined;
  let worker: C2Node | undefined;
  const exporter = new InMemorySpanExporter();
  const logLines: string[] = [];
  const redisCommands: string[] = [];
  const devices: SimDevice[] = [];
  const deviceNames: string[] = [];
  const secrets: Uint8Array[] = [];
  const topic = `obs/${rand}/t`;
  const hash = toHex(topicHash(topic));

  const running = (node: C2Node | undefined): C2Node => {
    assert.ok(node !== undefined, 'the node runs');
    return node;
  };
  const http = (): string => running(api).addresses.http ?? '';
  const fingerprintOf = async (version: number): Promise<string> => {
    const res = expectStatus(
      await httpJson(http(), 'GET', `/v1/topics/${encodeURIComponent(topic)}`),
      200,
      'GetTopic',
    );
    const keys = res.json['keys'] as Array<{ version: number; fingerprint: string }>;
    const key = keys.find((k) => k.version === version);
    assert.ok(key !== undefined, `v${version} exists`);
    return key.fingerprint;
  };
  const nodeLogger = (nodeId: string) => {
    const out = new PassThrough();
    out.on('data', (chunk: Buffer) => logLines.push(...chunk.toString('utf8').split('\n')));
    return createLogger({ level: 'debug', nodeId, destination: out });
  };

  before(
    async () => {
      schema = await createTestSchema();
      redis = await startPrivateRedis();
      // Every command any client sends to Redis (queue and locks), job data included.
      const client = new Redis(redis.url, { lazyConnect: true, maxRetriesPerRequest: 1 });
      client.on('error', () => undefined);
      monitor = await client.monitor();
      client.disconnect();
      monitor.on('error', () => undefined);
      monitor.on('monitor', (_time: string, args: string[]) => {
        redisCommands.push(args.join(' '));
      });
      dir = await mkdtemp(join(tmpdir(), 'e4c2-obs-'));
      const kek = randomBytes(32);
      secrets.push(new Uint8Array(kek));
      const kekFile = join(dir, 'kek.key');
      await writeFile(kekFile, kek.toString('hex'), { mode: 0o600 });
      const env = {
        DATABASE_URL: TEST_DATABASE_URL,
        E4C2_DB_SCHEMA: schema.schema,
        MQTT_URL: TEST_MQTT_URL,
        REDIS_URL: redis.url,
        E4C2_KEK_FILE: kekFile,
        E4C2_METRICS_ADDR: '127.0.0.1:0',
        E4C2_LOG_LEVEL: 'debug',
        E4C2_MQTT_CLIENT_ID_PREFIX: `obs${rand}`,
        E4C2_SHUTDOWN_TIMEOUT_MS: '3000',
        E4C2_DELIVERY_BACKOFF_INITIAL_MS: '50',
      };
      const spanProcessors = [new SimpleSpanProcessor(exporter)];
      worker = await startC2Node(
        loadConfig({ ...env, E4C2_ROLE: 'worker', E4C2_NODE_ID: `obs-worker-${rand}` }),
        nodeLogger(`obs-worker-${rand}`),
        { spanProcessors },
      );
      api = await startC2Node(
        loadConfig({
          ...env,
          E4C2_ROLE: 'api',
          E4C2_NODE_ID: `obs-api-${rand}`,
          E4C2_GRPC_ADDR: '127.0.0.1:0',
          E4C2_HTTP_ADDR: '127.0.0.1:0',
        }),
        nodeLogger(`obs-api-${rand}`),
        { spanProcessors },
      );
      for (let i = 0; i < DEVICES; i++) {
        const name = `obs-dev-${rand}-${i}`;
        const key = randomSymKey();
        secrets.push(key);
        devices.push(
          await SimDevice.connect(await E4Client.createSymmetric({ name }, { key }), TEST_MQTT_URL),
        );
        deviceNames.push(name);
        expectStatus(
          await httpJson(http(), 'POST', `/e4/client/${name}`, {
            body: { key: Buffer.from(key).toString('base64') },
          }),
          200,
          'NewClient',
        );
      }
      expectStatus(await httpJson(http(), 'POST', `/e4/topic/${topic}`), 200, 'NewTopic');
      for (const name of deviceNames) {
        expectStatus(
          await httpJson(http(), 'PUT', `/e4/client/${name}/topic/${topic}`),
          200,
          'NewTopicClient',
        );
      }
      const v1 = await fingerprintOf(1);
      await Promise.all(
        devices.map((d) => d.waitFor(() => d.topicKeyFingerprint(hash) === v1, 30_000, 'v1')),
      );
    },
    { timeout: 90_000 },
  );

  after(async () => {
    await api?.stop();
    await worker?.stop();
    await Promise.all(devices.map((d) => d.close()));
    monitor?.disconnect();
    await redis?.stop();
    await schema?.drop();
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  });

  void it(
    'a rotation moves the metrics, is one trace from the API to every MQTT publish, and leaks no key',
    { timeout: 60_000 },
    async () => {
      const apiNode = running(api);
      const workerNode = running(worker);
      const apiBefore = (await scrape(apiNode)).samples;
      const workerBefore = (await scrape(workerNode)).samples;
      exporter.reset();

      expectStatus(
        await httpJson(http(), 'POST', `/v1/topics/${encodeURIComponent(topic)}/rotate`, {
          body: {},
        }),
        200,
        'RotateTopicKey',
      );
      const v2 = await fingerprintOf(2);
      await Promise.all(
        devices.map((d) => d.waitFor(() => d.topicKeyFingerprint(hash) === v2, 30_000, 'v2')),
      );
      for (const d of devices) secrets.push(...d.client.state.topicKeys.values());
      assert.ok(secrets.length >= 1 + DEVICES * 2, 'KEK, identity keys, topic keys');

      // --- traces --------------------------------------------------------------------------
      const spans = await eventually(() => {
        const all = exporter.getFinishedSpans();
        const root = all.find(
          (s) =>
            s.kind === SpanKind.SERVER &&
            s.attributes['rpc.method'] === 'e4c2.v1.C2Admin/RotateTopicKey',
        );
        assert.ok(
          root !== undefined,
          `no API span among ${all.map((s) => `${s.name}(${String(s.attributes['rpc.method'])})`).join(', ')}`,
        );
        const trace = all.filter((s) => s.spanContext().traceId === root.spanContext().traceId);
        assert.ok(
          trace.some((s) => s.name === 'queue.process'),
          'the job span is exported',
        );
        return { root, trace };
      }, 20_000);
      const { root, trace } = spans;
      assert.equal(
        root.attributes['http.response.status_code'],
        200,
        'an integer, as OTel defines it',
      );
      const byId = new Map(trace.map((s) => [s.spanContext().spanId, s]));
      const parentOf = (s: ReadableSpan): ReadableSpan | undefined =>
        byId.get(s.parentSpanContext?.spanId ?? '');
      const ancestors = (s: ReadableSpan): string[] => {
        const names: string[] = [];
        for (let p = parentOf(s); p !== undefined; p = parentOf(p)) names.push(p.name);
        return names;
      };
      const named = (name: string): ReadableSpan[] => trace.filter((s) => s.name === name);

      assert.equal(root.parentSpanContext, undefined, 'the API span is the root');
      assert.equal(root.name, 'HTTP e4c2.v1.C2Admin/RotateTopicKey');
      const children = trace.filter((s) => parentOf(s) === root).map((s) => s.name);
      assert.ok(children.includes('db.transaction'), `the rotation commits: ${children.join()}`);
      const lock = named('lock.acquire');
      assert.equal(lock.length, 1, 'one lock acquisition');
      assert.equal(parentOf(lock[0] as ReadableSpan), root, 'the rotation waits for its lock');
      assert.equal(lock[0]?.attributes['e4c2.lock.resource_kind'], 'topic');
      // Usually one round; a kick that lands while a round runs (seen on a busy machine) makes
      // the relay's loop run another round in the same context (OutboxRelay #loop).
      const relay = named('outbox.relay');
      assert.ok(relay.length >= 1, 'a relay round');
      for (const r of relay) assert.equal(parentOf(r), root, 'the relay follows the commit');
      assert.ok(
        relay.some((r) => Number(r.attributes['e4c2.outbox.rows']) > 0),
        'a round relayed the rotation',
      );
      const jobs = named('queue.process');
      assert.ok(jobs.length >= 1, 'a job');
      for (const job of jobs) {
        assert.equal(job.kind, SpanKind.CONSUMER);
        assert.ok(job.parentSpanContext?.isRemote, 'the job continues a context from job data');
        assert.ok(ancestors(job).includes('outbox.relay'), `job parents: ${ancestors(job).join()}`);
      }
      const publishes = named('mqtt.publish');
      assert.ok(publishes.length >= DEVICES, `${publishes.length} publishes in the trace`);
      for (const p of publishes) {
        assert.equal(p.kind, SpanKind.PRODUCER);
        assert.equal(parentOf(p)?.name, 'queue.process', 'each publish is a child of the job');
        assert.equal(p.attributes['messaging.system'], 'mqtt');
      }
      // The worker's database work (claims, plan, delivered versions) is in the job's trace.
      const jobDb = named('db.transaction').filter((s) => parentOf(s)?.name === 'queue.process');
      const calls = new Set(jobDb.map((s) => s.attributes['db.operation.name']));
      for (const call of ['delivery.claim', 'delivery.planBatch', 'delivery.recordAndRelease'])
        assert.ok(calls.has(call), `${call} under the job: ${[...calls].join()}`);
      const traceId = root.spanContext().traceId;
      assert.ok(
        redisCommands.some((c) => c.includes(`"traceparent":"00-${traceId}-`)),
        'the job data carried the traceparent',
      );

      // --- metrics -------------------------------------------------------------------------
      const apiAfter = (await scrape(apiNode)).samples;
      const workerAfter = (await scrape(workerNode)).samples;
      const delta = (before: Sample[], afterS: Sample[], name: string, l = {}) =>
        valueOf(afterS, name, l) - valueOf(before, name, l);
      const rotateCall = {
        transport: 'http',
        method: 'e4c2.v1.C2Admin/RotateTopicKey',
        status: '200',
      };
      assert.equal(delta(apiBefore, apiAfter, 'c2_rpc_requests_total', rotateCall), 1);
      assert.equal(delta(apiBefore, apiAfter, 'c2_rpc_duration_seconds_count', rotateCall), 1);
      assert.equal(
        delta(apiBefore, apiAfter, 'c2_rotations_total', { kind: 'topic', outcome: 'ok' }),
        1,
      );
      assert.ok(delta(apiBefore, apiAfter, 'c2_outbox_relayed_total') >= 1, 'relayed');
      assert.ok(
        delta(apiBefore, apiAfter, 'c2_lock_acquire_duration_seconds_count', {
          outcome: 'acquired',
        }) >= 1,
        'the rotation took its lock',
      );
      assert.ok(
        delta(workerBefore, workerAfter, 'c2_deliveries_total', { outcome: 'delivered' }) >=
          DEVICES,
        'deliveries counted',
      );
      assert.ok(
        delta(workerBefore, workerAfter, 'c2_delivery_attempts_total', {
          outcome: 'ok',
          attempt: '1',
        }) >= DEVICES,
      );
      assert.ok(
        delta(workerBefore, workerAfter, 'c2_mqtt_publish_duration_seconds_count', {
          outcome: 'ok',
        }) >= DEVICES,
      );
      assert.equal(valueOf(workerAfter, 'c2_mqtt_connected', { client: 'publisher' }), 1);
      for (const [node, samples, role] of [
        [apiNode, apiAfter, 'api'],
        [workerNode, workerAfter, 'worker'],
      ] as const) {
        assert.equal(
          valueOf(samples, 'c2_node_info', { role, node: `obs-${role}-${rand}` }),
          1,
          `${node.addresses.role} info`,
        );
        assert.equal(valueOf(samples, 'c2_db_pool_connections', { state: 'max' }), 10);
        assert.ok(
          samples.some((s) => s.name === 'c2_queue_jobs' && s.labels['state'] === 'waiting'),
          `${role} reports the queue`,
        );
        assert.ok(samples.some((s) => s.name === 'process_resident_memory_bytes'));
      }
      // Cluster-wide gauges settle once everything is delivered.
      await eventually(async () => {
        const now = (await scrape(apiNode)).samples;
        assert.equal(valueOf(now, 'c2_outbox_depth'), 0);
        assert.equal(valueOf(now, 'c2_convergence_lag_seconds'), 0);
        assert.equal(valueOf(now, 'c2_devices', { state: 'idle' }), DEVICES);
        // An idle node has no request waiting for a connection (not even the scrape's own).
        assert.equal(valueOf(now, 'c2_db_pool_connections', { state: 'waiting' }), 0);
      }, 20_000);

      // --- secrets (I8) ----------------------------------------------------------------------
      const metricsText = (await scrape(apiNode)).text + (await scrape(workerNode)).text;
      const spanText = JSON.stringify(
        exporter.getFinishedSpans().map((s) => ({
          name: s.name,
          attributes: s.attributes,
          events: s.events,
          status: s.status,
          resource: s.resource.attributes,
        })),
      );
      const logText = logLines.join('\n');
      assert.ok(
        logLines.some((l) => l.includes('"trace_id"')),
        'log lines carry trace ids',
      );
      assert.ok(redisCommands.length > 0, 'Redis traffic was captured');
      const redisText = redisCommands.join('\n');
      for (const key of secrets) {
        for (const form of forms(key)) {
          assert.ok(!logText.includes(form), 'a key appears in the logs');
          assert.ok(!metricsText.includes(form), 'a key appears in the metrics');
          assert.ok(!spanText.includes(form), 'a key appears in a span');
          assert.ok(!redisText.includes(form), 'a key was sent to Redis');
        }
      }
      // Metric labels never name a device or the topic.
      for (const name of [...deviceNames, topic])
        assert.ok(!metricsText.includes(name), `${name} appears in the metrics`);
    },
  );
});
