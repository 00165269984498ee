/**
 * The batched delivery path on the real PostgreSQL, with a publisher fake of our own port:
 * a fan-out is delivered and recorded for the whole batch, devices claimed by another process are
 * left alone (R5 across processes), failures fall back to the per-device path with the cap
 * counting the batched attempt (I7), and revocations are batched too.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import {
  commandKeyFromClient,
  ed25519KeyFromSeed,
  fromHex,
  parseCommand,
  randomSymKey,
  unprotectSymKey,
} from '../../../e4/index.ts';
import {
  BrokerUnavailableError,
  DeliveryEngine,
  syncBatch,
  type BatchSyncDeps,
  type CommandPublisher,
} from '../../delivery/index.ts';
import type { KeySealer } from '../../domain/index.ts';
import { PgDelivery } from '../../storage/index.ts';
import { startHarness, type C2Harness } from '../support/c2-harness.ts';

const ctx = { actor: 'test' };

class RecordingPublisher implements CommandPublisher {
  readonly sent: Array<{ topic: string; payload: Uint8Array }> = [];
  constructor(private readonly failTopics: ReadonlySet<string> = new Set()) {}
  publish(topic: string, payload: Uint8Array): Promise<void> {
    this.sent.push({ topic, payload });
    return this.failTopics.has(topic) ? Promise.reject(new Error('no PUBACK')) : Promise.resolve();
  }
}

void describe('batched delivery', () => {
  let h: C2Harness;
  let now = 1_800_000_000_000;
  before(async () => {
    h = await startHarness({ start: false });
  });
  after(async () => {
    await h.close();
  });

  function deps(publisher: CommandPublisher, owner = 'node-a', maxAttempts = 3): BatchSyncDeps {
    return {
      store: h.store,
      sealer: h.service.deps.sealer,
      mode: 'symkey',
      publisher,
      clock: () => now,
      sleep: (ms) => {
        now += ms + 1000;
        return Promise.resolve();
      },
      policy: { maxAttempts, initialBackoffMs: 10, maxBackoffMs: 50, deadlineMs: 60_000 },
      delivery: new PgDelivery(h.schema.pool),
      owner,
      claimTtlMs: 30_000,
      publishConcurrency: 16,
    };
  }

  /** An engine on a publisher that delivers, able to send only while `link.up`. */
  function engineWithLink(link: { up: boolean }, relayOutbox: boolean): DeliveryEngine {
    return new DeliveryEngine(h.store, deps(new RecordingPublisher()), {
      concurrency: 1,
      batchSize: 10,
      claimBatch: 10,
      pollIntervalMs: 60_000,
      sweepIntervalMs: 60_000,
      relayOutbox,
      onError: () => undefined,
      canSend: () => link.up,
    });
  }

  async function fleet(
    n: number,
  ): Promise<{ topic: string; ids: string[]; keys: Map<string, Uint8Array> }> {
    const topic = `fanout-${randomBytes(4).toString('hex')}`;
    await h.service.newTopic(ctx, topic);
    const ids: string[] = [];
    const keys = new Map<string, Uint8Array>();
    for (let i = 0; i < n; i++) {
      const name = `${topic}-dev-${i}`;
      const key = randomSymKey();
      await h.service.newClient(ctx, name, key);
      await h.service.newTopicClient(ctx, name, topic);
      const row = await h.store.read.clients.byName(name);
      assert.ok(row);
      ids.push(row.id);
      keys.set(`e4/${Buffer.from(row.e4Id).toString('hex')}`, key);
    }
    return { topic, ids, keys };
  }

  void it('delivers and records a fan-out for the whole batch, then a rotation', async () => {
    const { topic, ids, keys } = await fleet(25);
    const publisher = new RecordingPublisher();
    const first = await syncBatch(deps(publisher), ids);
    assert.equal(first.delivered, 25);
    assert.equal(first.perDevice.size, 0, 'no device needed the per-device path');
    assert.equal((await h.service.rotationStatus(topic)).delivered, 25);
    await h.service.rotateTopicKey(ctx, topic);
    const second = await syncBatch(deps(publisher), ids);
    assert.equal(second.delivered, 25);
    const status = await h.service.rotationStatus(topic);
    assert.deepEqual([status.keyVersion, status.delivered, status.pending], [2, 25, 0]);
    assert.equal(publisher.sent.length, 50);
    for (const { topic: control, payload } of publisher.sent) {
      const key = keys.get(control);
      assert.ok(key, 'sent to a member control topic');
      assert.equal(parseCommand(unprotectSymKey(payload, key, () => now)).type, 'SetTopicKey');
    }
    assert.equal((await syncBatch(deps(publisher), ids)).delivered, 0, 'nothing left to send');
  });

  void it('sends nothing while a restored database is not reconciled, then the new keys', async () => {
    const { topic, ids } = await fleet(3);
    // A device with other work too (an identity rotation) goes through the per-device path.
    const first = await h.store.read.clients.byId(ids[0] ?? '');
    assert.ok(first);
    await h.service.rotateClientKey(ctx, first.name);
    // What restore.sh leaves in the database it restored.
    await h.schema.pool.query(
      "INSERT INTO c2_settings (name, value) VALUES ('restore_pending', now()::text)",
    );
    const publisher = new RecordingPublisher();
    const paused = await syncBatch(deps(publisher), ids);
    assert.deepEqual(
      [paused.paused, paused.delivered, paused.busy, paused.perDevice.size],
      [true, 0, [], 0],
    );
    assert.equal(publisher.sent.length, 0, 'nothing sent before the reconciliation');
    assert.equal((await h.service.rotationStatus(topic)).pending, 3, 'the work is still pending');
    await h.service.reconcileAfterRestore(ctx, { versionMargin: 10 });
    const after = await syncBatch(deps(publisher), ids);
    assert.equal(after.paused, undefined);
    const status = await h.service.rotationStatus(topic);
    assert.deepEqual([status.keyVersion, status.delivered], [11, 3]);
    const sent = [...publisher.sent]; // (a fresh array: the length was asserted 0 above)
    assert.ok(sent.length >= 4, 'the topic keys and the identity key went out');
  });

  void it('leaves devices claimed by another process alone', async () => {
    const { ids } = await fleet(4);
    const other = new PgDelivery(h.schema.pool);
    const held = ids.slice(0, 2);
    assert.deepEqual((await other.claim(held, 'node-b', 30_000)).sort(), [...held].sort());
    const publisher = new RecordingPublisher();
    const outcome = await syncBatch(deps(publisher, 'node-a'), ids);
    assert.deepEqual([...outcome.busy].sort(), [...held].sort());
    assert.equal(outcome.delivered, 2);
    await other.release(held, 'node-b');
    assert.equal((await syncBatch(deps(publisher, 'node-a'), held)).delivered, 2);
  });

  void it('sends a failing device no more often than the cap, counting the batched attempt', async () => {
    const { ids } = await fleet(3);
    const failing = ids[0];
    assert.ok(failing);
    const row = await h.store.read.clients.byId(failing);
    assert.ok(row);
    const failTopic = `e4/${Buffer.from(row.e4Id).toString('hex')}`;
    const publisher = new RecordingPublisher(new Set([failTopic]));
    const outcome = await syncBatch(deps(publisher, 'node-a', 3), ids);
    assert.equal(outcome.delivered, 2);
    assert.equal(outcome.perDevice.get(failing), 'failed');
    assert.equal(publisher.sent.filter((s) => s.topic === failTopic).length, 3);
    const details = await h.service.getClient(row.name);
    assert.equal(details.delivery.state, 'failed');
  });

  void it('a publish that never left (the broker link down) is no attempt: pending, swept, then delivered', async () => {
    const { topic, ids } = await fleet(3);
    // One device also has an identity rotation to receive: the per-device path defers it too.
    const [slowId, ...batched] = ids;
    assert.ok(slowId !== undefined);
    const slow = await h.store.read.clients.byId(slowId);
    assert.ok(slow);
    await h.service.rotateClientKey(ctx, slow.name);
    const link = { up: false };
    const sent: string[] = [];
    const publisher: CommandPublisher = {
      publish: (control) => {
        if (!link.up) {
          const down = new BrokerUnavailableError('MQTT broker not connected', { notSent: true });
          return Promise.reject(down);
        }
        sent.push(control);
        return Promise.resolve();
      },
    };
    // More rounds than the cap (2): an outage longer than the backoff failed the fleet for good.
    const observed: string[] = [];
    const observing: BatchSyncDeps = {
      ...deps(publisher, 'node-a', 2),
      onAttempt: (a) => observed.push(`${a.clientId} ${a.outcome}`),
    };
    for (let round = 0; round < 3; round++) {
      const down = await syncBatch(observing, ids);
      assert.equal(down.delivered, 0);
      assert.deepEqual([...down.deferred].sort(), [...batched].sort());
      assert.equal(down.perDevice.get(slowId), 'deferred');
    }
    assert.deepEqual(observed, [], 'no attempt: nothing was sent');
    for (const id of ids) {
      const row = await h.store.read.clients.byId(id);
      assert.ok(row);
      const { delivery } = await h.service.getClient(row.name);
      assert.deepEqual([delivery.state, delivery.attempts], ['pending', 0], row.name);
      assert.match(delivery.error ?? '', /: MQTT broker not connected$/);
    }
    const status = await h.service.rotationStatus(topic);
    assert.deepEqual([status.failed, status.pending], [0, 3]);
    const swept = await h.store.read.journal.pendingClients('0', 1_000_000);
    assert.ok(
      ids.every((id) => swept.includes(id)),
      'the sweep brings them back',
    );
    link.up = true;
    const up = await syncBatch(deps(publisher), ids);
    assert.deepEqual(up.deferred, []);
    const after = await h.service.rotationStatus(topic);
    assert.deepEqual([after.delivered, after.failed], [3, 0]);
    assert.equal((await h.service.getClient(slow.name)).delivery.state, 'idle');
    assert.equal(sent.length, 4, 'three topic keys and one identity key, each once');
  });

  void it('keeps the cap across deferrals: a link whose PUBACKs never come still fails the device', async () => {
    // Each PUBACK timeout resets the connection, so the next try finds it down (deferred): the
    // count must survive the deferral, or the device is retried for ever.
    const { ids } = await fleet(1);
    const [id] = ids;
    assert.ok(id !== undefined);
    let calls = 0;
    let mayHaveArrived = 0;
    const publisher: CommandPublisher = {
      publish: () => {
        calls++;
        if (calls % 2 === 1) {
          mayHaveArrived++;
          return Promise.reject(new Error('no PUBACK within 10 ms'));
        }
        const down = new BrokerUnavailableError('MQTT broker not connected', { notSent: true });
        return Promise.reject(down);
      },
    };
    const row = await h.store.read.clients.byId(id);
    assert.ok(row);
    // The jobs a sweep or a relay would give it, until it fails (after that, only new work does).
    let state = '';
    for (let round = 0; round < 6 && state !== 'failed'; round++) {
      await syncBatch(deps(publisher, 'node-a', 2), ids);
      state = (await h.service.getClient(row.name)).delivery.state;
    }
    assert.equal(state, 'failed');
    assert.ok(mayHaveArrived <= 2, `${mayHaveArrived} attempts that may have reached it (cap 2)`);
  });

  void it('numbers a batched send after a deferred retry as a retransmission, not a first attempt', async () => {
    // A PUBACK timeout (attempt 1), then the retry finds the link down (deferred, the count kept),
    // then the next batch sends again: that is attempt 2, which the metrics count as a
    // retransmission. It was reported as attempt 1 whatever the stored streak.
    const { ids } = await fleet(1);
    const [id] = ids;
    assert.ok(id !== undefined);
    let calls = 0;
    const publisher: CommandPublisher = {
      publish: () => {
        calls++;
        if (calls === 1) return Promise.reject(new Error('no PUBACK within 10 ms'));
        if (calls === 2)
          return Promise.reject(
            new BrokerUnavailableError('MQTT broker not connected', { notSent: true }),
          );
        return Promise.resolve();
      },
    };
    const observed: string[] = [];
    const observing: BatchSyncDeps = {
      ...deps(publisher, 'node-a', 3),
      onAttempt: (a) => observed.push(`${a.attempt} ${a.outcome}`),
    };
    const first = await syncBatch(observing, ids);
    assert.equal(first.perDevice.get(id), 'deferred');
    const second = await syncBatch(observing, ids);
    assert.equal(second.delivered, 1);
    assert.deepEqual(observed, ['1 failed', '2 acked']);
    const row = await h.store.read.clients.byId(id);
    assert.ok(row);
    const { delivery } = await h.service.getClient(row.name);
    assert.deepEqual([delivery.state, delivery.attempts], ['idle', 0], 'the streak ended');
  });

  void it('an engine whose broker connection is down leaves the outbox alone', async () => {
    const { topic } = await fleet(2);
    await h.schema.pool.query('DELETE FROM outbox');
    const link = { up: false };
    const engine = engineWithLink(link, true);
    engine.start();
    try {
      await h.service.rotateTopicKey(ctx, topic);
      engine.kick();
      await engine.idle();
      const rows = async (): Promise<number> =>
        Number(
          (await h.schema.pool.query<{ n: string }>('SELECT count(*) AS n FROM outbox')).rows[0]?.n,
        );
      // Claimed now, its devices would only be deferred.
      assert.ok((await rows()) > 0, 'the rotation is still in the outbox');
      link.up = true;
      engine.kick();
      await engine.idle();
      assert.equal(await rows(), 0);
      assert.equal((await h.service.rotationStatus(topic)).delivered, 2);
    } finally {
      await engine.close();
    }
  });

  void it('an engine whose broker connection is down skips its sweeps', async () => {
    const { ids } = await fleet(1);
    const link = { up: false };
    const engine = engineWithLink(link, false);
    try {
      // Every device it queued would be claimed and released unsent, sweep after sweep.
      assert.equal(await engine.sweep(), 0);
      link.up = true;
      assert.ok((await engine.sweep()) >= ids.length, 'swept once it can send');
    } finally {
      await engine.close();
    }
  });

  void it('a failed device is swept again for newer work only, and is failed no more once it takes it', async () => {
    const { topic, ids } = await fleet(2);
    const failing = ids[0];
    assert.ok(failing !== undefined);
    const row = await h.store.read.clients.byId(failing);
    assert.ok(row);
    const failTopic = `e4/${Buffer.from(row.e4Id).toString('hex')}`;
    const outcome = await syncBatch(
      deps(new RecordingPublisher(new Set([failTopic])), 'node-a', 2),
      ids,
    );
    assert.equal(outcome.perDevice.get(failing), 'failed');
    assert.equal((await h.service.rotationStatus(topic)).failed, 1);
    let swept = await h.store.read.journal.pendingClients('0', 1_000_000);
    assert.ok(!swept.includes(failing), 'failed: not retried for the same work');

    // Newer work: the device has it still to try, so it is pending on the new rollout.
    await h.service.rotateTopicKey(ctx, topic);
    const status = await h.service.rotationStatus(topic);
    assert.deepEqual([status.failed, status.pending], [0, 2]);
    assert.equal((await h.service.getClient(row.name)).topics[0]?.state, 'pending');
    swept = await h.store.read.journal.pendingClients('0', 1_000_000);
    assert.ok(swept.includes(failing), 'swept for the work that came after its failure');

    // Delivered: the failure is over (it stayed "failed", with its attempts, for good).
    const delivered = await syncBatch(deps(new RecordingPublisher()), [failing]);
    assert.equal(delivered.delivered, 1);
    const { delivery } = await h.service.getClient(row.name);
    assert.deepEqual(
      [delivery.state, delivery.attempts, delivery.error, delivery.failedAt],
      ['idle', 0, null, null],
    );
  });

  void it('opens each device key when its command is sent, not for the whole batch first', async () => {
    const { ids } = await fleet(4);
    const events: string[] = [];
    const inner = h.service.deps.sealer;
    const sealer: KeySealer = {
      seal: (plaintext, binding) => inner.seal(plaintext, binding),
      open: (sealed, binding) => {
        events.push(`open ${binding.table}`);
        return inner.open(sealed, binding);
      },
    };
    const publisher: CommandPublisher = {
      publish: () => {
        events.push('publish');
        return Promise.resolve();
      },
    };
    const outcome = await syncBatch({ ...deps(publisher), sealer, publishConcurrency: 1 }, ids);
    assert.equal(outcome.delivered, 4);
    // One topic key for the round, then each device key right before its command goes out.
    const deviceSteps = events.filter((e) => e !== 'open topic_keys');
    assert.equal(events[0], 'open topic_keys');
    assert.deepEqual(
      deviceSteps,
      Array.from({ length: 4 }, () => ['open client_keys', 'publish']).flat(),
    );
  });

  void it('a device whose key does not open goes to the per-device path, the rest is delivered', async () => {
    const { topic, ids } = await fleet(4);
    const broken = ids[1];
    assert.ok(broken);
    // Tampered at rest: the last byte of the GCM tag flipped.
    await h.schema.pool.query(
      `UPDATE client_keys SET sealed = set_byte(sealed, length(sealed) - 1,
         get_byte(sealed, length(sealed) - 1) # 1) WHERE client_id = $1`,
      [broken],
    );
    const publisher = new RecordingPublisher();
    const outcome = await syncBatch(deps(publisher), ids);
    assert.equal(outcome.delivered, 3);
    assert.equal(publisher.sent.length, 3, 'nothing sent to the device whose key is unusable');
    // The per-device path counts it against the cap and reports it, as for a lost PUBACK.
    assert.equal(outcome.perDevice.get(broken), 'failed');
    const row = await h.store.read.clients.byId(broken);
    assert.ok(row);
    const details = await h.service.getClient(row.name);
    assert.equal(details.delivery.state, 'failed');
    assert.match(details.delivery.error ?? '', /authentication failed/);
    const status = await h.service.rotationStatus(topic);
    assert.equal(status.delivered, 3);
  });

  void it('a device public key of low order (stored by an earlier release) fails that device at the cap', async () => {
    const pk = await startHarness({ start: false, mode: 'pubkey' });
    try {
      const topic = `pk-low-${randomBytes(4).toString('hex')}`;
      await pk.service.newTopic(ctx, topic);
      const ids: string[] = [];
      for (let i = 0; i < 3; i++) {
        const name = `${topic}-dev-${i}`;
        const pub = ed25519KeyFromSeed(new Uint8Array(randomBytes(32))).slice(32);
        await pk.service.newClient(ctx, name, pub);
        await pk.service.newTopicClient(ctx, name, topic);
        const row = await pk.store.read.clients.byName(name);
        assert.ok(row);
        ids.push(row.id);
      }
      const [, low] = ids;
      assert.ok(low);
      // y = -1, a point of order 2: no X25519 shared secret exists with it.
      await pk.schema.pool.query('UPDATE client_keys SET public_key = $2 WHERE client_id = $1', [
        low,
        Buffer.from('ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f', 'hex'),
      ]);
      const publisher = new RecordingPublisher();
      const outcome = await syncBatch(
        {
          ...deps(publisher),
          store: pk.store,
          sealer: pk.service.deps.sealer,
          mode: 'pubkey',
          delivery: new PgDelivery(pk.schema.pool),
        },
        ids,
      );
      assert.equal(outcome.delivered, 2);
      assert.equal(publisher.sent.length, 2, 'nothing sent to the device with the unusable key');
      assert.equal(outcome.perDevice.get(low), 'failed', 'failed at the cap, not thrown for ever');
      const row = await pk.store.read.clients.byId(low);
      assert.ok(row);
      const details = await pk.service.getClient(row.name);
      assert.equal(details.delivery.state, 'failed');
      assert.match(details.delivery.error ?? '', /low-order/);
    } finally {
      await pk.close();
    }
  });

  void it('batches revocations when a topic is removed', async () => {
    const { topic, ids } = await fleet(5);
    const publisher = new RecordingPublisher();
    await syncBatch(deps(publisher), ids);
    await h.service.removeTopic(ctx, topic);
    const before = publisher.sent.length;
    const outcome = await syncBatch(deps(publisher), ids);
    assert.equal(outcome.delivered, 5);
    assert.equal(publisher.sent.length - before, 5);
    const remaining = await h.schema.pool.query(
      'SELECT count(*)::int AS n FROM device_topics WHERE client_id = ANY($1::bigint[])',
      [ids],
    );
    assert.equal((remaining.rows[0] as { n: number }).n, 0);
  });
});

void describe('batched delivery, public-key mode', () => {
  let h: C2Harness;
  before(async () => {
    h = await startHarness({ mode: 'pubkey', start: false });
  });
  after(async () => {
    await h.close();
  });

  void it('opens the C2 private key once per round however many sends run at once', async () => {
    const topic = `pk-fanout-${randomBytes(4).toString('hex')}`;
    await h.service.newTopic(ctx, topic);
    const c2 = fromHex((await h.service.c2PublicKey()).publicKey);
    const ids: string[] = [];
    const commandKeys = new Map<string, Uint8Array>();
    for (let i = 0; i < 12; i++) {
      const name = `${topic}-dev-${i}`;
      const privateKey = ed25519KeyFromSeed(new Uint8Array(randomBytes(32)));
      await h.service.newClient(ctx, name, privateKey.slice(32));
      await h.service.newTopicClient(ctx, name, topic);
      const row = await h.store.read.clients.byName(name);
      assert.ok(row);
      ids.push(row.id);
      commandKeys.set(
        `e4/${Buffer.from(row.e4Id).toString('hex')}`,
        commandKeyFromClient(privateKey, c2),
      );
    }
    const opened: string[] = [];
    const inner = h.service.deps.sealer;
    const sealer: KeySealer = {
      seal: (plaintext, binding) => inner.seal(plaintext, binding),
      open: (sealed, binding) => {
        opened.push(binding.table);
        return inner.open(sealed, binding);
      },
    };
    const publisher = new RecordingPublisher();
    const now = Date.now();
    const outcome = await syncBatch(
      {
        store: h.store,
        sealer,
        mode: 'pubkey',
        publisher,
        clock: () => now,
        sleep: () => Promise.resolve(),
        policy: { maxAttempts: 3, initialBackoffMs: 10, maxBackoffMs: 50, deadlineMs: 60_000 },
        delivery: new PgDelivery(h.schema.pool),
        owner: 'node-pk',
        claimTtlMs: 30_000,
        publishConcurrency: 16,
      },
      ids,
    );
    assert.equal(outcome.delivered, 12);
    assert.equal(opened.filter((t) => t === 'c2_keys').length, 1, 'one opening for the round');
    for (const { topic: control, payload } of publisher.sent) {
      const key = commandKeys.get(control);
      assert.ok(key, 'sent to a member control topic');
      assert.equal(parseCommand(unprotectSymKey(payload, key, () => now)).type, 'SetTopicKey');
    }
  });
});
