/**
 * The traffic monitor on the real broker and database: it subscribes to the topics the C2
 * knows, classifies what devices publish and stores counters (and, in public-key mode, the key
 * version each signing device uses), which the C2 then reports per topic.
 */
import assert from 'node:assert/strict';
import { randomBytes, type KeyObject } from 'node:crypto';
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
import {
  TrafficMonitor,
  type TrafficMonitorOptions,
  type TrafficSource,
} from '../../monitoring/traffic-monitor.ts';

const ctx = { actor: 'test' };
const suffix = (): string => randomBytes(4).toString('hex');

async function publisher(): Promise<MqttClient> {
  return mqtt.connectAsync(TEST_MQTT_URL, { clientId: `e4c2-mon-pub-${suffix()}` });
}

async function startMonitor(
  h: C2Harness,
  verdicts: string[],
  options: Partial<Pick<TrafficMonitorOptions, 'keyTtlMs' | 'keyReloadMs' | 'now'>> & {
    /** Called on each key read of the monitor. */
    onKeyRead?: (topic: string) => void;
    /** Called on each read of a signer's public key. */
    onSignerRead?: () => void;
    /** While it says true, writes of the counters fail (the database is away). */
    failWrites?: () => boolean;
  } = {},
): Promise<TrafficMonitor> {
  const { onKeyRead, onSignerRead, failWrites, ...tuning } = options;
  const service = h.service;
  const source: TrafficSource = {
    mode: service.mode,
    listTopics: (cursor, limit) => service.listTopics(cursor, limit),
    monitoringKeys: (topic, versions) => {
      onKeyRead?.(topic);
      return service.monitoringKeys(topic, versions);
    },
    recordTraffic: (counts, uses) =>
      failWrites?.() === true
        ? Promise.reject(new Error('connection terminated unexpectedly'))
        : service.recordTraffic(counts, uses),
    devicePublicKey: (e4Id) => {
      onSignerRead?.();
      return service.devicePublicKey(e4Id);
    },
  };
  const feed = await MqttTrafficFeed.connect({
    url: TEST_MQTT_URL,
    clientId: `e4c2-mon-${suffix()}`,
    shareGroup: `e4c2-monitor-test-${suffix()}`,
  });
  const monitor = new TrafficMonitor({
    source,
    feed,
    flushMs: 3_600_000,
    refreshMs: 3_600_000,
    keyTtlMs: 0,
    ...tuning,
    onClassified: (v) => verdicts.push(v),
    onError: (err) => {
      throw err;
    },
  });
  await monitor.start();
  return monitor;
}

/** Counts in a report, as sorted `class@version=messages` strings. */
function summary(report: {
  counts: ReadonlyArray<{ class: string; keyVersion: number; messages: number }>;
}): string[] {
  return report.counts.map((c) => `${c.class}@${c.keyVersion}=${c.messages}`).sort();
}

const reading = (): Uint8Array => new TextEncoder().encode(`reading ${suffix()}`);

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

  void it('keeps the counts of a flush that failed, for the next one', async () => {
    const topic = `e4c2/monitor/${suffix()}`;
    await h.service.newTopic(ctx, topic);
    const verdicts: string[] = [];
    let databaseAway = true;
    const monitor = await startMonitor(h, verdicts, { failWrites: () => databaseAway });
    try {
      const current = await h.service.protectMessage(topic, reading());
      for (const payload of [current, current, randomBytes(60)])
        await pub.publishAsync(topic, Buffer.from(payload), { qos: 1 });
      await eventually(() => {
        assert.equal(verdicts.length, 3);
      });
      await assert.rejects(monitor.flush(), /connection terminated/);
      // Counted while the database is away, then written together with the failed flush's.
      for (const payload of [current, randomBytes(60)])
        await pub.publishAsync(topic, Buffer.from(payload), { qos: 1 });
      await eventually(() => {
        assert.equal(verdicts.length, 5);
      });
      databaseAway = false;
      await monitor.flush();
      assert.deepEqual(summary(await h.service.topicTraffic(topic)), ['current@1=3', 'forged@0=2']);
    } finally {
      await monitor.close();
    }
  });

  void it('sees a rotation at once: new-key traffic is current, old-key previous_key', async () => {
    const topic = `e4c2/monitor/${suffix()}`;
    await h.service.newTopic(ctx, topic);
    const verdicts: string[] = [];
    const reads: string[] = [];
    // Keys cached for an hour: only the re-read on an unauthenticated message can see a rotation.
    const monitor = await startMonitor(h, verdicts, {
      keyTtlMs: 3_600_000,
      onKeyRead: (t) => reads.push(t),
    });
    try {
      let previous = await h.service.protectMessage(topic, reading());
      await pub.publishAsync(topic, Buffer.from(previous), { qos: 1 });
      await eventually(() => {
        assert.deepEqual(verdicts, ['current']);
      });
      for (let rotation = 1; rotation <= 2; rotation++) {
        await h.service.rotateTopicKey(ctx, topic);
        const underNew = [];
        for (let i = 0; i < 5; i++) underNew.push(await h.service.protectMessage(topic, reading()));
        for (const payload of [...underNew, previous])
          await pub.publishAsync(topic, Buffer.from(payload), { qos: 1 });
        await eventually(() => {
          assert.equal(verdicts.length, 1 + rotation * 6);
        });
        previous = underNew[0] ?? assert.fail('no message');
      }
      assert.deepEqual(
        verdicts.filter((v) => v !== 'current'),
        ['previous_key', 'previous_key'],
      );
      assert.equal(reads.length, 3, 'one key read, then one per rotation');
      await monitor.flush();
      assert.deepEqual(summary(await h.service.topicTraffic(topic)), [
        'current@1=1',
        'current@2=5',
        'current@3=5',
        'previous_key@1=1',
        'previous_key@2=1',
      ]);
    } finally {
      await monitor.close();
    }
  });

  void it("a flood of forged messages re-reads a topic's keys at most once per interval", async () => {
    const topic = `e4c2/monitor/${suffix()}`;
    await h.service.newTopic(ctx, topic);
    const verdicts: string[] = [];
    const reads: string[] = [];
    let now = Date.now();
    const monitor = await startMonitor(h, verdicts, {
      keyTtlMs: 3_600_000,
      keyReloadMs: 1000,
      now: () => now,
      onKeyRead: (t) => reads.push(t),
    });
    try {
      await pub.publishAsync(topic, Buffer.from(await h.service.protectMessage(topic, reading())), {
        qos: 1,
      });
      await eventually(() => {
        assert.deepEqual(verdicts, ['current']);
      });
      const forgeries = 300;
      for (let i = 0; i < forgeries; i++)
        await pub.publishAsync(topic, randomBytes(40 + (i % 40)), { qos: 1 });
      await eventually(() => {
        assert.equal(verdicts.length, 1 + forgeries);
      });
      assert.equal(verdicts.filter((v) => v === 'forged').length, forgeries);
      // The first forgery may be under a key the cache lacks: one re-read, then a quiet second.
      assert.equal(reads.length, 2, 'the first read and one re-read for the whole flood');
      // After the quiet interval a rotation is seen again at the first message under its key.
      now += 1000;
      await h.service.rotateTopicKey(ctx, topic);
      await pub.publishAsync(topic, Buffer.from(await h.service.protectMessage(topic, reading())), {
        qos: 1,
      });
      await eventually(() => {
        assert.equal(verdicts.length, 2 + forgeries);
      });
      assert.equal(verdicts.at(-1), 'current');
      assert.equal(reads.length, 3);
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
      // A replay of the current device's old message (v1, 15 minutes old): stale, and not a
      // version the device uses (it would make the device look behind and be resynced).
      await pub.publishAsync(
        topic,
        Buffer.from(
          protectPubKey(data, v1.keys[0].key, current.signer, () => Date.now() - 900_000),
        ),
      );
      await eventually(() => {
        assert.equal(verdicts.length, 4);
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
      assert.deepEqual(verdicts.sort(), ['current', 'forged', 'previous_key', 'stale']);
    } finally {
      await monitor.close();
    }
  });

  void it('sees a rotation at once: the signer of the new key is recorded on it', async () => {
    const topic = `e4c2/monitor/${suffix()}`;
    await h.service.newTopic(ctx, topic);
    const [early, late] = ['early', 'late'].map((role) => {
      const name = `mon-${role}-${suffix()}`;
      const privateKey = ed25519KeyFromSeed(randomBytes(32));
      return {
        name,
        privateKey,
        signer: { id: clientIdFromName(name), signingKey: ed25519SigningKey(privateKey) },
      };
    });
    assert.ok(early && late);
    for (const d of [early, late])
      await h.service.newClient(ctx, d.name, d.privateKey.subarray(32));
    const verdicts: string[] = [];
    const reads: string[] = [];
    const monitor = await startMonitor(h, verdicts, {
      keyTtlMs: 3_600_000,
      onKeyRead: (t) => reads.push(t),
    });
    try {
      const v1 = (await h.service.monitoringKeys(topic, 1))?.keys[0]?.key;
      assert.ok(v1);
      const data = reading();
      await pub.publishAsync(topic, Buffer.from(protectPubKey(data, v1, early.signer)));
      await eventually(() => {
        assert.deepEqual(verdicts, ['current']);
      });
      await h.service.rotateTopicKey(ctx, topic);
      const v2 = (await h.service.monitoringKeys(topic, 1))?.keys[0]?.key;
      assert.ok(v2);
      await pub.publishAsync(topic, Buffer.from(protectPubKey(data, v2, early.signer)));
      await pub.publishAsync(topic, Buffer.from(protectPubKey(data, v1, late.signer)));
      await eventually(() => {
        assert.equal(verdicts.length, 3);
      });
      assert.deepEqual(verdicts, ['current', 'current', 'previous_key']);
      assert.equal(reads.length, 2);
      // An unknown signer is forged whatever the topic key: no re-read for it.
      const stranger = { id: randomBytes(16), signingKey: early.signer.signingKey };
      await pub.publishAsync(topic, Buffer.from(protectPubKey(data, v2, stranger)));
      await eventually(() => {
        assert.equal(verdicts.length, 4);
      });
      assert.equal(verdicts[3], 'forged');
      assert.equal(reads.length, 2);
      await monitor.flush();
      const report = await h.service.topicTraffic(topic);
      assert.deepEqual(
        report.devices.map((d) => [d.client, d.keyVersion]),
        [
          [late.name, 1],
          [early.name, 2],
        ],
      );
    } finally {
      await monitor.close();
    }
  });

  void it('skips a retained message the broker replays on subscribing: it is not traffic', async () => {
    const topic = `e4c2/monitor/${suffix()}`;
    await h.service.newTopic(ctx, topic);
    const name = `mon-retained-${suffix()}`;
    const privateKey = ed25519KeyFromSeed(randomBytes(32));
    const signer = { id: clientIdFromName(name), signingKey: ed25519SigningKey(privateKey) };
    await h.service.newClient(ctx, name, privateKey.subarray(32));
    const v1 = (await h.service.monitoringKeys(topic, 1))?.keys[0]?.key;
    assert.ok(v1);
    // The device's last value, retained, under the key it had then; it moves to the new key.
    await pub.publishAsync(topic, Buffer.from(protectPubKey(reading(), v1, signer)), {
      qos: 1,
      retain: true,
    });
    await h.service.rotateTopicKey(ctx, topic);
    const v2 = (await h.service.monitoringKeys(topic, 1))?.keys[0]?.key;
    assert.ok(v2);
    const verdicts: string[] = [];
    // A monitor (re)starting subscribes, and the broker sends it the retained message first.
    const monitor = await startMonitor(h, verdicts);
    try {
      await pub.publishAsync(topic, Buffer.from(protectPubKey(reading(), v2, signer)), {
        qos: 1,
      });
      // The live message comes after the retained one: once it is classified, both were handled.
      await eventually(() => {
        assert.notEqual(verdicts.length, 0);
      });
      assert.deepEqual(verdicts, ['current']);
      await monitor.flush();
      const report = await h.service.topicTraffic(topic);
      assert.deepEqual(summary(report), ['current@2=1']);
      assert.deepEqual(
        report.devices.map((d) => [d.client, d.keyVersion]),
        [[name, 2]],
      );
    } finally {
      await monitor.close();
      await pub.publishAsync(topic, Buffer.alloc(0), { qos: 1, retain: true });
    }
  });

  void it('recognises a device added, or given a new key pair, after its first messages', async () => {
    const topic = `e4c2/monitor/${suffix()}`;
    await h.service.newTopic(ctx, topic);
    const name = `mon-rekeyed-${suffix()}`;
    const pair = (): {
      privateKey: Uint8Array;
      signer: { id: Uint8Array; signingKey: KeyObject };
    } => {
      const privateKey = ed25519KeyFromSeed(randomBytes(32));
      return {
        privateKey,
        signer: { id: clientIdFromName(name), signingKey: ed25519SigningKey(privateKey) },
      };
    };
    const first = pair();
    const second = pair();
    const verdicts: string[] = [];
    let signerReads = 0;
    let clock = Date.now();
    const monitor = await startMonitor(h, verdicts, {
      keyTtlMs: 3_600_000,
      now: () => clock,
      onSignerRead: () => (signerReads += 1),
    });
    const key = (await h.service.monitoringKeys(topic, 1))?.keys[0]?.key;
    assert.ok(key);
    const send = async (signer: { id: Uint8Array; signingKey: KeyObject }): Promise<void> => {
      const before = verdicts.length;
      await pub.publishAsync(topic, Buffer.from(protectPubKey(reading(), key, signer)));
      await eventually(() => {
        assert.equal(verdicts.length, before + 1);
      });
    };
    try {
      // Not known to the C2 yet: forged.
      await send(first.signer);
      await h.service.newClient(ctx, name, first.privateKey.subarray(32));
      // An unknown signer is remembered as such only briefly (the default second).
      clock += 1001;
      await send(first.signer);
      assert.deepEqual(verdicts, ['forged', 'current']);
      // The device gets a new key pair: its cached old key must not make it a forger.
      await h.service.rotateClientKey(ctx, name, second.privateKey.subarray(32));
      await send(second.signer);
      assert.equal(verdicts[2], 'current');
      // Its old pair is refused now, and a flood of such messages re-reads its key once.
      const reads = signerReads;
      for (let i = 0; i < 5; i++) await send(first.signer);
      assert.deepEqual(verdicts.slice(3), ['forged', 'forged', 'forged', 'forged', 'forged']);
      assert.equal(signerReads - reads, 1);
    } finally {
      await monitor.close();
    }
  });
});
