/**
 * The rotation hold in public-key mode, against the real Mosquitto: a message from a sender whose
 * public key has not reached the proxy yet (a new device) is held, and delivered once the C2's
 * SetPubKey for that sender is applied; one whose sender's key never comes is dropped after the
 * hold time.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  clientIdFromName,
  cmdSetPubKey,
  cmdSetTopicKey,
  commandKeyForClient,
  ed25519PublicKey,
  ed25519SigningKey,
  protectPubKey,
  randomCurve25519KeyPair,
  randomEd25519Key,
  randomSymKey,
  toHex,
  topicHash,
} from '../../e4/index.ts';
import type { ProtectionProxy } from '../protection-proxy.ts';
import {
  BROKER_URL,
  Collector,
  proxyUrl,
  recordingLogger,
  sendCommand,
  startProxy,
  tempDir,
  unique,
  until,
  writeConfig,
} from './support.ts';

const HOLD_MS = 3000;

void describe("rotation hold for a sender's public key (public-key mode, real Mosquitto)", () => {
  const base = unique('e4proxy-pkhold');
  const name = unique('pkhold-app');
  const identityKey = randomEd25519Key();
  const c2 = randomCurve25519KeyPair();
  const commandKey = commandKeyForClient(c2.privateKey, ed25519PublicKey(identityKey));
  const topic = `${base}/temp`;
  const topicKey = randomSymKey();
  const logger = recordingLogger();
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let proxy: ProtectionProxy;
  let sender: Collector;
  let app: Collector;

  /** Plays the C2: sends `bytes` to the proxy's identity. */
  const command = (bytes: Uint8Array): Promise<void> => sendCommand(name, commandKey, bytes);

  /** Publishes `text` as the device `device` (its Ed25519 key `key`) would. */
  async function publishAs(device: string, key: Uint8Array, text: string): Promise<void> {
    const signer = { id: clientIdFromName(device), signingKey: ed25519SigningKey(key) };
    await sender.client.publishAsync(
      topic,
      Buffer.from(protectPubKey(Buffer.from(text), topicKey, signer)),
      { qos: 1 },
    );
  }

  const outcome = (o: string): Promise<number> =>
    proxy.metrics.total(proxy.metrics.rotationHold, { outcome: o });

  before(async () => {
    dir = await tempDir();
    const config = await writeConfig(dir.path, {
      mode: 'local',
      c2: { mode: 'public-key', publicKey: toHex(c2.publicKey) },
      identities: [{ name, initialKey: toHex(identityKey) }],
      policy: { protect: [`${base}/#`], rotationHold: { ms: HOLD_MS } },
    });
    proxy = await startProxy(config, { logger });
    await command(cmdSetTopicKey(topicKey, topic));
    const hash = toHex(topicHash(topic));
    await until(
      () => proxy.ring.get(name)?.client.state.topicKeys.has(hash) === true,
      'the topic key at the proxy',
    );
    sender = await Collector.connect(BROKER_URL);
    app = await Collector.connect(proxyUrl(proxy));
    await app.client.subscribeAsync(topic, { qos: 1 });
  });

  after(async () => {
    await app.close();
    await sender.close();
    await proxy.close();
    await dir.cleanup();
  });

  void it("delivers a new device's message once its public key arrives", async () => {
    const device = unique('pkhold-device');
    const deviceKey = randomEd25519Key();
    await publishAs(device, deviceKey, 'reading from a new device');
    await until(async () => (await outcome('held')) === 1, 'the message held');
    assert.equal(app.messages.length, 0);
    await command(cmdSetPubKey(ed25519PublicKey(deviceKey), device));
    await app.waitFor(1);
    assert.deepEqual(app.texts(), ['reading from a new device']);
    assert.equal(await outcome('released'), 1);
  });

  void it("drops a message whose sender's public key never arrives, after the hold time", async () => {
    const expiredBefore = await outcome('expired');
    await publishAs(unique('pkhold-stranger'), randomEd25519Key(), 'reading from a stranger');
    await until(
      async () => (await outcome('expired')) === expiredBefore + 1,
      'the message expired',
      HOLD_MS + 5000,
    );
    assert.ok(
      logger.lines.some(
        (l) =>
          l.msg === 'message dropped' &&
          /held 3000 ms, its sender's public key did not arrive/.test(JSON.stringify(l.obj)),
      ),
    );
    assert.deepEqual(app.texts(), ['reading from a new device']);
  });
});
