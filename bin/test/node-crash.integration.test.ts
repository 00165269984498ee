/**
 * A C2 node killed with SIGKILL in the middle of a burst of rotations (DESIGN I4, I5, I6): after
 * a restart, committed versions are 1..N without gaps, every rotation that answered OK is there,
 * requests whose outcome was unknown and are retried with the same idempotency key rotate at most
 * once, nothing is left in the outbox, and the device ends on the newest key without ever
 * applying an older one after a newer one.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { after, describe, it } from 'node:test';
import { freePorts } from '../free-ports.ts';
import { E4Client, randomSymKey, toHex, topicHash } from '../../e4/index.ts';
import { eventually } from '../../cluster/test/support/eventually.ts';
import { createTestSchema, type TestSchema } from '../../cluster/test/support/postgres.ts';
import { SimDevice } from '../../cluster/test/support/sim-device.ts';
import { testNodeEnv } from './support/node-env.ts';

interface RunningNode {
  readonly child: ChildProcess;
  readonly http: string;
}

async function startNode(schema: string, passphrase: string): Promise<RunningNode> {
  const [grpc, http, metrics] = (await freePorts('127.0.0.1', 3)) as [number, number, number];
  const child = spawn(process.execPath, ['--import', 'tsx', 'bin/start.ts'], {
    env: testNodeEnv({
      schema,
      passphrase,
      ports: { grpc, http, metrics },
      name: 'crash',
      extra: { E4C2_LOG_LEVEL: 'error', E4C2_DELIVERY_BACKOFF_INITIAL_MS: '50' },
    }),
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  const base = `http://127.0.0.1:${http}`;
  await eventually(
    async () => {
      const res = await fetch(`${base}/readyz`);
      assert.equal(res.status, 200);
    },
    30_000,
    100,
  );
  return { child, http: base };
}

async function call(
  base: string,
  method: string,
  path: string,
  body?: unknown,
  key?: string,
): Promise<{ status: number; json: Record<string, unknown> }> {
  const res = await fetch(`${base}${path}`, {
    method,
    headers: {
      'content-type': 'application/json',
      ...(key === undefined ? {} : { 'idempotency-key': key }),
    },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  return { status: res.status, json: (await res.json()) as Record<string, unknown> };
}

void describe('a node killed mid-burst', () => {
  let schema: TestSchema | undefined;
  const children: ChildProcess[] = [];
  const devices: SimDevice[] = [];
  after(async () => {
    for (const child of children) if (child.exitCode === null) child.kill('SIGKILL');
    await Promise.all(devices.map((d) => d.close()));
    await schema?.drop();
  });

  void it(
    'loses nothing, half-applies nothing, and rotates once per request id',
    { timeout: 120_000 },
    async () => {
      schema = await createTestSchema();
      const passphrase = randomBytes(16).toString('hex');
      const topic = `crash/${randomBytes(4).toString('hex')}`;
      const name = `crash-dev-${randomBytes(4).toString('hex')}`;
      const key = randomSymKey();
      const device = await SimDevice.connect(await E4Client.createSymmetric({ name }, { key }));
      devices.push(device);

      const first = await startNode(schema.schema, passphrase);
      children.push(first.child);
      assert.equal(
        (
          await call(first.http, 'POST', `/e4/client/${name}`, {
            key: Buffer.from(key).toString('base64'),
          })
        ).status,
        200,
      );
      assert.equal((await call(first.http, 'POST', `/e4/topic/${topic}`)).status, 200);
      assert.equal(
        (await call(first.http, 'PUT', `/e4/client/${name}/topic/${topic}`)).status,
        200,
      );

      const ids = Array.from(
        { length: 40 },
        (_, i) => `burst-${i}-${randomBytes(4).toString('hex')}`,
      );
      const path = `/v1/topics/${encodeURIComponent(topic)}/rotate`;
      const answered = new Map<string, number>();
      const burst = ids.map(async (id, i) => {
        await new Promise((r) => setTimeout(r, i * 5));
        try {
          const res = await call(first.http, 'POST', path, {}, id);
          if (res.status === 200) answered.set(id, Number(res.json['keyVersion']));
        } catch {
          // connection reset by the kill: outcome unknown
        }
      });
      await new Promise((r) => setTimeout(r, 120));
      first.child.kill('SIGKILL');
      await Promise.all(burst);

      const second = await startNode(schema.schema, passphrase);
      children.push(second.child);
      // Every request is retried with its id: answered ones must replay, unknown ones apply once.
      for (const id of ids) {
        const res = await call(second.http, 'POST', path, {}, id);
        assert.equal(res.status, 200, JSON.stringify(res.json));
        const version = Number(res.json['keyVersion']);
        const before = answered.get(id);
        if (before !== undefined)
          assert.equal(version, before, 'a replay returns the first answer (I4)');
      }

      const pool = schema.pool;
      const versions = (
        await pool.query(
          `SELECT k.version FROM topic_keys k JOIN topics t ON t.id = k.topic_id WHERE t.name = $1 ORDER BY k.version`,
          [topic],
        )
      ).rows.map((r: { version: number }) => r.version);
      assert.deepEqual(
        versions,
        Array.from({ length: 41 }, (_, i) => i + 1),
        'versions 1..41, no gap, once per request id',
      );
      const audit = await pool.query(
        `SELECT count(*)::int AS n FROM audit_log WHERE subject = $1 AND operation = 'RotateTopicKey'`,
        [topic],
      );
      assert.equal(
        (audit.rows[0] as { n: number }).n,
        40,
        'one audit record per rotation, none half-written',
      );
      for (const v of answered.values())
        assert.ok(v >= 2 && v <= 41, 'every answered version survived (I5)');

      const details = await call(second.http, 'GET', `/v1/topics/${encodeURIComponent(topic)}`);
      const keys = details.json['keys'] as Array<{ version: number; fingerprint: string }>;
      const latest = keys.find((k) => k.version === 41)?.fingerprint;
      const hash = toHex(topicHash(topic));
      // The killed node's claim on the device lapses after its TTL (15 s); then the new node delivers.
      await device.waitFor(() => device.topicKeyFingerprint(hash) === latest, 60_000, 'newest key');
      const versionOf = new Map(keys.map((k) => [k.fingerprint, k.version]));
      const applied = device.applied
        .filter((a) => a.type === 'SetTopicKey')
        .map((a) => versionOf.get(a.keyFingerprint ?? '') ?? 0);
      for (let i = 1; i < applied.length; i++)
        assert.ok(
          (applied[i] ?? 0) >= (applied[i - 1] ?? 0),
          `no regression: ${applied.join(',')}`,
        );
      await eventually(async () => {
        const outbox = await pool.query('SELECT count(*)::int AS n FROM outbox');
        assert.equal((outbox.rows[0] as { n: number }).n, 0, 'outbox drained (I6)');
      }, 30_000);
      second.child.kill('SIGTERM');
    },
  );
});
