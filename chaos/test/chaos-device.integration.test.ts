/**
 * The simulated device on the shared Mosquitto: what the broker queued while it was offline
 * reaches it in full when it comes back (every message applied or refused, none lost), and that
 * backlog is judged as old as the simulated time away, while a command sent after its return is
 * judged on its normal clock.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import mqtt, { type MqttClient } from 'mqtt';
import {
  cmdSetTopicKey,
  commandKeyForClient,
  ed25519PublicKey,
  protectCommand,
  randomCurve25519KeyPair,
  randomEd25519Key,
  randomSymKey,
  toHex,
} from '../../e4/index.ts';
import { keyFingerprint } from '../../cluster/keyvault/index.ts';
import { ChaosDevice } from '../chaos-device.ts';
import type { DeviceApply } from '../history.ts';

const BROKER = 'mqtt://127.0.0.1:1883';

/** More than one read of the socket holds, so some of it comes in the CONNACK's read. */
const BACKLOG = 40;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Polls until `done()` or about 10 s; the assertions after it say what was missing. */
async function until(done: () => boolean): Promise<void> {
  for (let i = 0; i < 100 && !done(); i++) await sleep(100);
}

/**
 * A fresh device recording into `records`, and a publisher to its receiving topic (public-key
 * mode with `c2PublicKey`).
 */
async function start(
  now?: () => number,
  c2PublicKey?: Uint8Array,
): Promise<{
  records: DeviceApply[];
  device: ChaosDevice;
  key: Uint8Array;
  publisher: MqttClient;
  topic: string;
}> {
  const records: DeviceApply[] = [];
  const { device, key } = await ChaosDevice.create({
    name: `chaos-test-${randomBytes(6).toString('hex')}`,
    brokerUrl: BROKER,
    elapsed: () => 0,
    record: (a) => records.push(a),
    ...(now === undefined ? {} : { now }),
    ...(c2PublicKey === undefined ? {} : { c2PublicKey }),
  });
  const publisher = await mqtt.connectAsync(BROKER, { reconnectPeriod: 0 });
  return { records, device, key, publisher, topic: device.client.receivingTopic };
}

/** Closes the device and ends its persistent session, which must not stay on the shared broker. */
async function cleanUp(device: ChaosDevice, publisher: MqttClient): Promise<void> {
  await device.close();
  const end = await mqtt.connectAsync(BROKER, {
    clientId: device.clientId,
    clean: true,
    reconnectPeriod: 0,
  });
  await end.endAsync();
  await publisher.endAsync();
}

void describe('ChaosDevice', () => {
  void it('gets its whole offline backlog when it comes back, refused as too old', async () => {
    const { records, device, key, publisher, topic } = await start();
    const command = (clock: () => number): Buffer =>
      Buffer.from(protectCommand(cmdSetTopicKey(randomSymKey(), 'chaos-test/t'), key, clock));
    try {
      // Offline for a simulated 11 minutes: the broker queues what is sent meanwhile.
      await device.goOffline(11 * 60_000);
      // Protected 5 s ago: surely before the device came back, so part of the backlog.
      for (let i = 0; i < BACKLOG; i++)
        await publisher.publishAsync(
          topic,
          command(() => Date.now() - 5000),
          { qos: 1 },
        );
      await device.online();
      await until(() => records.length >= BACKLOG);
      await device.settle();
      assert.equal(records.length, BACKLOG, 'every queued message applied or refused, none lost');
      assert.ok(
        records.every((r) => r.type === 'rejected' && r.error === 'TimestampTooOld'),
        JSON.stringify(records.slice(0, 3)),
      );
      // After its return, a command is judged on the device's normal clock.
      await publisher.publishAsync(
        topic,
        command(() => Date.now()),
        { qos: 1 },
      );
      await until(() => records.length > BACKLOG);
      await device.settle();
      assert.equal(records.at(-1)?.type, 'SetTopicKey');
    } finally {
      key.fill(0);
      await cleanUp(device, publisher);
    }
  });
  void it('judges as backlog everything stamped before the second of its return', async () => {
    // The device's clock pinned 0.7 s into second S: it comes back at S + 0.7 s.
    const second = Math.floor(Date.now() / 1000);
    const { records, device, key, publisher, topic } = await start(() => second * 1000 + 700);
    const stampedAt = (ms: number): Buffer =>
      Buffer.from(protectCommand(cmdSetTopicKey(randomSymKey(), 'chaos-test/t'), key, () => ms));
    try {
      await device.goOffline(11 * 60_000);
      // Protected 1.2 s and 0.2 s before the return (both stamped S - 1): backlog.
      for (const ms of [(second - 1) * 1000 + 500, second * 1000 - 500])
        await publisher.publishAsync(topic, stampedAt(ms), { qos: 1 });
      await device.online();
      await until(() => records.length >= 2);
      await device.settle();
      assert.deepEqual(
        records.map((r) => r.error),
        ['TimestampTooOld', 'TimestampTooOld'],
        'a message protected before the return is as old as the time away',
      );
      // Stamped in the second of the return (0.1 s after it): judged on the normal clock.
      await publisher.publishAsync(topic, stampedAt(second * 1000 + 800), { qos: 1 });
      await until(() => records.length > 2);
      await device.settle();
      assert.equal(records.at(-1)?.type, 'SetTopicKey');
    } finally {
      key.fill(0);
      await cleanUp(device, publisher);
    }
  });

  void it('rotates to an identity key it drew itself: commands under either key around the switch are applied', async () => {
    const c2 = randomCurve25519KeyPair();
    const { records, device, key, publisher, topic } = await start(undefined, c2.publicKey);
    const own = randomEd25519Key();
    /** A SetTopicKey the C2 protects for the device's identity key `publicKey`. */
    const command = (publicKey: Uint8Array): Buffer =>
      Buffer.from(
        protectCommand(
          cmdSetTopicKey(randomSymKey(), 'chaos-test/t'),
          commandKeyForClient(c2.privateKey, publicKey),
        ),
      );
    try {
      // Begun before the C2 is told: the key it registers is returned.
      const registered = await device.beginOwnKeyRotation(own);
      assert.equal(toHex(registered), toHex(ed25519PublicKey(own)));
      // Still under the key it registered first, then under its own new key (the C2 took it):
      // both opened; the first under the new key makes it current, so that the old one is then
      // refused.
      await publisher.publishAsync(topic, command(key), { qos: 1 });
      await publisher.publishAsync(topic, command(ed25519PublicKey(own)), { qos: 1 });
      await publisher.publishAsync(topic, command(key), { qos: 1 });
      await until(() => records.length >= 3);
      await device.settle();
      assert.deepEqual(
        records.map((r) => r.type),
        ['SetTopicKey', 'SetTopicKey', 'rejected'],
      );
      assert.equal(records[2]?.error, 'NotAuthentic');
      const snapshot = device.snapshot(true);
      assert.equal(snapshot.identityFingerprint, keyFingerprint(ed25519PublicKey(own)));
      assert.equal(device.client.pendingPublicKey, undefined, 'promoted');
      assert.ok(device.secrets.has(toHex(own)), 'the secrecy scan looks for its own key too');
      assert.equal(Object.keys(snapshot.topicKeys).length, 1, 'the topic key it holds is kept');

      // A rotation the C2 refused is abandoned: the device keeps its key.
      const refused = randomEd25519Key();
      await device.beginOwnKeyRotation(refused);
      await device.abandonOwnKeyRotation();
      assert.equal(device.client.pendingPublicKey, undefined);
      assert.equal(device.snapshot(true).identityFingerprint, snapshot.identityFingerprint);
      refused.fill(0);
    } finally {
      own.fill(0);
      c2.privateKey.fill(0);
      await cleanUp(device, publisher);
    }
  });
});
