/**
 * The rotation hold against the real Mosquitto: a message protected under a topic key that
 * reaches the proxy only a little later (a rotation's, or the topic's first) is delivered once
 * the key arrives (in order, with its QoS, once), one whose key never comes is dropped after the
 * hold time, and the caps hold.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { protectSymKey, randomSymKey, toHex, topicHash } from '../../e4/index.ts';
import type { ProtectionProxy } from '../protection-proxy.ts';
import {
  BROKER_URL,
  Collector,
  proxyUrl,
  recordingLogger,
  sendTopicKey,
  startProxy,
  tempDir,
  unique,
  until,
  writeConfig,
} from './support.ts';

const HOLD_MS = 3000;

void describe('rotation hold (real Mosquitto)', () => {
  const base = unique('e4proxy-hold');
  const name = unique('hold-app');
  const identityKey = randomSymKey();
  const logger = recordingLogger();
  const secrets: string[] = [toHex(identityKey)];
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let proxy: ProtectionProxy;
  let sender: Collector;
  const closers: Array<() => Promise<void>> = [];

  async function collector(url: string): Promise<Collector> {
    const c = await Collector.connect(url);
    closers.push(() => c.close());
    return c;
  }

  /** Gives the proxy `key` for `topic` (as the C2 would), and waits until it holds it. */
  async function keyAtProxy(topic: string, key: Uint8Array): Promise<void> {
    secrets.push(toHex(key));
    await sendTopicKey(name, identityKey, topic, key);
    const identity = proxy.ring.get(name);
    const hash = toHex(topicHash(topic));
    await until(() => {
      const held = identity?.client.state.topicKeys.get(hash);
      return held !== undefined && Buffer.from(held).equals(key);
    }, `the key of ${topic} at the proxy`);
  }

  /** Publishes `text` on `topic` protected under `key`, as a device holding it would. */
  async function publish(topic: string, key: Uint8Array, text: string, qos: 0 | 1 = 1) {
    secrets.push(text);
    await sender.client.publishAsync(topic, Buffer.from(protectSymKey(Buffer.from(text), key)), {
      qos,
    });
  }

  const held = (): Promise<number> =>
    proxy.metrics.total(proxy.metrics.rotationHold, { outcome: 'held' });
  const outcome = (o: string): Promise<number> =>
    proxy.metrics.total(proxy.metrics.rotationHold, { outcome: o });
  const notAuthentic = (): Promise<number> =>
    proxy.metrics.total(proxy.metrics.dropped, { direction: 'inbound', reason: 'not-authentic' });
  const noKey = (): Promise<number> =>
    proxy.metrics.total(proxy.metrics.dropped, { direction: 'inbound', reason: 'no-key' });

  before(async () => {
    dir = await tempDir();
    const config = await writeConfig(dir.path, {
      mode: 'local',
      identities: [{ name, initialKey: toHex(identityKey) }],
      policy: {
        protect: [`${base}/#`],
        rotationHold: { ms: HOLD_MS, messagesPerTopic: 3, messagesPerConnection: 5, messages: 8 },
      },
    });
    proxy = await startProxy(config, { logger });
    sender = await collector(BROKER_URL);
  });

  after(async () => {
    for (const close of closers.reverse()) await close().catch(() => undefined);
    await proxy.close();
    await dir.cleanup();
    // Nothing held outlives the stop.
    assert.equal((await proxy.metrics.heldMessages.get()).values[0]?.value, 0);
  });

  void it('delivers messages under a key that arrives a little later, in order, once', async () => {
    const topic = `${base}/late/temp`;
    const [oldKey, newKey] = [randomSymKey(), randomSymKey()];
    await keyAtProxy(topic, oldKey);
    const app = await collector(proxyUrl(proxy));
    await app.client.subscribeAsync(topic, { qos: 1 });
    const heldBefore = await held();
    const droppedBefore = await notAuthentic();
    // A sender that got the rotated key before this proxy did.
    await publish(topic, newKey, 'reading new 1');
    await publish(topic, newKey, 'reading new 2', 0);
    await publish(topic, newKey, 'reading new 3');
    await until(async () => (await held()) === heldBefore + 3, 'three messages held');
    assert.equal(app.messages.length, 0);
    await keyAtProxy(topic, newKey);
    await app.waitFor(3);
    assert.deepEqual(app.texts(), ['reading new 1', 'reading new 2', 'reading new 3']);
    assert.deepEqual(
      app.messages.map((m) => m.qos),
      [1, 0, 1],
    );
    // Never twice: the next message is the only one after them.
    await publish(topic, newKey, 'reading after');
    await app.waitFor(4);
    assert.deepEqual(app.texts(), [
      'reading new 1',
      'reading new 2',
      'reading new 3',
      'reading after',
    ]);
    assert.equal(await outcome('released'), 3);
    assert.equal(await notAuthentic(), droppedBefore);
    assert.equal((await proxy.metrics.heldMessages.get()).values[0]?.value, 0);
  });

  void it('drops a message whose key never arrives after the hold time', async () => {
    const topic = `${base}/never/temp`;
    const key = randomSymKey();
    await keyAtProxy(topic, key);
    const app = await collector(proxyUrl(proxy));
    await app.client.subscribeAsync(topic, { qos: 1 });
    const expiredBefore = await outcome('expired');
    const droppedBefore = await notAuthentic();
    await publish(topic, randomSymKey(), 'reading never');
    await until(
      async () => (await outcome('expired')) === expiredBefore + 1,
      'the message expired',
      HOLD_MS + 5000,
    );
    assert.equal(await notAuthentic(), droppedBefore + 1);
    assert.ok(
      logger.lines.some(
        (l) =>
          l.msg === 'message dropped' &&
          /held 3000 ms, its topic key did not arrive/.test(JSON.stringify(l.obj)),
      ),
    );
    // The device gets the next message, not the dropped one.
    await publish(topic, key, 'reading current');
    await app.waitFor(1);
    assert.deepEqual(app.texts(), ['reading current']);
  });

  void it('holds a message on a topic whose first key has not arrived, until it does (else no-key)', async () => {
    const topic = `${base}/first/temp`;
    const never = `${base}/first/never`;
    const key = randomSymKey();
    const app = await collector(proxyUrl(proxy));
    await app.client.subscribeAsync([topic, never], { qos: 1 });
    const [heldBefore, noKeyBefore] = [await held(), await noKey()];
    // A member that got the topic's first key before this proxy did.
    await publish(topic, key, 'reading first');
    await publish(never, randomSymKey(), 'reading no key');
    await until(async () => (await held()) === heldBefore + 2, 'both messages held');
    assert.equal(await noKey(), noKeyBefore);
    await keyAtProxy(topic, key);
    await app.waitFor(1);
    assert.deepEqual(app.texts(), ['reading first']);
    // The other topic's key never comes: dropped after the hold, as no-key.
    await until(async () => (await noKey()) === noKeyBefore + 1, 'the no-key drop', HOLD_MS + 5000);
    assert.ok(
      logger.lines.some(
        (l) =>
          l.msg === 'message dropped' &&
          /"reason":"no-key".*held 3000 ms, its topic key did not arrive/.test(
            JSON.stringify(l.obj),
          ),
      ),
    );
    assert.deepEqual(app.texts(), ['reading first']);
  });

  void it('holds at most the caps per topic and per connection; what is beyond is dropped at once', async () => {
    const [topicA, topicB] = [`${base}/capped/a`, `${base}/capped/b`];
    const [oldA, newA, oldB, newB] = [
      randomSymKey(),
      randomSymKey(),
      randomSymKey(),
      randomSymKey(),
    ];
    await keyAtProxy(topicA, oldA);
    await keyAtProxy(topicB, oldB);
    const app = await collector(proxyUrl(proxy));
    await app.client.subscribeAsync([topicA, topicB], { qos: 1 });
    const [heldBefore, fullBefore, droppedBefore] = [
      await held(),
      await outcome('full'),
      await notAuthentic(),
    ];
    // Three per topic: the fourth on A is refused.
    for (let i = 1; i <= 4; i++) await publish(topicA, newA, `reading a${i}`);
    // Five per connection: two more fit, from B; the third is refused.
    for (let i = 1; i <= 3; i++) await publish(topicB, newB, `reading b${i}`);
    await until(
      async () => (await outcome('full')) === fullBefore + 2,
      'two messages refused by the caps',
    );
    assert.equal(await held(), heldBefore + 5);
    assert.equal(await notAuthentic(), droppedBefore + 2);
    await keyAtProxy(topicB, newB);
    await keyAtProxy(topicA, newA);
    await app.waitFor(5);
    assert.deepEqual(app.texts(topicA), ['reading a1', 'reading a2', 'reading a3']);
    assert.deepEqual(app.texts(topicB), ['reading b1', 'reading b2']);
  });

  void it('drops what it holds when the connection closes', async () => {
    const topic = `${base}/closed/temp`;
    await keyAtProxy(topic, randomSymKey());
    const app = await Collector.connect(proxyUrl(proxy));
    await app.client.subscribeAsync(topic, { qos: 1 });
    const [discardedBefore, droppedBefore, heldBefore] = [
      await outcome('discarded'),
      await notAuthentic(),
      await held(),
    ];
    await publish(topic, randomSymKey(), 'reading orphan');
    await until(async () => (await held()) === heldBefore + 1, 'the message held');
    await app.close();
    await until(
      async () => (await outcome('discarded')) === discardedBefore + 1,
      'the held message discarded',
    );
    assert.equal(await notAuthentic(), droppedBefore + 1);
    assert.equal((await proxy.metrics.heldMessages.get()).values[0]?.value, 0);
  });

  void it('logs neither keys nor payloads', () => {
    const logged = JSON.stringify(logger.lines);
    for (const secret of secrets) assert.ok(!logged.includes(secret), 'a secret was logged');
    assert.ok(logged.includes('held messages delivered'));
  });
});
