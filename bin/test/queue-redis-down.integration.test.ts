/**
 * The device queue's producer connection while its Redis is down (a private `redis-server`,
 * stopped and started again on its port): an add fails at once with `C2_UNAVAILABLE`, refused for
 * want of a connection rather than kept in ioredis's offline queue, and the outbox relay's round
 * then rolls back, so its rows wait in the outbox and go out once Redis answers again. With the
 * offline queue, the relay's transaction held its rows and a pool connection until ioredis gave
 * the add up, and a worker's sweeps and hand-backs waited for Redis for as long as it was down.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { pino } from 'pino';
import { C2Error } from '../../cluster/errors.ts';
import { Lifecycle } from '../../cluster/lifecycle.ts';
import { DeviceQueue, OutboxRelay } from '../../cluster/queue/index.ts';
import { startHarness, type C2Harness } from '../../cluster/test/support/c2-harness.ts';
import { eventually } from '../../cluster/test/support/eventually.ts';
import { randomSymKey } from '../../e4/index.ts';
import { connectQueueProducer } from '../node-parts.ts';
import { externalRedisConfig } from './support/redis-config.ts';
import { startPrivateRedis, type PrivateRedis } from './support/redis-server.ts';

const logger = pino({ level: 'silent' });

/** The rejection of `promise`, which must reject. */
async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (err) {
    return err;
  }
  assert.fail('expected a rejection');
}

void describe("the device queue's producer with its Redis down", () => {
  let h: C2Harness;
  let server: PrivateRedis;
  const lifecycle = new Lifecycle(logger);
  before(async () => {
    h = await startHarness({ start: false });
    server = await startPrivateRedis();
  });
  after(async () => {
    await lifecycle.shutdown(5000);
    await server.stop();
    await h.close();
  });

  void it('refuses an add at once, and the relay keeps its rows until Redis is back', async () => {
    const client = await connectQueueProducer(
      externalRedisConfig(server.url),
      'queue',
      lifecycle,
      logger,
    );
    const prefix = `down-${randomBytes(4).toString('hex')}`;
    const queue = DeviceQueue.create(client, prefix);
    lifecycle.add('device queue', () => queue.close());
    const relay = new OutboxRelay(h.store, queue, {
      batch: 100,
      pollIntervalMs: 60_000,
      onError: () => undefined,
    });
    const waiting = async (): Promise<number> => (await queue.counts()).waiting ?? Number.NaN;
    const outboxRows = async (): Promise<number> =>
      Number(
        (await h.schema.pool.query<{ n: string }>('SELECT count(*) AS n FROM outbox')).rows[0]?.n,
      );

    await relay.relayOnce(); // whatever the schema's set-up left
    assert.equal(await outboxRows(), 0);
    const ctx = { actor: 'test' };
    await h.service.newClient(ctx, `device-${prefix}`, randomSymKey());
    await h.service.newTopic(ctx, `topic-${prefix}`);
    await h.service.newTopicClient(ctx, `device-${prefix}`, `topic-${prefix}`);
    const rows = await outboxRows();
    assert.ok(rows > 0, 'a device joining a topic has an outbox row');

    const port = Number(new URL(server.url).port);
    await server.stop();
    await eventually(() => {
      assert.notEqual(client.status, 'ready');
    });

    const err = await rejection(queue.add(['a-device']));
    assert.ok(err instanceof C2Error, String(err));
    assert.equal(err.code, 'C2_UNAVAILABLE');
    assert.match(err.message, /device queue's Redis/);
    // Refused for want of a connection: never queued to run later.
    assert.ok(err.cause instanceof Error);
    assert.match(err.cause.message, /enableOfflineQueue options is false/);

    const relayErr = await rejection(relay.relayOnce());
    assert.ok(relayErr instanceof C2Error && relayErr.code === 'C2_UNAVAILABLE');
    assert.equal(await outboxRows(), rows, 'the round rolled back: its rows wait in the outbox');

    server = await startPrivateRedis('127.0.0.1', port);
    await eventually(() => {
      assert.equal(client.status, 'ready');
    }, 10_000);
    assert.equal(await waiting(), 0, 'nothing refused while down ran later');
    assert.equal(await relay.relayOnce(), rows);
    assert.equal(await outboxRows(), 0);
    assert.equal(await waiting(), 1);
  });
});
