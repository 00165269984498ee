/**
 * A local protection proxy on the real Mosquitto, with a stand-in for the C2 that sends the topic
 * key: a plain MQTT client (no E4) talks through the proxy, an E4 device and an eavesdropper talk
 * to the broker directly.
 */
import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Packet } from 'mqtt-packet';
import {
  cmdSetTopicKey,
  E4Client,
  protectCommand,
  protectSymKey,
  randomSymKey,
  sivKey,
  toHex,
  topicHash,
} from '../../e4/index.ts';
import type { ProxyConfig } from '../config.ts';
import type { ProtectionProxy } from '../protection-proxy.ts';
import {
  BROKER_URL,
  Collector,
  proxyUrl,
  rawMqtt5Session,
  sendTopicKey,
  startProxy,
  tempDir,
  unique,
  until,
  writeConfig,
} from './support.ts';

async function httpGet(port: number, path: string): Promise<{ status: number; text: string }> {
  const response = await fetch(`http://127.0.0.1:${port}${path}`);
  return { status: response.status, text: await response.text() };
}

void describe('local protection proxy (real Mosquitto)', () => {
  const base = unique('e4proxy-local');
  const secure = `${base}/secure`;
  const topic = `${secure}/temp`;
  const name = unique('legacy-app');
  const identityKey = randomSymKey();
  const topicKey = randomSymKey();
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let config: ProxyConfig;
  let proxy: ProtectionProxy;
  let device: E4Client;
  const closers: Array<() => Promise<void>> = [];

  async function collector(url: string, options = {}): Promise<Collector> {
    const c = await Collector.connect(url, options);
    closers.push(() => c.close());
    return c;
  }

  before(async () => {
    dir = await tempDir();
    config = await writeConfig(dir.path, {
      mode: 'local',
      identities: [{ name, initialKey: toHex(identityKey) }],
      // A forged message is held for a key that never comes: not for long here.
      policy: { protect: [`${secure}/#`], maxPayloadBytes: 4096, rotationHold: { ms: 300 } },
    });
    proxy = await startProxy(config);
    await sendTopicKey(name, identityKey, topic, topicKey);
    const hash = toHex(topicHash(topic));
    const identity = proxy.ring.get(name);
    assert.ok(identity);
    await until(() => identity.client.state.topicKeys.has(hash), 'the topic key at the proxy');
    const deviceKey = randomSymKey();
    device = await E4Client.createSymmetric({ name: unique('device') }, { key: deviceKey });
    await device.unprotect(
      protectCommand(cmdSetTopicKey(topicKey, topic), deviceKey),
      device.receivingTopic,
    );
  });

  after(async () => {
    for (const close of closers.reverse()) await close().catch(() => undefined);
    await proxy.close();
    await dir.cleanup();
  });

  void it('protects what a plain client publishes; the broker sees only ciphertext', async () => {
    const eavesdropper = await collector(BROKER_URL);
    await eavesdropper.client.subscribeAsync(`${secure}/#`, { qos: 1 });
    const app = await collector(proxyUrl(proxy));
    const texts = Array.from({ length: 20 }, (_v, i) => `reading ${i}: 21.${i} C`);
    for (const text of texts) await app.client.publishAsync(topic, text, { qos: 1 });
    await eavesdropper.waitFor(texts.length);
    const seen = eavesdropper.messages.map((m) => m.payload);
    for (const [i, payload] of seen.entries()) {
      assert.ok(!payload.toString('latin1').includes('reading'), 'no plaintext at the broker');
      // In order, and each one decrypts on a device holding the topic key.
      assert.equal(Buffer.from(device.unprotectMessage(payload, topic)).toString(), texts[i]);
    }
    assert.equal(await proxy.metrics.total(proxy.metrics.protected), texts.length);
  });

  void it('unprotects what a device publishes, for a wildcard subscription, QoS kept', async () => {
    const app = await collector(proxyUrl(proxy));
    await app.client.subscribeAsync(`${secure}/+`, { qos: 2 });
    const sender = await collector(BROKER_URL);
    for (let i = 0; i < 10; i++) {
      const qos = (i % 3) as 0 | 1 | 2;
      await sender.client.publishAsync(
        topic,
        Buffer.from(device.protectMessage(Buffer.from(`cmd ${i}`), topic)),
        { qos },
      );
    }
    await app.waitFor(10);
    // MQTT orders messages per QoS level (a QoS 2 message is released at PUBREL): each level's
    // messages arrive in order, with their QoS.
    for (const qos of [0, 1, 2]) {
      assert.deepEqual(
        app.messages.filter((m) => m.qos === qos).map((m) => m.payload.toString()),
        Array.from({ length: 10 }, (_v, i) => i)
          .filter((i) => i % 3 === qos)
          .map((i) => `cmd ${i}`),
      );
    }
  });

  void it('keeps retain and QoS 2: a retained protected message reaches a later subscriber in clear', async () => {
    const retainedTopic = `${secure}/setpoint`;
    const keyFor = async (t: string): Promise<void> => {
      await sendTopicKey(name, identityKey, t, topicKey);
      const identity = proxy.ring.get(name);
      await until(
        () => identity?.client.state.topicKeys.has(toHex(topicHash(t))) === true,
        'second topic key',
      );
    };
    await keyFor(retainedTopic);
    const app = await collector(proxyUrl(proxy));
    await app.client.publishAsync(retainedTopic, '19.0', { qos: 2, retain: true });
    const later = await collector(proxyUrl(proxy));
    await later.client.subscribeAsync(retainedTopic, { qos: 1 });
    await later.waitFor(1);
    assert.equal(later.texts()[0], '19.0');
    assert.equal(later.messages[0]?.retain, true);
    await app.client.publishAsync(retainedTopic, '', { qos: 1, retain: true });
  });

  void it('drops plaintext, forged and stale messages on a protected topic, and counts them', async () => {
    const app = await collector(proxyUrl(proxy));
    await app.client.subscribeAsync(topic, { qos: 1 });
    const sender = await collector(BROKER_URL);
    await sender.client.publishAsync(topic, 'plain text, not protected', { qos: 1 });
    await sender.client.publishAsync(
      topic,
      Buffer.from(protectSymKey(Buffer.from('forged'), sivKey(randomSymKey()))),
      { qos: 1 },
    );
    await sender.client.publishAsync(
      topic,
      Buffer.from(
        protectSymKey(Buffer.from('old'), sivKey(topicKey), () => Date.now() - 20 * 60_000),
      ),
      { qos: 1 },
    );
    await sender.client.publishAsync(
      topic,
      Buffer.from(device.protectMessage(Buffer.from('good'), topic)),
      { qos: 1 },
    );
    await app.waitFor(1);
    assert.deepEqual(app.texts(), ['good']);
    const m = proxy.metrics;
    assert.ok((await m.total(m.dropped, { direction: 'inbound', reason: 'plaintext' })) >= 1);
    assert.ok((await m.total(m.dropped, { direction: 'inbound', reason: 'stale' })) >= 1);
    // The forged one waits for a topic key in flight first, then is dropped.
    await until(
      async () =>
        (await m.total(m.dropped, { direction: 'inbound', reason: 'not-authentic' })) >= 1,
      'the forged message dropped after its hold',
    );
    assert.ok((await m.total(m.rotationHold, { outcome: 'expired' })) >= 1);
    assert.deepEqual(app.texts(), ['good']);
  });

  void it('never delivers control messages, and drops what it cannot protect or is too large', async () => {
    const app = await collector(proxyUrl(proxy));
    await app.client.subscribeAsync('e4/#', { qos: 1 });
    const eavesdropper = await collector(BROKER_URL);
    await eavesdropper.client.subscribeAsync([topic, `${secure}/nokey`], { qos: 1 });
    const appliedBefore = await proxy.metrics.total(proxy.metrics.commands, { outcome: 'applied' });
    await sendTopicKey(name, identityKey, `${secure}/other`, randomSymKey());
    await until(
      async () =>
        (await proxy.metrics.total(proxy.metrics.commands, { outcome: 'applied' })) > appliedBefore,
      'the command applied',
    );
    // No key for this protected topic; a payload over maxPayloadBytes; a control topic.
    await app.client.publishAsync(`${secure}/nokey`, 'secret', { qos: 1 });
    await app.client.publishAsync(topic, Buffer.alloc(5000, 1), { qos: 1 });
    await app.client.publishAsync(`e4/${'0'.repeat(32)}`, 'spoof', { qos: 1 });
    await app.client.publishAsync(topic, 'sync', { qos: 1 });
    await eavesdropper.waitFor(1);
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(eavesdropper.messages.length, 1, 'only the last message reached the broker');
    assert.equal(app.messages.length, 0, 'no control message reached the client');
    const m = proxy.metrics;
    assert.ok((await m.total(m.dropped, { direction: 'outbound', reason: 'no-key' })) >= 1);
    assert.ok((await m.total(m.dropped, { direction: 'outbound', reason: 'oversized' })) >= 1);
    assert.ok((await m.total(m.dropped, { direction: 'outbound', reason: 'control-topic' })) >= 1);
  });

  void it('counts a will it cannot protect, which would never fire', async () => {
    const m = proxy.metrics;
    const before = await m.total(m.dropped, { direction: 'outbound', reason: 'no-key' });
    // A protected topic the identity holds no key for.
    await collector(proxyUrl(proxy), {
      will: {
        topic: `${secure}/will-without-key`,
        payload: Buffer.from('gone'),
        qos: 1,
        retain: false,
      },
    });
    assert.equal(await m.total(m.dropped, { direction: 'outbound', reason: 'no-key' }), before + 1);
  });

  void it('passes MQTT 5 clients and their properties', async () => {
    const app = await collector(proxyUrl(proxy), { protocolVersion: 5 });
    const receiver = await collector(proxyUrl(proxy), { protocolVersion: 5 });
    await receiver.client.subscribeAsync(topic, { qos: 1 });
    await app.client.publishAsync(topic, 'v5 hello', {
      qos: 1,
      properties: { userProperties: { site: 'north' }, contentType: 'text/plain' },
    });
    await receiver.waitFor(1);
    assert.equal(receiver.texts()[0], 'v5 hello');
  });

  void it('tells an MQTT 5 client why it is closed: packet too large (0x95), keep alive timeout (0x8D)', async () => {
    const m = proxy.metrics;
    const rejected = (reason: 'packet-too-large' | 'timeout'): Promise<number> =>
      m.total(m.rejected, { reason });
    const port = proxy.listenAddress.port;
    /** The reason code of the DISCONNECT that ended `packets`, after their CONNACK. */
    const disconnectCode = (packets: Packet[]): number | undefined => {
      assert.deepEqual(
        packets.map((p) => p.cmd),
        ['connack', 'disconnect'],
      );
      const last = packets.at(-1);
      return last?.cmd === 'disconnect' ? last.reasonCode : undefined;
    };

    // A PUBLISH declaring 256 MiB, far above maxPayloadBytes: refused before it is read.
    const tooLargeBefore = await rejected('packet-too-large');
    const header = Buffer.from([0x30, 0xff, 0xff, 0xff, 0x7f]);
    assert.equal(disconnectCode(await rawMqtt5Session(port, 30, [header])), 0x95);
    assert.equal(await rejected('packet-too-large'), tooLargeBefore + 1);

    // Silent past one and a half keep alive periods (MQTT 5 §3.1.2.10): 1 s, closed after 1.5 s.
    const timeoutBefore = await rejected('timeout');
    const started = Date.now();
    assert.equal(disconnectCode(await rawMqtt5Session(port, 1, [])), 0x8d);
    const elapsed = Date.now() - started;
    assert.ok(elapsed >= 1500 && elapsed < 5000, `closed after ${elapsed} ms`);
    assert.equal(await rejected('timeout'), timeoutBefore + 1);
  });

  void it('serves /healthz and /metrics', async () => {
    const health = await httpGet(proxy.statusAddress.port, '/healthz');
    assert.equal(health.status, 200);
    const status = JSON.parse(health.text) as { status: string; mode: string };
    assert.equal(status.status, 'ok');
    assert.equal(status.mode, 'local');
    const metrics = await httpGet(proxy.statusAddress.port, '/metrics');
    assert.match(metrics.text, /e4proxy_messages_protected_total \d+/);
    assert.match(
      metrics.text,
      /e4proxy_messages_dropped_total\{direction="inbound",reason="stale"\}/,
    );
    assert.doesNotMatch(metrics.text, new RegExp(toHex(topicKey)));
  });

  void it('keeps its keys across a restart, encrypted at rest', async () => {
    await proxy.close();
    const files = await readdir(join(config.stateDir, 'identities'));
    assert.equal(files.length, 1);
    const stored = await readFile(join(config.stateDir, 'identities', files[0] ?? ''));
    for (const secret of [
      toHex(topicKey),
      toHex(identityKey),
      Buffer.from(topicKey).toString('base64'),
    ]) {
      assert.ok(!stored.toString('latin1').includes(secret), 'no key in clear in the store');
    }
    proxy = await startProxy(config);
    const eavesdropper = await collector(BROKER_URL);
    await eavesdropper.client.subscribeAsync(topic, { qos: 1 });
    const app = await collector(proxyUrl(proxy));
    await app.client.publishAsync(topic, 'after restart', { qos: 1 });
    await eavesdropper.waitFor(1);
    const payload = eavesdropper.messages[0]?.payload ?? Buffer.alloc(0);
    assert.equal(Buffer.from(device.unprotectMessage(payload, topic)).toString(), 'after restart');
  });
});
