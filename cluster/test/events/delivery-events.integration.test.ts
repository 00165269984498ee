/**
 * Delivery outcomes in the event stream (real PostgreSQL and Mosquitto): a device that confirms
 * a key through a delivery receipt gives a `delivery.confirmed` event; receipts that no identity
 * key the C2 holds authenticates (the device has a key the C2 lost, e.g. in a restore) give one
 * `client.unreachable` event, however many arrive. (`delivery.failed`: retry-and-failure.test.ts.)
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

  void it('a receipt that confirms a key is a delivery.confirmed event', async () => {
    const name = `conf-${randomBytes(4).toString('hex')}`;
    const topic = `${name}/t`;
    const key = randomSymKey();
    await h.service.newClient(ctx, name, key);
    const client = await E4Client.createSymmetric(
      { name },
      { key },
      {
        receipts: {
          publish: (t, payload) =>
            uplink.publishAsync(t, Buffer.from(payload), { qos: 1 }).then(() => undefined),
        },
      },
    );
    const device = await SimDevice.connect(client);
    devices.push(device);
    await h.service.newTopic(ctx, topic);
    await h.service.newTopicClient(ctx, name, topic);
    await device.waitFor(
      () => device.topicKeyFingerprint(toHex(topicHash(topic))) !== undefined,
      10_000,
      'key',
    );
    await eventually(async () => {
      const confirmed = (await eventsOf(name)).filter((e) => e.type === 'delivery.confirmed');
      assert.ok(confirmed.length >= 1, 'a delivery.confirmed event');
      assert.equal(confirmed[0]?.details?.['command'], 'SetTopicKey');
    });
  });

  void it('receipts no known key authenticates make one client.unreachable event', async () => {
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
    await eventually(async () => {
      const unreachable = (await eventsOf(name)).filter((e) => e.type === 'client.unreachable');
      assert.equal(unreachable.length, 1);
      assert.equal(unreachable[0]?.details?.['reason'], 'receipt-not-authentic');
    });
  });
});
