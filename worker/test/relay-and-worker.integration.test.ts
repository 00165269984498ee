/**
 * The cluster delivery path on the real PostgreSQL, Redis and Mosquitto: the outbox relay moves
 * committed rows to BullMQ, a worker delivers them to simulated devices, a relay whose enqueue
 * fails loses nothing, and job data carries ids only.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { E4Client, randomSymKey, toHex, topicHash } from '../../e4/index.ts';
import { MqttCommandPublisher } from '../../cluster/delivery/index.ts';
import { DeviceQueue, OutboxRelay } from '../../cluster/queue/index.ts';
import {
  startHarness,
  TEST_MQTT_URL,
  type C2Harness,
} from '../../cluster/test/support/c2-harness.ts';
import { eventually } from '../../cluster/test/support/eventually.ts';
import { SimDevice } from '../../cluster/test/support/sim-device.ts';
import { workerSyncDeps } from '../../cluster/test/support/worker-sync-deps.ts';
import { C2Metrics } from '../../cluster/telemetry/index.ts';
import { DeliveryWorker } from '../index.ts';

const ctx = { actor: 'test' };
const REDIS_URL = process.env['REDIS_TEST_URL'] ?? 'redis://127.0.0.1:6379';

void describe('outbox relay and delivery worker', () => {
  let h: C2Harness;
  let prefix: string;
  let queue: DeviceQueue;
  let publisher: MqttCommandPublisher;
  let worker: DeliveryWorker;
  const redis = new Redis(REDIS_URL, { maxRetriesPerRequest: null });
  const devices: SimDevice[] = [];

  before(async () => {
    h = await startHarness({ start: false });
    prefix = `e4c2test-${randomBytes(4).toString('hex')}`;
    queue = DeviceQueue.create(redis, prefix);
    publisher = await MqttCommandPublisher.connect({
      url: TEST_MQTT_URL,
      clientId: `worker-test-${randomBytes(3).toString('hex')}`,
      pubackTimeoutMs: 3000,
    });
    worker = DeliveryWorker.start({
      connection: redis,
      prefix,
      store: h.store,
      queue,
      concurrency: 2,
      sweepIntervalMs: 60_000,
      busyRetryMs: 200,
      onError: () => undefined,
      syncDeps: workerSyncDeps(h, publisher, 'worker-test'),
    });
  });

  after(async () => {
    await Promise.all(devices.map((d) => d.close()));
    await worker.close();
    await queue.close();
    const keys = await redis.keys(`${prefix}:*`);
    if (keys.length > 0) await redis.del(...keys);
    redis.disconnect();
    await publisher.close();
    await h.close();
  });

  void it('relays committed outbox rows and the worker delivers to the devices', async () => {
    const relay = new OutboxRelay(h.store, queue, {
      batch: 100,
      pollIntervalMs: 100,
      onError: () => undefined,
    });
    relay.start();
    try {
      const topic = `relay-${randomBytes(4).toString('hex')}`;
      await h.service.newTopic(ctx, topic);
      const names = [0, 1, 2].map((i) => `${topic}-d${i}`);
      for (const name of names) {
        const key = randomSymKey();
        await h.service.newClient(ctx, name, key);
        devices.push(await SimDevice.connect(await E4Client.createSymmetric({ name }, { key })));
        await h.service.newTopicClient(ctx, name, topic);
      }
      await h.service.rotateTopicKey(ctx, topic);
      const details = await h.service.getTopic(topic);
      const current = details.keys.find((k) => k.version === details.keyVersion)?.fingerprint;
      const hash = toHex(topicHash(topic));
      for (const d of devices.slice(-3))
        await d.waitFor(() => d.topicKeyFingerprint(hash) === current, 15_000, 'rotated key');
      // The relay commits its claim after adding the jobs, so a worker may deliver first.
      await eventually(async () => {
        const outbox = await h.schema.pool.query('SELECT count(*)::int AS n FROM outbox');
        assert.equal((outbox.rows[0] as { n: number }).n, 0, 'every outbox row was relayed');
      });
    } finally {
      await relay.close();
    }
  });

  void it('a worker without a broker connection hands its jobs back, claiming nothing', async () => {
    const ownPrefix = `${prefix}-down`;
    const downQueue = DeviceQueue.create(redis, ownPrefix);
    const published: string[] = [];
    const metrics = new C2Metrics({
      node: 'down',
      role: 'worker',
      version: '0',
      processMetrics: false,
    });
    const down = DeliveryWorker.start({
      connection: redis,
      prefix: ownPrefix,
      store: h.store,
      queue: downQueue,
      concurrency: 1,
      sweepIntervalMs: 60_000,
      busyRetryMs: 200,
      onError: () => undefined,
      canSend: () => false,
      metrics,
      syncDeps: workerSyncDeps(
        h,
        {
          publish: (topic) => {
            published.push(topic);
            return Promise.resolve();
          },
        },
        'worker-down',
      ),
    });
    try {
      const name = `down-${randomBytes(4).toString('hex')}`;
      await h.service.newClient(ctx, name, randomSymKey());
      const topic = `${name}-t`;
      await h.service.newTopic(ctx, topic);
      await h.service.newTopicClient(ctx, name, topic);
      const row = await h.store.read.clients.byName(name);
      assert.ok(row);
      await downQueue.add([row.id]);
      // Handed back with a delay, for a worker that can send: nothing claimed, nothing written.
      await eventually(async () => {
        assert.ok(((await downQueue.counts())['delayed'] ?? 0) >= 1, 'the job is back, delayed');
      });
      assert.deepEqual(published, []);
      // Held back, and said so (GetClient shows nothing: no device was touched).
      await eventually(async () => {
        const scraped = (await metrics.scrape()).body;
        assert.match(scraped, /^c2_delivery_deferred_total(\{[^}]*\})? [1-9]/m);
      });
      const after = await h.store.read.clients.byId(row.id);
      assert.deepEqual([after?.syncState, after?.syncError], ['idle', null]);
      const claim = await h.schema.pool.query<{ owner: string | null }>(
        'SELECT inflight_owner AS owner FROM clients WHERE id = $1',
        [row.id],
      );
      assert.equal(claim.rows[0]?.owner, null, 'never claimed');
    } finally {
      await down.close();
      await downQueue.close();
      const keys = await redis.keys(`${ownPrefix}:*`);
      if (keys.length > 0) await redis.del(...keys);
    }
  });

  void it('a relay whose enqueue fails keeps the rows, and job data holds ids only', async () => {
    const name = `relayfail-${randomBytes(4).toString('hex')}`;
    await h.service.newClient(ctx, name, randomSymKey());
    await h.service.resyncClient(ctx, name); // writes an outbox row
    const failing = new OutboxRelay(
      h.store,
      { add: () => Promise.reject(new Error('redis down')) },
      { batch: 100, pollIntervalMs: 60_000, onError: () => undefined },
    );
    await assert.rejects(failing.relayOnce(), /redis down/);
    const kept = await h.schema.pool.query('SELECT count(*)::int AS n FROM outbox');
    assert.ok((kept.rows[0] as { n: number }).n >= 1, 'rows survive a failed enqueue');

    const spy: string[][] = [];
    const recording = new OutboxRelay(
      h.store,
      {
        add: (ids: readonly string[]) => {
          spy.push([...ids]);
          return Promise.resolve(1);
        },
      },
      { batch: 100, pollIntervalMs: 60_000, onError: () => undefined },
    );
    assert.ok((await recording.relayOnce()) >= 1);
    for (const ids of spy)
      for (const id of ids) assert.match(id, /^\d+$/, 'job data is device ids only');
  });
});
