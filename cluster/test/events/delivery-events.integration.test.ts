/**
 * Delivery outcomes in the event stream (real PostgreSQL and Mosquitto): a device that confirms
 * a key through a delivery receipt gives one `delivery.confirmed` event (a replay of its receipt
 * none), one that rejects it a `delivery.rejected` event naming the rollout (and its last
 * rejection in GetClient); a receipt under the identity key just replaced still confirms; receipts that no key
 * authenticates are counted, never events (a device with a key the C2 does not know sends none,
 * so they are forgeries). (`delivery.failed`: retry-and-failure.test.ts.)
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

/** Waits until the device holds a key of `topic`. */
const holdsKeyOf = (device: SimDevice, topic: string): Promise<void> =>
  device.waitFor(
    () => device.topicKeyFingerprint(toHex(topicHash(topic))) !== undefined,
    10_000,
    'key',
  );

void describe('delivery events', { timeout: 60_000 }, () => {
  let h: C2Harness;
  let uplink: MqttClient;
  let receipts: ReceiptEvent[];
  let devices: SimDevice[];
  let harness: ReceiptHarness;

  before(async () => {
    harness = await startReceiptHarness();
    ({ h, uplink, receipts: receipts, devices } = harness);
  });
  after(async () => {
    await harness.close();
  });

  const eventsOf = async (name: string) =>
    (await h.service.eventsAfter('0', 1000)).filter((e) => e.clientName === name);

  void it('a receipt that confirms a key is one delivery.confirmed event, replayed or not', async () => {
    const name = `conf-${randomBytes(4).toString('hex')}`;
    const topic = `${name}/t`;
    const key = randomSymKey();
    await h.service.newClient(ctx, name, key);
    const sent: Array<{ topic: string; payload: Buffer }> = [];
    const client = await E4Client.createSymmetric(
      { name },
      { key },
      {
        receipts: {
          publish: (t, payload) => {
            sent.push({ topic: t, payload: Buffer.from(payload) });
            return uplink.publishAsync(t, Buffer.from(payload), { qos: 1 }).then(() => undefined);
          },
        },
      },
    );
    const device = await SimDevice.connect(client);
    devices.push(device);
    await h.service.newTopic(ctx, topic);
    await h.service.newTopicClient(ctx, name, topic);
    await holdsKeyOf(device, topic);
    await eventually(async () => {
      const confirmed = (await eventsOf(name)).filter((e) => e.type === 'delivery.confirmed');
      assert.equal(confirmed.length, 1, 'a delivery.confirmed event');
      assert.equal(confirmed[0]?.details?.['command'], 'SetTopicKey');
      // It names the rollout it confirms.
      assert.deepEqual(
        confirmed.map((e) => [e.topic, e.keyVersion]),
        [[topic, 1]],
      );
    });
    // Anyone on the broker can replay the receipt: it confirms nothing new, and says nothing.
    const before = receipts.length;
    for (const r of sent) await uplink.publishAsync(r.topic, r.payload, { qos: 1 });
    await eventually(() => {
      assert.equal(receipts.length - before, sent.length);
    });
    assert.deepEqual(
      receipts.slice(before).map((e) => e.outcome),
      sent.map(() => 'applied'),
    );
    const confirmed = (await eventsOf(name)).filter((e) => e.type === 'delivery.confirmed');
    assert.equal(confirmed.length, 1, 'no event for a replay');
  });

  void it('a receipt under the identity key just replaced still confirms', async () => {
    const name = `prev-${randomBytes(4).toString('hex')}`;
    const topic = `${name}/t`;
    const key = randomSymKey();
    await h.service.newClient(ctx, name, key);
    // The device's receipts travel slowly: the SetTopicKey receipt (under the first key) arrives
    // after the C2 recorded the delivery of the SetIDKey that follows it.
    const client = await E4Client.createSymmetric(
      { name },
      { key },
      {
        receipts: {
          publish: (t, payload) => {
            setTimeout(() => {
              void uplink.publishAsync(t, Buffer.from(payload), { qos: 1 });
            }, 1500);
          },
        },
      },
    );
    const device = await SimDevice.connect(client);
    devices.push(device);
    await h.service.newTopic(ctx, topic);
    await h.service.newTopicClient(ctx, name, topic);
    await holdsKeyOf(device, topic);
    await h.service.rotateClientKey(ctx, name);
    await eventually(async () => {
      assert.equal((await h.service.getClient(name)).deliveredKeyVersion, 2);
    });
    await eventually(async () => {
      assert.equal((await h.service.rotationStatus(topic)).confirmed, 1);
    }, 15_000);
    const unreachable = (await eventsOf(name)).filter((e) => e.type === 'client.unreachable');
    assert.deepEqual(unreachable, []);
  });

  void it('a resync forgets the confirmations: what the device holds is unknown until it confirms again', async () => {
    const name = `resync-${randomBytes(4).toString('hex')}`;
    const topic = `${name}/t`;
    await h.service.newClient(ctx, name, randomSymKey());
    await h.service.newTopic(ctx, topic);
    await h.service.newTopicClient(ctx, name, topic);
    // As a receipt leaves it (no device runs here, so nothing confirms again).
    await h.schema.pool.query(
      `UPDATE device_topics SET confirmed_version = desired_version
        WHERE client_id = (SELECT id FROM clients WHERE name = $1)`,
      [name],
    );
    assert.equal((await h.service.rotationStatus(topic)).confirmed, 1);
    await h.service.resyncClient(ctx, name);
    assert.equal((await h.service.rotationStatus(topic)).confirmed, 0);
  });

  void it('a rejected topic key is a delivery.rejected event that names its rollout', async () => {
    const name = `rej-${randomBytes(4).toString('hex')}`;
    const topic = `${name}/t`;
    const key = randomSymKey();
    await h.service.newClient(ctx, name, key);
    const device = await SimDevice.connect(await E4Client.createSymmetric({ name }, { key }));
    devices.push(device);
    await h.service.newTopic(ctx, topic);
    await h.service.newTopicClient(ctx, name, topic);
    await holdsKeyOf(device, topic);
    // The device can apply the key before the C2 records the PUBACK: wait for the record.
    let commandId: Buffer | undefined;
    await eventually(async () => {
      const { rows } = await h.schema.pool.query<{ last_command_id: Buffer | null }>(
        `SELECT dt.last_command_id FROM device_topics dt JOIN clients c ON c.id = dt.client_id
          WHERE c.name = $1`,
        [name],
      );
      commandId = rows[0]?.last_command_id ?? undefined;
      assert.ok(commandId !== undefined, 'the delivery recorded its command id');
    });
    assert.ok(commandId !== undefined);
    // What a device that could not apply that SetTopicKey answers (a receipts device does).
    const id = clientIdFromName(name);
    const rejected = protectReceipt(
      {
        status: 'rejected',
        reasonCode: 0x0d, // InvalidKey
        commandId: new Uint8Array(commandId),
        commandTime: 0n,
        commandType: 'SetTopicKey',
        subject: topicHash(topic),
      },
      id,
      key,
    );
    await uplink.publishAsync(receiptTopic(id), Buffer.from(rejected), { qos: 1 });
    await eventually(async () => {
      const events = (await eventsOf(name)).filter((e) => e.type === 'delivery.rejected');
      assert.deepEqual(
        events.map((e) => [e.topic, e.keyVersion, e.details?.['reason'], e.details?.['command']]),
        [[topic, 1, 'InvalidKey', 'SetTopicKey']],
      );
    });
    // GetClient (client show) has it too, not only the event stream.
    const { lastRejection } = (await h.service.getClient(name)).delivery;
    assert.ok(lastRejection !== null, 'the last rejection is on the client');
    assert.deepEqual([lastRejection.reason, lastRejection.command], ['InvalidKey', 'SetTopicKey']);
    assert.ok(Math.abs(Date.parse(lastRejection.at) - Date.now()) < 60_000, lastRejection.at);
  });

  void it('receipts no known key authenticates are counted, never events', async () => {
    const name = `lost-${randomBytes(4).toString('hex')}`;
    await h.service.newClient(ctx, name, randomSymKey());
    const id = clientIdFromName(name);
    const forged = (): Buffer =>
      Buffer.from(
        protectReceipt(
          {
            status: 'applied',
            commandId: new Uint8Array(16).fill(7),
            commandTime: 0n,
            commandType: 'ResetTopics',
            subject: new Uint8Array(16),
          },
          id,
          randomSymKey(), // the key the C2 does not know
        ),
      );
    const before = receipts.length;
    await uplink.publishAsync(receiptTopic(id), forged(), { qos: 1 });
    await uplink.publishAsync(receiptTopic(id), forged(), { qos: 1 });
    await eventually(() => {
      const outcomes = receipts.slice(before).filter((e) => e.outcome === 'not-authentic');
      assert.equal(outcomes.length, 2);
    });
    // Anyone who may publish on the topic can send such bytes: no page for a healthy device.
    assert.deepEqual(await eventsOf(name).then((e) => e.map((x) => x.type)), ['client.created']);
  });
});
