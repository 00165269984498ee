/**
 * Sessions on the real Mosquitto: a device's persistent session with queued messages resumes
 * through the proxy; a device cannot take the proxy's control session; and when the broker loses
 * the control session while the proxy runs, the proxy asks the C2 to resync every identity.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type mqtt from 'mqtt';
import { type MqttClient } from 'mqtt';
import { randomSymKey, toHex, topicHash } from '../../e4/index.ts';
import type { ProxyConfig } from '../config.ts';
import type { ProtectionProxy } from '../protection-proxy.ts';
import {
  BROKER_URL,
  connectRecording,
  type FakeC2,
  type RecordingClient,
  proxyUrl,
  sendTopicKey,
  startFakeC2,
  startProxy,
  tempDir,
  unique,
  until,
  writeConfig,
} from './support.ts';

void describe('sessions through the proxy (real Mosquitto)', () => {
  const name = unique('session-app');
  const identityKey = randomSymKey();
  const base = unique('e4proxy-sessions');
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let config: ProxyConfig;
  let proxy: ProtectionProxy;
  let c2: FakeC2;
  const clients: MqttClient[] = [];

  before(async () => {
    dir = await tempDir();
    c2 = await startFakeC2((method, path) =>
      method === 'POST' && /^\/v1\/clients\/[^/]+\/resync$/.test(path)
        ? { status: 200 }
        : undefined,
    );
    config = await writeConfig(dir.path, {
      mode: 'local',
      identities: [{ name, initialKey: toHex(identityKey) }],
      policy: { protect: [`${base}/secure/#`] },
      c2: { url: c2.url },
    });
    proxy = await startProxy(config);
  });

  after(async () => {
    for (const c of clients) await c.endAsync(true).catch(() => undefined);
    await proxy.close();
    await c2.close();
    await dir.cleanup();
  });

  /** The identities the C2 was asked to resync. */
  function resyncs(): string[] {
    return c2.requests.flatMap((r) => {
      const match = /^POST \/v1\/clients\/([^/]+)\/resync$/.exec(r);
      return match?.[1] === undefined ? [] : [decodeURIComponent(match[1])];
    });
  }

  /** Connects; records the messages from the first packet on. */
  function connect(url: string, options: mqtt.IClientOptions): Promise<RecordingClient> {
    return connectRecording(url, options, clients);
  }

  void it('resumes a persistent session: its queued messages, then live ones', async () => {
    const topic = `${base}/queued`;
    const clientId = unique('persistent');
    const first = await connect(proxyUrl(proxy), { clientId, clean: false });
    await first.client.subscribeAsync(topic, { qos: 1 });
    await first.client.endAsync();
    const publisher = await connect(BROKER_URL, { clientId: unique('publisher') });
    // Several rounds: the queued messages race the proxy's own CONNACK.
    for (let round = 0; round < 5; round++) {
      const queued = [1, 2, 3].map((i) => `round ${round} queued ${i}`);
      for (const text of queued) await publisher.client.publishAsync(topic, text, { qos: 1 });
      const again = await connect(proxyUrl(proxy), { clientId, clean: false });
      assert.equal(again.sessionPresent, true);
      await until(() => again.texts.length >= 3, `round ${round}: the queued messages`);
      await publisher.client.publishAsync(topic, `round ${round} live`, { qos: 1 });
      await until(() => again.texts.length >= 4, `round ${round}: the live message`);
      assert.deepEqual(again.texts, [...queued, `round ${round} live`]);
      await again.client.endAsync();
    }
    // Every message was acknowledged: nothing is left in the session.
    const last = await connect(proxyUrl(proxy), { clientId, clean: false });
    await new Promise((r) => setTimeout(r, 300));
    assert.deepEqual(last.texts, []);
    await last.client.endAsync();
    const cleanup = await connect(BROKER_URL, { clientId, clean: true });
    await cleanup.client.endAsync();
  });

  void it('refuses a device using the control client id; commands keep arriving', async () => {
    const controlClientId = config.upstream.controlClientId;
    await assert.rejects(
      connect(proxyUrl(proxy), { clientId: controlClientId, clean: false }),
      /Identifier rejected/,
    );
    await assert.rejects(
      connect(proxyUrl(proxy), { clientId: controlClientId, protocolVersion: 5 }),
      /Client Identifier not valid/,
    );
    assert.equal(proxy.status().upstreamConnected, true);
    const topic = `${base}/secure/after-refusal`;
    await sendTopicKey(name, identityKey, topic, randomSymKey());
    const identity = proxy.ring.get(name);
    await until(
      () => identity?.client.state.topicKeys.has(toHex(topicHash(topic))) === true,
      'the command applied',
    );
  });

  void it('asks the C2 to resync when the broker lost the control session', async () => {
    // The start found no session of its own (a new control client id).
    await until(() => resyncs().includes(name), 'the resync at start');
    c2.requests.length = 0;
    // The session is lost: a clean session with the same client id replaces it and ends.
    const usurper = await connect(BROKER_URL, {
      clientId: config.upstream.controlClientId,
      clean: true,
    });
    await usurper.client.endAsync();
    await until(() => resyncs().includes(name), 'the resync after the lost session');
    assert.deepEqual(resyncs(), [name]);
    // And commands reach the proxy again.
    const topic = `${base}/secure/after-loss`;
    await sendTopicKey(name, identityKey, topic, randomSymKey());
    const identity = proxy.ring.get(name);
    await until(
      () => identity?.client.state.topicKeys.has(toHex(topicHash(topic))) === true,
      'the command applied after the loss',
    );
  });
});
