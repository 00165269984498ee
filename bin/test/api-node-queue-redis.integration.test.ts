/**
 * An API node without its queue Redis still serves every call (commits wait in the outbox; the
 * rotation locks are other instances, as in the compose file), so it stays ready and reports the
 * Redis as down: before, `/readyz` answered 503 and the load balancers took every API node out
 * for a delivery pause.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { createTestSchema, type TestSchema } from '../../cluster/test/support/postgres.ts';
import { freePorts } from '../free-ports.ts';
import { testNodeEnv } from './support/node-env.ts';
import { startPrivateRedis, type PrivateRedis } from './support/redis-server.ts';

interface Readiness {
  readonly status: number;
  readonly body: { ready?: boolean; checks?: Record<string, { ok: boolean }> };
}

async function readiness(port: number): Promise<Readiness | undefined> {
  try {
    const res = await fetch(`http://127.0.0.1:${port}/readyz`, {
      signal: AbortSignal.timeout(5000),
    });
    return { status: res.status, body: (await res.json()) as Readiness['body'] };
  } catch {
    return undefined;
  }
}

/** The first readiness answer `accept` takes, polling every 100 ms for up to `withinMs`. */
async function readinessWhere(
  port: number,
  accept: (r: Readiness) => boolean,
  withinMs: number,
): Promise<Readiness> {
  const deadline = Date.now() + withinMs;
  for (;;) {
    const r = await readiness(port);
    if (r !== undefined && accept(r)) return r;
    if (Date.now() > deadline) throw new Error(`no such readiness within ${withinMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

void describe('an API node whose queue Redis is down', () => {
  let schema: TestSchema;
  let redis: PrivateRedis;
  /** The lock instance, apart from the queue as in the compose file. */
  let redlock: PrivateRedis;
  let node: ChildProcess | undefined;
  before(async () => {
    schema = await createTestSchema(false);
    redis = await startPrivateRedis();
    redlock = await startPrivateRedis();
  });
  after(async () => {
    node?.kill('SIGKILL');
    await Promise.all([redis.stop(), redlock.stop()]);
    await schema.drop();
  });

  void it('stays ready, reports the Redis as down, and still takes calls', async () => {
    const [grpc, http, metrics] = (await freePorts('127.0.0.1', 3)) as [number, number, number];
    node = spawn(process.execPath, ['--import', 'tsx', 'bin/start.ts'], {
      env: testNodeEnv({
        schema: schema.schema,
        passphrase: randomBytes(12).toString('hex'),
        ports: { grpc, http, metrics },
        name: 'api-no-queue',
        extra: {
          E4C2_ROLE: 'api',
          REDIS_URL: redis.url,
          E4C2_REDLOCK_URLS: redlock.url,
          E4C2_REDIS_SILENCE_MS: '1000',
        },
      }),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    node.stdout?.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    node.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    await readinessWhere(metrics, (r) => r.status === 200, 60_000);

    await redis.stop();
    const down = await readinessWhere(
      metrics,
      (r) => r.body.checks?.['redis']?.ok === false,
      15_000,
    );
    assert.equal(down.status, 200, JSON.stringify(down.body));
    assert.equal(down.body.ready, true);
    assert.deepEqual(down.body.checks?.['postgres'], { ok: true });

    // A call commits: the topic is created and waits for delivery in the outbox.
    const created = await fetch(`http://127.0.0.1:${http}/e4/topic/no-queue-topic`, {
      method: 'POST',
      signal: AbortSignal.timeout(10_000),
    });
    assert.equal(created.status, 200, await created.text());
    // A member, so that the outbox has a row for the relay to move.
    const client = await fetch(`http://127.0.0.1:${http}/e4/client/no-queue-device`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ key: randomBytes(32).toString('base64') }),
      signal: AbortSignal.timeout(10_000),
    });
    assert.equal(client.status, 200, await client.text());
    const linked = await fetch(
      `http://127.0.0.1:${http}/e4/client/no-queue-device/topic/no-queue-topic`,
      { method: 'PUT', signal: AbortSignal.timeout(10_000) },
    );
    assert.equal(linked.status, 200, await linked.text());

    // Errors that repeat while the Redis is down (the queue's connection, the relay's polls
    // every second) go to the JSON log, throttled, not to stderr one by one.
    const lines = (text: string): string[] => stdout.split('\n').filter((l) => l.includes(text));
    const QUEUE_LINE = 'device queue: Redis connection error';
    const RELAY_LINE = 'outbox relay error';
    const deadline = Date.now() + 15_000;
    while (
      (lines(QUEUE_LINE).length === 0 || lines(RELAY_LINE).length === 0) &&
      Date.now() < deadline
    )
      await new Promise((resolve) => setTimeout(resolve, 100));
    assert.equal(lines(QUEUE_LINE).length, 1, 'the queue connection reported the outage');
    assert.equal(lines(RELAY_LINE).length, 1, 'the relay reported the outage');
    // Let several more of the relay's polls fail: still one line each for the outage so far.
    await new Promise((resolve) => setTimeout(resolve, 3500));
    assert.equal(lines(QUEUE_LINE).length, 1, lines(QUEUE_LINE).join('\n'));
    assert.equal(lines(RELAY_LINE).length, 1, lines(RELAY_LINE).join('\n'));
    assert.doesNotMatch(stderr, /ECONNREFUSED/, 'no raw errors on stderr');
  });
});
