/**
 * The traffic monitor on the real broker and database: it subscribes to the topics the C2
 * knows, classifies what devices publish and stores counters (and, in public-key mode, the key
 * version each signing device uses), which the C2 then reports per topic.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import mqtt, { type MqttClient } from 'mqtt';
import {
  clientIdFromName,
  ed25519KeyFromSeed,
  ed25519SigningKey,
  protectPubKey,
} from '../../../e4/index.ts';
import {
  startHarness,
  TEST_MQTT_URL,
  type C2Harness,
} from '../../../cluster/test/support/c2-harness.ts';
import { eventually } from '../../../cluster/test/support/eventually.ts';
import { MqttTrafficFeed } from '../../monitoring/mqtt-traffic-feed.ts';
import { TrafficMonitor } from '../../monitoring/traffic-monitor.ts';

const ctx = { actor: 'test' };
const suffix = (): string => randomBytes(4).toString('hex');

async function publisher(): Promise<MqttClient> {
  return mqtt.connectAsync(TEST_MQTT_URL, { clientId: `e4c2-mon-pub-${suffix()}` });
}

async function startMonitor(h: C2Harness, verdicts: string[]): Promise<TrafficMonitor> {
  const feed = await MqttTrafficFeed.connect({
    url: TEST_MQTT_URL,
    clientId: `e4c2-mon-${suffix()}`,
    shareGroup: `e4c2-monitor-test-${suffix()}`,
  });
  const monitor = new TrafficMonitor({
    source: h.service,
    feed,
    flushMs: 3_600_000,
    refreshMs: 3_600_000,
    keyTtlMs: 0,
    onClassified: (v) => verdicts.push(v),
    onError: (err) => {
      throw err;
    },
  });
  await monitor.start();
  return monitor;
}

void describe('traffic monitor, symmetric-key mode', () => {
  let h: C2Harness;
  let pub: MqttClient;
  before(async () => {
    h = await startHarness({ start: false });
    pub = await publisher();
  });
  after(async () => {
    await pub.endAsync();
    await h.close();
  });

  void it('counts current-key, previous-key, plaintext and forged messages per topic', async () => {
    const topic = `e4c2/monitor/${suffix()}`;
    await h.service.newTopic(ctx, topic);
    const verdicts: string[] = [];
    const monitor = await startMonitor(h, verdicts);
    try {
      assert.equal(monitor.topics >= 1, true);
      const underV1 = await h.service.protectMessage(topic, new TextEncoder().encode('reading 1'));
      await h.service.rotateTopicKey(ctx, topic);
      const underV2 = await h.service.protectMessage(topic, new TextEncoder().encode('reading 2'));
      for (const payload of [
        underV2,
        underV2,
        underV1,
        Buffer.from('{"temperature": 21.5, "plaintext": true}'),
        randomBytes(60),
      ])
        await pub.publishAsync(topic, Buffer.from(payload), { qos: 1 });
      await eventually(() => {
        assert.equal(verdicts.length, 5);
      });
      await monitor.flush();
      const report = await h.service.topicTraffic(topic);
      assert.equal(report.keyVersion, 2);
      const summary = report.counts.map((c) => `${c.class}@${c.keyVersion}=${c.messages}`).sort();
      assert.deepEqual(summary, [
        'current@2=2',
        'forged@0=1',
        'previous_key@1=1',
        'unencrypted@0=1',
      ]);
      // A second flush adds to the same rows.
      await pub.publishAsync(topic, Buffer.from(underV2), { qos: 1 });
      await eventually(() => {
        assert.equal(verdicts.length, 6);
      });
      await monitor.flush();
      const again = await h.service.topicTraffic(topic);
      assert.equal(again.counts.find((c) => c.class === 'current')?.messages, 3);
    } finally {
      await monitor.close();
    }
  });

  void it('follows the topic list: a new topic is monitored after a refresh', async () => {
    const verdicts: string[] = [];
    const monitor = await startMonitor(h, verdicts);
    try {
      const topic = `e4c2/monitor/${suffix()}`;
      await h.service.newTopic(ctx, topic);
      await monitor.refresh();
      const message = await h.service.protectMessage(topic, new TextEncoder().encode('late'));
      await pub.publishAsync(topic, Buffer.from(message), { qos: 1 });
      await eventually(() => {
        assert.deepEqual(verdicts, ['current']);
      });
      await h.service.removeTopic(ctx, topic);
      await monitor.refresh();
      await monitor.flush();
      await assert.rejects(h.service.topicTraffic(topic), /not found/);
    } finally {
      await monitor.close();
    }
  });
});

void describe('traffic monitor, public-key mode', () => {
  let h: C2Harness;
  let pub: MqttClient;
  before(async () => {
    h = await startHarness({ start: false, mode: 'pubkey' });
    pub = await publisher();
  });
  after(async () => {
    await pub.endAsync();
    await h.close();
  });

  void it('records the key version each signing device really uses', async () => {
    const topic = `e4c2/monitor/${suffix()}`;
    await h.service.newTopic(ctx, topic);
    const devices = ['lagging', 'current'].map((role) => {
      const name = `mon-${role}-${suffix()}`;
      const privateKey = ed25519KeyFromSeed(randomBytes(32));
      return {
        name,
        privateKey,
        signer: { id: clientIdFromName(name), signingKey: ed25519SigningKey(privateKey) },
      };
    });
    for (const d of devices) await h.service.newClient(ctx, d.name, d.privateKey.subarray(32));
    const v1 = await h.service.monitoringKeys(topic, 1);
    await h.service.rotateTopicKey(ctx, topic);
    const v2 = await h.service.monitoringKeys(topic, 1);
    const [lagging, current] = devices;
    assert.ok(v1?.keys[0] && v2?.keys[0] && lagging && current);
    const verdicts: string[] = [];
    const monitor = await startMonitor(h, verdicts);
    try {
      const data = new TextEncoder().encode('signed reading');
      await pub.publishAsync(
        topic,
        Buffer.from(protectPubKey(data, v1.keys[0].key, lagging.signer)),
      );
      await pub.publishAsync(
        topic,
        Buffer.from(protectPubKey(data, v2.keys[0].key, current.signer)),
      );
      const stranger = { id: randomBytes(16), signingKey: lagging.signer.signingKey };
      await pub.publishAsync(topic, Buffer.from(protectPubKey(data, v2.keys[0].key, stranger)));
      await eventually(() => {
        assert.equal(verdicts.length, 3);
      });
      await monitor.flush();
      const report = await h.service.topicTraffic(topic);
      assert.deepEqual(
        report.devices.map((d) => [d.client, d.keyVersion]),
        [
          [lagging.name, 1],
          [current.name, 2],
        ],
      );
      assert.deepEqual(verdicts.sort(), ['current', 'forged', 'previous_key']);
    } finally {
      await monitor.close();
    }
  });
});
