/**
 * A cluster as processes (DESIGN §5-§7): 3 API nodes and 2 delivery workers started by
 * `startCluster` (the code of `npm run cluster`) behind the layer-4 load balancer of `bin/lb/`, on
 * the machine's PostgreSQL (a private schema), a private `redis-server` for the BullMQ queue, a
 * Redlock quorum of 3 private `redis-server` processes and the machine's Mosquitto, with 40
 * simulated E4 devices subscribed to their control topics.
 *
 * - I3/I4/I1/I2 under contention: 100 concurrent rotations of one topic, spread over every API
 *   node directly and through the load balancer (HTTP and gRPC), give versions 1..101 without a
 *   gap; every device ends on v101 and never applies an older version after a newer one.
 * - I1/I7 with a worker SIGKILLed while it holds device claims mid-fan-out: every device still
 *   converges (the other worker takes over once the claims lapse, 15 s), and no (device, version)
 *   reaches a device more often than the delivery cap (E4C2_DELIVERY_MAX_ATTEMPTS).
 * - I9 with an API node SIGKILLed under load through the load balancer: at most the requests in
 *   flight at the kill fail (budget: one per concurrent client), the balancer takes the node out
 *   within 2 s and back in within 2 s of its restart.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { GrpcC2Api } from '../../cli/grpc-client.ts';
import { TEST_MQTT_URL } from '../../cluster/test/support/c2-harness.ts';
import { eventually } from '../../cluster/test/support/eventually.ts';
import {
  createTestSchema,
  TEST_DATABASE_URL,
  type TestSchema,
} from '../../cluster/test/support/postgres.ts';
import { SimDevice } from '../../cluster/test/support/sim-device.ts';
import { E4Client, randomSymKey, toHex, topicHash } from '../../e4/index.ts';
import { startCluster, type LocalCluster } from '../cluster.ts';
import { httpJson, type JsonAnswer } from './support/http-json.ts';
import { startPrivateRedis, type PrivateRedis } from './support/redis-server.ts';

/** The delivery cap the nodes run with (I7). */
const MAX_ATTEMPTS = 5;
const DEVICES = 40;
const ROTATIONS = 100;

/** Runs `task` over `items` with at most `limit` at once. */
async function inPool<T>(items: readonly T[], limit: number, task: (item: T) => Promise<void>) {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length) await task(items[next++] as T);
    }),
  );
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Fails with the answer when it is not `status`. */
function expectStatus(answer: JsonAnswer, status: number, what: string): JsonAnswer {
  assert.equal(answer.status, status, `${what}: ${JSON.stringify(answer.json)}`);
  return answer;
}

interface KeyInfo {
  readonly version: number;
  readonly fingerprint: string;
}

void describe('a cluster of 3 API nodes and 2 workers behind the load balancer', () => {
  let schema: TestSchema | undefined;
  let queueRedis: PrivateRedis | undefined;
  let cluster: LocalCluster | undefined;
  let dataDir: string | undefined;
  const devices: SimDevice[] = [];
  const deviceNames: string[] = [];
  const grpcClients: GrpcC2Api[] = [];

  const running = (): LocalCluster => {
    assert.ok(cluster !== undefined, 'the cluster is running');
    return cluster;
  };
  const grpc = (endpoint: string): GrpcC2Api => {
    const client = GrpcC2Api.connect({
      endpoint,
      tls: { kind: 'insecure' },
      timeoutMs: 10_000,
      userAgent: 'cluster-test',
      retry: { delaysMs: [] },
    });
    grpcClients.push(client);
    return client;
  };
  const topicDetails = async (topic: string): Promise<KeyInfo[]> => {
    const res = expectStatus(
      await httpJson(running().lb.http, 'GET', `/v1/topics/${encodeURIComponent(topic)}`),
      200,
      'GetTopic',
    );
    return res.json['keys'] as KeyInfo[];
  };
  /** Creates a topic (v1), attaches every device and waits until each holds v1. */
  const topicWithDevices = async (topic: string): Promise<KeyInfo> => {
    const lb = running().lb.http;
    expectStatus(await httpJson(lb, 'POST', `/e4/topic/${topic}`), 200, 'NewTopic');
    await inPool(deviceNames, 10, async (name) => {
      expectStatus(
        await httpJson(lb, 'PUT', `/e4/client/${name}/topic/${topic}`),
        200,
        'NewTopicClient',
      );
    });
    const v1 = (await topicDetails(topic)).find((k) => k.version === 1);
    assert.ok(v1 !== undefined, 'the topic starts at v1');
    const hash = toHex(topicHash(topic));
    await Promise.all(
      devices.map((d) =>
        d.waitFor(() => d.topicKeyFingerprint(hash) === v1.fingerprint, 30_000, `${topic} v1`),
      ),
    );
    return v1;
  };
  /** Versions of `topic` each device applied, in order (unknown fingerprints as -1). */
  const appliedVersions = (topic: string, versionOf: ReadonlyMap<string, number>): number[][] => {
    const hash = toHex(topicHash(topic));
    return devices.map((d) =>
      d.applied
        .filter((a) => a.type === 'SetTopicKey' && a.topicHash === hash)
        .map((a) => versionOf.get(a.keyFingerprint ?? '') ?? -1),
    );
  };
  /** I2 and I7 for one topic: non-decreasing versions, each at most MAX_ATTEMPTS times. */
  const checkHistories = (histories: readonly number[][]): { maxCopies: number } => {
    let maxCopies = 0;
    for (const [i, seq] of histories.entries()) {
      assert.ok(!seq.includes(-1), `device ${i} applied a key of no known version`);
      for (let j = 1; j < seq.length; j++)
        assert.ok((seq[j] ?? 0) >= (seq[j - 1] ?? 0), `device ${i} regressed: ${seq.join(',')}`);
      const copies = new Map<number, number>();
      for (const v of seq) copies.set(v, (copies.get(v) ?? 0) + 1);
      for (const [v, n] of copies) {
        assert.ok(n <= MAX_ATTEMPTS, `device ${i} got v${v} ${n} times (cap ${MAX_ATTEMPTS})`);
        maxCopies = Math.max(maxCopies, n);
      }
    }
    return { maxCopies };
  };

  before(
    async () => {
      schema = await createTestSchema();
      queueRedis = await startPrivateRedis();
      dataDir = await mkdtemp(join(tmpdir(), 'e4c2-cluster-test-'));
      const env: Record<string, string | undefined> = {};
      for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('E4C2_')) env[k] = v;
      cluster = await startCluster({
        apiNodes: 3,
        workers: 2,
        redlock: 3,
        basePort: 0,
        schema: schema.schema,
        dataDir,
        databaseUrl: TEST_DATABASE_URL,
        redisUrl: queueRedis.url,
        mqttUrl: TEST_MQTT_URL,
        host: '127.0.0.1',
        env: {
          ...env,
          E4C2_LOG_LEVEL: 'warn',
          E4C2_DELIVERY_MAX_ATTEMPTS: String(MAX_ATTEMPTS),
          E4C2_DELIVERY_BACKOFF_INITIAL_MS: '50',
          E4C2_DELIVERY_BACKOFF_MAX_MS: '1000',
          E4C2_PUBACK_TIMEOUT_MS: '3000',
          E4C2_SHUTDOWN_TIMEOUT_MS: '5000',
        },
        log: (line) => {
          process.stderr.write(`# ${line}\n`);
        },
        // Nodes log at warn: their warnings and errors are part of the test's report.
        childOutput: (name, _stream, line) => {
          if (line.startsWith('{')) process.stderr.write(`# ${name} | ${line}\n`);
        },
        startTimeoutMs: 60_000,
      });
      const lb = cluster.lb.http;
      const rand = randomBytes(3).toString('hex');
      for (let i = 0; i < DEVICES; i++) {
        const name = `cl-dev-${rand}-${i}`;
        const key = randomSymKey();
        devices.push(
          await SimDevice.connect(await E4Client.createSymmetric({ name }, { key }), TEST_MQTT_URL),
        );
        deviceNames.push(name);
        expectStatus(
          await httpJson(lb, 'POST', `/e4/client/${name}`, {
            body: { key: Buffer.from(key).toString('base64') },
          }),
          200,
          'NewClient',
        );
      }
    },
    { timeout: 120_000 },
  );

  after(async () => {
    for (const c of grpcClients) c.close();
    await cluster?.stop();
    await Promise.all(devices.map((d) => d.close()));
    await queueRedis?.stop();
    await schema?.drop();
    if (dataDir !== undefined) await rm(dataDir, { recursive: true, force: true });
  });

  void it(
    `${ROTATIONS} concurrent rotations over every node and the balancer: versions 1..${ROTATIONS + 1}, every device on the newest, none regresses`,
    { timeout: 90_000 },
    async (t) => {
      const c = running();
      const topic = `cl/rot/${randomBytes(4).toString('hex')}`;
      const v1 = await topicWithDevices(topic);
      const apis = c.nodes.filter((n) => n.role === 'api');
      const channels = [grpc(c.lb.grpc), grpc(c.lb.grpc), grpc(c.lb.grpc)];
      const targets = [
        ...apis.map((n) => ({ kind: 'http' as const, base: n.http ?? '', name: n.name })),
        { kind: 'http' as const, base: c.lb.http, name: 'lb-http' },
        { kind: 'grpc' as const, base: c.lb.grpc, name: 'lb-grpc' },
      ];
      const answers = new Map<number, KeyInfo>();
      const perTarget = new Map<string, number>();
      let retries = 0;
      const started = Date.now();
      await Promise.all(
        Array.from({ length: ROTATIONS }, async (_, i) => {
          const target = targets[i % targets.length];
          assert.ok(target !== undefined);
          const id = `rot-${i}-${randomBytes(4).toString('hex')}`;
          // Retried with the same id on failure (lock wait timed out, 503, connection lost): I4.
          for (let attempt = 1; ; attempt++) {
            try {
              let info: KeyInfo;
              if (target.kind === 'grpc') {
                const res = await (channels[i % channels.length] as GrpcC2Api).admin(
                  'RotateTopicKey',
                  { name: topic, request_id: id },
                );
                info = { version: res.key_version, fingerprint: res.fingerprint };
              } else {
                const res = await httpJson(
                  target.base,
                  'POST',
                  `/v1/topics/${encodeURIComponent(topic)}/rotate`,
                  { body: {}, idempotencyKey: id },
                );
                if (res.status !== 200) throw new Error(`HTTP ${res.status}`);
                info = {
                  version: Number(res.json['keyVersion']),
                  fingerprint: String(res.json['fingerprint']),
                };
              }
              assert.ok(!answers.has(info.version), `v${info.version} answered twice`);
              answers.set(info.version, info);
              perTarget.set(target.name, (perTarget.get(target.name) ?? 0) + 1);
              return;
            } catch (err) {
              if (err instanceof assert.AssertionError) throw err;
              if (attempt >= 10 || Date.now() - started > 60_000) throw err;
              retries += 1;
              await sleep(100 + Math.floor(Math.random() * 200));
            }
          }
        }),
      );
      const elapsed = Date.now() - started;
      assert.deepEqual(
        [...answers.keys()].sort((a, b) => a - b),
        Array.from({ length: ROTATIONS }, (_, i) => i + 2),
        'answered versions are 2..101, each once',
      );
      const stored = (
        await (schema as TestSchema).pool.query(
          `SELECT k.version FROM topic_keys k JOIN topics t ON t.id = k.topic_id
           WHERE t.name = $1 ORDER BY k.version`,
          [topic],
        )
      ).rows.map((r: { version: number }) => r.version);
      assert.deepEqual(
        stored,
        Array.from({ length: ROTATIONS + 1 }, (_, i) => i + 1),
        'committed versions 1..101, no gap, no fork (I3)',
      );

      const versionOf = new Map<string, number>([[v1.fingerprint, 1]]);
      for (const info of answers.values()) versionOf.set(info.fingerprint, info.version);
      const newest = answers.get(ROTATIONS + 1)?.fingerprint;
      const hash = toHex(topicHash(topic));
      const converging = Date.now();
      await Promise.all(
        devices.map((d) =>
          d.waitFor(() => d.topicKeyFingerprint(hash) === newest, 60_000, 'the newest key'),
        ),
      );
      const convergedMs = Date.now() - converging;
      const histories = appliedVersions(topic, versionOf);
      const { maxCopies } = checkHistories(histories);
      const seen = histories.map((h) => new Set(h).size);
      t.diagnostic(
        `${ROTATIONS} rotations in ${elapsed} ms with ${retries} retries (same idempotency key); per entry point: ${JSON.stringify(Object.fromEntries(perTarget))}`,
      );
      t.diagnostic(
        `all ${DEVICES} devices on v${ROTATIONS + 1} ${convergedMs} ms after the last answer; distinct versions applied per device ${Math.min(...seen)}..${Math.max(...seen)}; most copies of one version ${maxCopies}`,
      );
    },
  );

  void it(
    'a worker SIGKILLed while it holds device claims mid-fan-out: every device converges, none over the cap',
    { timeout: 120_000 },
    async (t) => {
      const c = running();
      const pool = (schema as TestSchema).pool;
      const topic = `cl/kill-worker/${randomBytes(4).toString('hex')}`;
      const v1 = await topicWithDevices(topic);
      const versionOf = new Map<string, number>([[v1.fingerprint, 1]]);
      let committed = 1;
      const rotate = async (tag: string): Promise<void> => {
        const res = expectStatus(
          await httpJson(c.lb.http, 'POST', `/v1/topics/${encodeURIComponent(topic)}/rotate`, {
            body: {},
            idempotencyKey: `kw-${tag}-${randomBytes(4).toString('hex')}`,
          }),
          200,
          'RotateTopicKey',
        );
        committed = Number(res.json['keyVersion']);
        versionOf.set(String(res.json['fingerprint']), committed);
      };
      interface Victim {
        readonly name: string;
        readonly owner: string;
        readonly at: number;
        readonly atVersion: number;
        /** Claims the dead process still held once it was gone. */
        readonly held: number;
      }
      // A burst of rotations; the first worker seen holding device claims (clients.inflight_owner
      // is "<node id>-<random>") is SIGKILLed. A fan-out takes milliseconds, so the worker may
      // have released its claims before the signal landed: that attempt does not count, the
      // worker is restarted and another burst tried (3 attempts at most).
      const burstAndKill = async (attempt: number): Promise<Victim | undefined> => {
        let seen: { name: string; owner: string; at: number; atVersion: number } | undefined;
        const burst = { done: false };
        const rotating = (async () => {
          for (let i = 0; i < 20; i++) {
            await rotate(`${attempt}-${i}`);
            await sleep(40);
          }
          burst.done = true;
        })();
        while (seen === undefined && !burst.done) {
          const held = await pool.query(
            `SELECT inflight_owner AS owner FROM clients
             WHERE inflight_until > now() AND inflight_owner ~ '^worker-[0-9]+-' LIMIT 1`,
          );
          const owner = (held.rows[0] as { owner: string } | undefined)?.owner;
          const name = owner === undefined ? undefined : /^(worker-\d+)-/.exec(owner)?.[1];
          if (owner !== undefined && name !== undefined) {
            c.kill(name, 'SIGKILL');
            seen = { name, owner, at: Date.now(), atVersion: committed };
          } else await sleep(2);
        }
        await rotating;
        if (seen === undefined) return undefined;
        const gone = seen.name;
        await eventually(() => {
          assert.equal(c.node(gone).running, false);
        }, 5000);
        const left = await pool.query(
          `SELECT count(*)::int AS n FROM clients WHERE inflight_owner = $1 AND inflight_until > now()`,
          [seen.owner],
        );
        const held = (left.rows[0] as { n: number }).n;
        if (held > 0) return { ...seen, held };
        t.diagnostic(`attempt ${attempt}: ${gone} had released its claims before it died`);
        await c.restart(gone);
        return undefined;
      };
      let victim: Victim | undefined;
      for (let attempt = 1; attempt <= 3 && victim === undefined; attempt++)
        victim = await burstAndKill(attempt);
      assert.ok(victim !== undefined, 'a worker died holding device claims');

      const finalVersion = committed;
      const newest = [...versionOf].find(([, v]) => v === finalVersion)?.[0];
      const hash = toHex(topicHash(topic));
      const lastAnswer = Date.now();
      await Promise.all(
        devices.map((d) =>
          d.waitFor(() => d.topicKeyFingerprint(hash) === newest, 75_000, 'the newest key'),
        ),
      );
      const convergedMs = Date.now() - lastAnswer;
      const sinceKillMs = Date.now() - victim.at;
      // The dead worker's claims lapse within their TTL (15 s); its BullMQ job stays active for
      // 30-60 s, which must not hold back the later rotations' jobs (cluster/queue/device-queue.ts).
      assert.ok(sinceKillMs <= 25_000, `converged within 25 s of the kill, took ${sinceKillMs} ms`);
      const { maxCopies } = checkHistories(appliedVersions(topic, versionOf));
      t.diagnostic(
        `killed ${victim.name} at v${victim.atVersion}; it died holding ${victim.held} device claims; all ${DEVICES} devices on v${finalVersion} ${sinceKillMs} ms after the kill (${convergedMs} ms after the last rotation); most copies of one (device, version) ${maxCopies} (cap ${MAX_ATTEMPTS})`,
      );
      await eventually(
        async () => {
          const left = await pool.query('SELECT count(*)::int AS n FROM outbox');
          assert.equal((left.rows[0] as { n: number }).n, 0, 'outbox drained (I6)');
        },
        20_000,
        200,
      );
      // Back to full strength for the next scenario.
      await c.restart(victim.name);
    },
  );

  void it(
    'an API node SIGKILLed under load: requests through the balancer keep succeeding',
    { timeout: 90_000 },
    async (t) => {
      const c = running();
      const lb = c.lb;
      const httpClients = 6;
      const grpcChannels = Array.from({ length: 3 }, () => grpc(lb.grpc));
      const clients = httpClients + grpcChannels.length;
      // One topic per client, so no client waits on another's rotations.
      const topics = Array.from(
        { length: clients },
        (_, i) => `cl/kill-api/${randomBytes(4).toString('hex')}-${i}`,
      );
      for (const topic of topics)
        expectStatus(await httpJson(lb.http, 'POST', `/e4/topic/${topic}`), 200, 'NewTopic');

      // The error budget (I9). Each client has one request in flight at a time, so the kill can
      // fail at most one request per client: the one the dead node was serving ("transport").
      // If that request was a rotation holding its topic's Redlock lease, the lease outlives the
      // node by up to LOCK_TTL_MS (10 s, cluster/domain/mutation.ts) while other nodes wait at
      // most 5 s for it, so that client's next rotation may get one 503 C2_UNAVAILABLE ("lock").
      // Nothing else may fail; at most 2 failures per client in all.
      interface Failure {
        readonly client: number;
        readonly kind: 'transport' | 'lock' | 'other';
        readonly op: 'read' | 'rotate';
        readonly atMs: number;
        readonly detail: string;
      }
      const failures: Failure[] = [];
      const lastRotation = new Array<number>(clients).fill(0);
      let killedAt = Number.POSITIVE_INFINITY;
      let ok = 0;
      let stop = false;
      const lockText = /could not acquire the lock/;
      const fail = (client: number, op: Failure['op'], kind: Failure['kind'], detail: string) => {
        failures.push({ client, kind, op, atMs: Date.now() - killedAt, detail });
      };
      const loop = async (once: (n: number) => Promise<void>): Promise<void> => {
        for (let n = 0; !stop && n < 100_000; n++) await once(n);
      };
      const loops = [
        ...Array.from({ length: httpClients }, (_, i) =>
          loop(async (n) => {
            const topic = encodeURIComponent(topics[i] ?? '');
            const op = n % 2 === 0 ? 'read' : 'rotate';
            try {
              const res =
                op === 'read'
                  ? await httpJson(lb.http, 'GET', `/v1/topics/${topic}`)
                  : await httpJson(lb.http, 'POST', `/v1/topics/${topic}/rotate`, {
                      body: {},
                      idempotencyKey: `ka-${i}-${n}-${randomBytes(3).toString('hex')}`,
                    });
              if (res.status === 200) {
                ok += 1;
                if (op === 'rotate') lastRotation[i] = Date.now();
              } else {
                const text = JSON.stringify(res.json);
                fail(i, op, res.status === 503 && lockText.test(text) ? 'lock' : 'other', text);
              }
            } catch (err) {
              fail(i, op, 'transport', (err as Error).message);
            }
          }),
        ),
        ...grpcChannels.map((channel, k) =>
          loop(async (n) => {
            const i = httpClients + k;
            const name = topics[i] ?? '';
            const op = n % 2 === 0 ? 'read' : 'rotate';
            try {
              if (op === 'read') await channel.admin('GetTopic', { name });
              else {
                await channel.admin('RotateTopicKey', {
                  name,
                  request_id: `kg-${i}-${n}-${randomBytes(3).toString('hex')}`,
                });
                lastRotation[i] = Date.now();
              }
              ok += 1;
            } catch (err) {
              const e = err as { code?: number; details?: string; message: string };
              const detail = `code ${e.code ?? '?'}: ${e.details ?? e.message}`;
              // 14 UNAVAILABLE: the connection broke (or the lock wait, told apart by its text).
              const kind = lockText.test(detail) ? 'lock' : e.code === 14 ? 'transport' : 'other';
              fail(i, op, kind, detail);
            }
          }),
        ),
      ];
      await sleep(2000);
      const before = ok;
      assert.equal(failures.length, 0, 'no failure before the kill');
      const victim = 'api-2';
      c.kill(victim, 'SIGKILL');
      killedAt = Date.now();
      await eventually(
        () => {
          assert.equal(
            lb.balancer.backends().find((b) => b.name === victim)?.state,
            'down',
            'the balancer took the node out',
          );
        },
        5000,
        20,
      );
      const removedMs = Date.now() - killedAt;
      // Past the longest lease a dead node can leave behind, plus one lock wait.
      await sleep(12_000);
      stop = true;
      await Promise.all(loops);
      const afterKill = ok - before;
      const byKind = (kind: Failure['kind']) => failures.filter((f) => f.kind === kind);
      t.diagnostic(
        `${clients} clients (${httpClients} HTTP, one connection per request; ${grpcChannels.length} gRPC channels): ${before} requests OK before the kill, ${afterKill} after; failures ${failures.length} (budget ${2 * clients}): ${byKind('transport').length} in flight at the kill, ${byKind('lock').length} waiting on the dead node's lease, ${byKind('other').length} other`,
      );
      for (const f of failures)
        t.diagnostic(`  client ${f.client} ${f.op} ${f.kind} at +${f.atMs} ms: ${f.detail}`);
      t.diagnostic(`${victim} out of the balancer ${removedMs} ms after the kill`);
      assert.deepEqual(byKind('other'), [], 'no failure outside the budget');
      for (let i = 0; i < clients; i++) {
        const mine = failures.filter((f) => f.client === i);
        const lost = mine.filter((f) => f.kind === 'transport');
        const lock = mine.filter((f) => f.kind === 'lock');
        assert.ok(lost.length <= 1, `client ${i}: at most its in-flight request failed`);
        assert.ok(
          lock.length <= (lost[0]?.op === 'rotate' ? 1 : 0),
          `client ${i}: a lock wait fails only after a lost rotation`,
        );
        assert.ok(
          (lastRotation[i] ?? 0) > killedAt + 10_000,
          `client ${i}: rotations succeed again once the lease lapsed`,
        );
      }
      assert.ok(failures.length <= 2 * clients);
      for (const f of failures) assert.ok(f.atMs <= 11_000, 'failures only right after the kill');
      assert.ok(removedMs <= 3000, `removed within 3 s, took ${removedMs} ms`);

      await c.restart(victim);
      const restarted = Date.now();
      await eventually(
        () => {
          assert.equal(lb.balancer.backends().find((b) => b.name === victim)?.state, 'up');
        },
        5000,
        20,
      );
      const restoredMs = Date.now() - restarted;
      t.diagnostic(`${victim} back in the balancer ${restoredMs} ms after it was ready again`);
      assert.ok(restoredMs <= 3000, `restored within 3 s, took ${restoredMs} ms`);
    },
  );
});
