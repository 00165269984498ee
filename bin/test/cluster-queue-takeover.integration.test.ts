/**
 * The device queue and the delivery worker under the failures a cluster sees (DESIGN R3, R5, I1,
 * I2, I6), deterministically, on the real PostgreSQL (private schema), a private `redis-server`
 * and Mosquitto:
 *
 * - New work is never absorbed by a job that will not run it. A job id is deterministic per
 *   device set, so a retried relay round merges into the job still *waiting*; but a job already
 *   *active* (its worker may be dead, or past its last read of the state) or *failed* (kept for
 *   inspection) must not absorb a later add, or the devices wait for BullMQ's stalled-job
 *   recovery (30-60 s, not the 15 s claim TTL) or for ever. A "dead" worker is simulated exactly:
 *   its job stays active and its claims last their TTL.
 * - One worker running overlapping jobs at once never has two commands in flight to one device:
 *   claims name the process, so they cannot keep its own jobs apart.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { Queue, Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { MqttCommandPublisher, type CommandPublisher } from '../../cluster/delivery/index.ts';
import {
  DEVICE_QUEUE,
  DeviceQueue,
  jobIdFor,
  OutboxRelay,
  SYNC_JOB,
  type SyncJobData,
} from '../../cluster/queue/index.ts';
import { PgDelivery } from '../../cluster/storage/index.ts';
import {
  startHarness,
  TEST_MQTT_URL,
  type C2Harness,
} from '../../cluster/test/support/c2-harness.ts';
import { eventually } from '../../cluster/test/support/eventually.ts';
import { SimDevice } from '../../cluster/test/support/sim-device.ts';
import { workerSyncDeps } from '../../cluster/test/support/worker-sync-deps.ts';
import { E4Client, randomSymKey, toHex, topicHash } from '../../e4/index.ts';
import { DeliveryWorker } from '../../worker/index.ts';
import { startPrivateRedis, type PrivateRedis } from './support/redis-server.ts';

const ctx = { actor: 'test' };
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

void describe('device queue and delivery worker: takeover and per-device order', () => {
  let h: C2Harness;
  let redisServer: PrivateRedis;
  let redis: Redis;
  let publisher: MqttCommandPublisher;
  const devices: SimDevice[] = [];
  /** What the running test started, closed in reverse order when it ends (pass or fail). */
  let closers: Array<() => Promise<unknown>> = [];
  const cleanUp = async (): Promise<void> => {
    const running = closers.reverse();
    closers = [];
    for (const close of running) await close().catch(() => undefined);
  };
  /** A connection of its own for a raw BullMQ worker (BullMQ leaves given connections open). */
  const connection = (): Redis => {
    const c = new Redis(redisServer.url, { maxRetriesPerRequest: null });
    closers.push(() => {
      c.disconnect();
      return Promise.resolve();
    });
    return c;
  };

  before(async () => {
    h = await startHarness({ start: false });
    redisServer = await startPrivateRedis();
    redis = new Redis(redisServer.url, { maxRetriesPerRequest: null });
    publisher = await MqttCommandPublisher.connect({
      url: TEST_MQTT_URL,
      clientId: `takeover-test-${randomBytes(3).toString('hex')}`,
      pubackTimeoutMs: 3000,
    });
  });

  after(async () => {
    await cleanUp();
    await Promise.all(devices.map((d) => d.close()));
    redis.disconnect();
    await publisher.close();
    await redisServer.stop();
    await h.close();
  });

  /** Devices in a fresh topic; returns their ids, the topic and its hash. */
  const fleet = async (
    count: number,
  ): Promise<{ ids: string[]; topic: string; hash: string; mine: SimDevice[] }> => {
    const topic = `takeover-${randomBytes(4).toString('hex')}`;
    await h.service.newTopic(ctx, topic);
    const ids: string[] = [];
    const mine: SimDevice[] = [];
    for (let i = 0; i < count; i++) {
      const name = `${topic}-d${i}`;
      const key = randomSymKey();
      await h.service.newClient(ctx, name, key);
      const device = await SimDevice.connect(await E4Client.createSymmetric({ name }, { key }));
      devices.push(device);
      mine.push(device);
      await h.service.newTopicClient(ctx, name, topic);
      const row = await h.schema.pool.query('SELECT id::text AS id FROM clients WHERE name = $1', [
        name,
      ]);
      ids.push((row.rows[0] as { id: string }).id);
    }
    return { ids, topic, hash: toHex(topicHash(topic)), mine };
  };

  const survivor = (
    prefix: string,
    queue: DeviceQueue,
    via: CommandPublisher = publisher,
  ): DeliveryWorker => {
    const worker = DeliveryWorker.start({
      connection: redis,
      prefix,
      store: h.store,
      queue,
      concurrency: 4,
      sweepIntervalMs: 600_000, // one sweep at start, then none during the test
      busyRetryMs: 200,
      onError: () => undefined,
      syncDeps: workerSyncDeps(h, via, `survivor-${randomBytes(3).toString('hex')}`, 15_000),
    });
    closers.push(() => worker.close());
    return worker;
  };

  const newestEverywhere = async (
    mine: readonly SimDevice[],
    topic: string,
    hash: string,
    timeoutMs: number,
  ): Promise<void> => {
    const details = await h.service.getTopic(topic);
    const newest = details.keys.find((k) => k.version === details.keyVersion)?.fingerprint;
    await Promise.all(
      mine.map((d) =>
        d.waitFor(() => d.topicKeyFingerprint(hash) === newest, timeoutMs, 'the newest key'),
      ),
    );
  };

  /** Runs a scenario, then closes what it started (whether it passed or not). */
  const scenario =
    (body: () => Promise<void>): (() => Promise<void>) =>
    async () => {
      try {
        await body();
      } finally {
        await cleanUp();
      }
    };

  void it(
    'a failed job kept for inspection: a later add for the same device still runs',
    { timeout: 60_000 },
    scenario(async () => {
      const prefix = `takeover-${randomBytes(4).toString('hex')}`;
      // First in this file: this device is then the only one with pending work, so the relay and
      // the sweep enqueue exactly [id], the set of the failed job.
      const { ids, topic, hash, mine } = await fleet(1);
      const [id] = ids;
      assert.ok(id !== undefined);
      // A job of this device that failed (database down during its attempts), kept in the
      // failed set as the device queue keeps the last 1000.
      const raw = new Queue(DEVICE_QUEUE, { connection: redis, prefix });
      closers.push(() => raw.close());
      const failing = new Worker<SyncJobData>(
        DEVICE_QUEUE,
        () => Promise.reject(new Error('database down')),
        { connection: connection(), prefix },
      );
      closers.push(() => failing.close(true));
      await raw.add(SYNC_JOB, { clientIds: [id] }, { jobId: jobIdFor([id]), attempts: 1 });
      await eventually(async () => {
        assert.equal(await raw.getJobState(jobIdFor([id])), 'failed');
      }, 10_000);
      await failing.close(true);

      const queue = DeviceQueue.create(redis, prefix);
      closers.push(() => queue.close());
      const relay = new OutboxRelay(h.store, queue, {
        batch: 100,
        pollIntervalMs: 100,
        onError: () => undefined,
      });
      relay.start();
      closers.push(() => relay.close());
      survivor(prefix, queue);
      await h.service.rotateTopicKey(ctx, topic);
      await newestEverywhere(mine, topic, hash, 10_000);
    }),
  );

  void it(
    "a job held by a dead worker: later rotations run on the survivor once the dead worker's claims lapse",
    { timeout: 60_000 },
    scenario(async () => {
      const prefix = `takeover-${randomBytes(4).toString('hex')}`;
      const queue = DeviceQueue.create(redis, prefix);
      closers.push(() => queue.close());
      const { ids, topic, hash, mine } = await fleet(3);

      // The "dead" worker: takes the job of these devices and never finishes it (a SIGKILLed
      // worker's job stays active until BullMQ's stalled-job check, 30 s or more later).
      const taken: string[][] = [];
      const dead = new Worker<SyncJobData>(
        DEVICE_QUEUE,
        (job) => {
          taken.push([...job.data.clientIds]);
          return new Promise(() => undefined);
        },
        { connection: connection(), prefix, concurrency: 1 },
      );
      closers.push(() => dead.close(true));
      await queue.add(ids);
      await eventually(() => {
        assert.equal(taken.length, 1, 'the dead worker took the job');
      }, 10_000);
      // ... and had claimed the devices: the claims last their TTL (2 s here, 15 s in a node).
      const claimed = await new PgDelivery(h.schema.pool).claim(ids, 'dead-worker', 2000);
      assert.equal(claimed.length, ids.length);

      const relay = new OutboxRelay(h.store, queue, {
        batch: 100,
        pollIntervalMs: 100,
        onError: () => undefined,
      });
      relay.start();
      closers.push(() => relay.close());
      survivor(prefix, queue);
      const started = Date.now();
      await h.service.rotateTopicKey(ctx, topic);
      await h.service.rotateTopicKey(ctx, topic);
      await newestEverywhere(mine, topic, hash, 10_000);
      const tookMs = Date.now() - started;
      assert.ok(tookMs >= 1000, `delivered after the dead worker's claims lapsed (${tookMs} ms)`);
    }),
  );

  void it(
    'one worker, overlapping jobs: still one command in flight per device (R5), in order',
    { timeout: 60_000 },
    scenario(async () => {
      const prefix = `takeover-${randomBytes(4).toString('hex')}`;
      const queue = DeviceQueue.create(redis, prefix);
      closers.push(() => queue.close());
      const { ids, topic, hash, mine } = await fleet(2);
      // A broker that takes 200 ms to acknowledge: overlapping sends would show.
      const inFlight = new Map<string, number>();
      let most = 0;
      const slow: CommandPublisher = {
        async publish(to, payload) {
          const n = (inFlight.get(to) ?? 0) + 1;
          inFlight.set(to, n);
          most = Math.max(most, n);
          try {
            await sleep(200);
            await publisher.publish(to, payload);
          } finally {
            inFlight.set(to, (inFlight.get(to) ?? 1) - 1);
          }
        },
      };
      survivor(prefix, queue, slow);
      const [a] = ids;
      assert.ok(a !== undefined);
      // Jobs of different device sets that share device a, taken at once by one worker (its
      // claims name the process, so they cannot keep its own jobs apart).
      for (let i = 0; i < 3; i++) {
        await h.service.rotateTopicKey(ctx, topic);
        await Promise.all([queue.add(ids), queue.add([a])]);
        await sleep(50);
      }
      await newestEverywhere(mine, topic, hash, 15_000);
      assert.equal(most, 1, 'never two commands in flight to one device');
    }),
  );
});
