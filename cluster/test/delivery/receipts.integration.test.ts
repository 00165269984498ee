/**
 * Delivery receipts end to end on the real PostgreSQL and Mosquitto: a device built on `e4/` that
 * opts in confirms what it applied (rotation status tells confirmed from broker-accepted), a
 * forged receipt confirms nothing, and a device whose delivery had failed is retried as soon as
 * it is seen.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import type { MqttClient } from 'mqtt';
import {
  clientIdFromName,
  E4Client,
  protectReceipt,
  randomSymKey,
  receiptTopic,
  toHex,
  topicHash,
} from '../../../e4/index.ts';
import type { ReceiptEvent } from '../../delivery/index.ts';
import type { C2Harness } from '../support/c2-harness.ts';
import { startReceiptHarness, type ReceiptHarness } from '../support/receipt-harness.ts';
import { eventually } from '../support/eventually.ts';
import { SimDevice } from '../support/sim-device.ts';

const ctx = { actor: 'test' };

void describe('delivery receipts', () => {
  let h: C2Harness;
  let uplink: MqttClient;
  let events: ReceiptEvent[];
  let devices: SimDevice[];
  let harness: ReceiptHarness;

  before(async () => {
    harness = await startReceiptHarness();
    ({ h, uplink, receipts: events, devices } = harness);
  });
  after(async () => {
    await harness.close();
  });

  async function receiptDevice(name: string, key: Uint8Array): Promise<SimDevice> {
    const client = await E4Client.createSymmetric(
      { name },
      { key },
      {
        receipts: {
          publish: (topic, payload) =>
            uplink.publishAsync(topic, Buffer.from(payload), { qos: 1 }).then(() => undefined),
        },
      },
    );
    const device = await SimDevice.connect(client);
    devices.push(device);
    return device;
  }

  void it('a device that opts in confirms its topic keys; rotation status tells confirmed apart', async () => {
    const name = `rcpt-${randomBytes(4).toString('hex')}`;
    const topic = `${name}/t`;
    const key = randomSymKey();
    await h.service.newClient(ctx, name, key);
    const device = await receiptDevice(name, key);
    await h.service.newTopic(ctx, topic);
    await h.service.newTopicClient(ctx, name, topic);
    await device.waitFor(
      () => device.topicKeyFingerprint(toHex(topicHash(topic))) !== undefined,
      10_000,
      'key',
    );
    await eventually(async () => {
      const s = await h.service.rotationStatus(topic);
      assert.deepEqual([s.delivered, s.confirmed], [1, 1]);
    });
    // Which device confirmed what: the client's own view, per topic.
    const confirmed = async (): Promise<number | undefined> =>
      (await h.service.getClient(name)).topics[0]?.confirmedVersion;
    assert.equal(await confirmed(), 1);
    await h.service.rotateTopicKey(ctx, topic);
    await eventually(async () => {
      const s = await h.service.rotationStatus(topic);
      assert.deepEqual([s.keyVersion, s.delivered, s.confirmed], [2, 1, 1]);
    });
    assert.equal(await confirmed(), 2);
  });

  void it('a forged receipt confirms nothing; a failed device is retried when seen', async () => {
    const name = `seen-${randomBytes(4).toString('hex')}`;
    const topic = `${name}/t`;
    const key = randomSymKey();
    await h.service.newClient(ctx, name, key);
    await h.service.newTopic(ctx, topic);
    const device = await SimDevice.connect(await E4Client.createSymmetric({ name }, { key }));
    devices.push(device);
    await h.service.newTopicClient(ctx, name, topic);
    const hash = toHex(topicHash(topic));
    await device.waitFor(() => device.topicKeyFingerprint(hash) !== undefined, 10_000, 'key');
    const row = await h.store.read.clients.byName(name);
    assert.ok(row);
    // Later the device lost its key and its deliveries failed: nothing is queued for it, and the
    // sweep leaves failed devices alone until they are seen again.
    await eventually(async () => {
      assert.equal((await h.service.getClient(name)).topics[0]?.state, 'delivered');
    });
    await h.schema.pool.query(
      'UPDATE device_topics SET delivered_version = 0 WHERE client_id = $1',
      [row.id],
    );
    await h.store.read.clients.setSync(row.id, {
      state: 'failed',
      attempts: 8,
      error: 'SetTopicKey: no PUBACK',
    });
    const appliedBefore = device.applied.length;
    const id = clientIdFromName(name);
    const fields = {
      status: 'applied' as const,
      commandId: new Uint8Array(16).fill(9),
      commandTime: 0n,
      commandType: 'ResetTopics' as const,
      subject: new Uint8Array(16),
    };
    const before = events.length;
    await uplink.publishAsync(
      receiptTopic(id),
      Buffer.from(protectReceipt(fields, id, randomSymKey())),
      { qos: 1 },
    );
    await eventually(() => {
      assert.ok(
        events.slice(before).some((e) => e.outcome === 'not-authentic'),
        'a not-authentic receipt event',
      );
    });
    assert.equal(
      (await h.service.getClient(name)).delivery.state,
      'failed',
      'a forged receipt is not a sighting',
    );

    // The real device shows up (any authentic receipt): it is retried at once.
    await uplink.publishAsync(receiptTopic(id), Buffer.from(protectReceipt(fields, id, key)), {
      qos: 1,
    });
    await device.waitFor(() => device.applied.length > appliedBefore, 10_000, 'the retried key');
    await eventually(async () => {
      const details = await h.service.getClient(name);
      assert.equal(details.delivery.state, 'idle');
      assert.equal(details.topics[0]?.state, 'delivered');
    });
    assert.ok(events.some((e) => e.outcome === 'applied' && e.clientId === row.id));
  });

  void it('an oversized receipt is refused before any lookup, even on a known device topic', async () => {
    const name = `big-${randomBytes(4).toString('hex')}`;
    await h.service.newClient(ctx, name, randomSymKey());
    const before = events.length;
    // The broker takes it (256 MB is MQTT's maximum); a receipt is at most RECEIPT_MAX_LEN bytes.
    await uplink.publishAsync(receiptTopic(clientIdFromName(name)), Buffer.alloc(64 * 1024, 1), {
      qos: 1,
    });
    await eventually(() => {
      assert.deepEqual(
        events.slice(before).find((e) => e.outcome === 'malformed'),
        { outcome: 'malformed', reason: 'oversized' },
        'refused as oversized, with no client looked up',
      );
    });
  });
});
