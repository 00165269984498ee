/**
 * The control channel on the real Mosquitto, reached through a relay that can cut the
 * connection as it carries a SUBSCRIBE: a session the broker lost must get its subscriptions back
 * even when the connection carrying the first re-subscribe dies. Mosquitto then keeps the new,
 * empty session (the control client connects with clean: false), so the next connection finds a
 * session "present" that holds no subscription of ours.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import {
  createConnection,
  createServer,
  type AddressInfo,
  type Server,
  type Socket,
} from 'node:net';
import { after, before, describe, it } from 'node:test';
import mqtt from 'mqtt';
import mqttPacket from 'mqtt-packet';
import { randomSymKey, toHex, topicHash } from '../../e4/index.ts';
import { ControlChannel } from '../control-channel.ts';
import { KeyRing } from '../key-ring.ts';
import { ProxyMetrics } from '../metrics.ts';
import { startStickyBroker } from './sticky-broker.ts';
import { BROKER_URL, recordingLogger, sendTopicKey, tempDir, unique, until } from './support.ts';

/** A TCP relay to the broker that cuts a connection carrying a SUBSCRIBE while armed. */
class SubscribeCutter {
  /** SUBSCRIBE-carrying connections still to cut. */
  cutsLeft = 0;
  readonly #sockets = new Set<Socket>();
  private constructor(readonly server: Server) {}

  static async start(broker: URL): Promise<SubscribeCutter> {
    const server = createServer();
    const relay = new SubscribeCutter(server);
    server.on('connection', (client) => {
      relay.#relay(client, broker);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return relay;
  }

  get url(): string {
    return `mqtt://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  #relay(client: Socket, broker: URL): void {
    const upstream = createConnection(Number(broker.port || 1883), broker.hostname);
    for (const s of [client, upstream]) {
      this.#sockets.add(s);
      s.once('close', () => {
        this.#sockets.delete(s);
        client.destroy();
        upstream.destroy();
      });
      s.on('error', () => undefined);
    }
    upstream.pipe(client);
    const parser = mqttPacket.parser({ protocolVersion: 4 });
    let subscribing = false;
    parser.on('packet', (packet) => {
      if (packet.cmd === 'subscribe') subscribing = true;
    });
    client.on('data', (chunk: Buffer) => {
      parser.parse(chunk);
      if (subscribing && this.cutsLeft > 0) {
        this.cutsLeft--;
        client.destroy();
        return;
      }
      subscribing = false;
      upstream.write(chunk);
    });
  }

  async close(): Promise<void> {
    for (const s of this.#sockets) s.destroy();
    await new Promise<void>((resolve) =>
      this.server.close(() => {
        resolve();
      }),
    );
  }
}

void describe('control channel (real Mosquitto)', () => {
  const name = unique('control-app');
  const identityKey = randomSymKey();
  const controlClientId = unique('e4proxy-control');
  let relay: SubscribeCutter;
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let ring: KeyRing;
  let channel: ControlChannel | undefined;

  before(async () => {
    relay = await SubscribeCutter.start(new URL(BROKER_URL));
    dir = await tempDir();
    ring = await KeyRing.open(dir.path, new Uint8Array(randomBytes(32)), [
      { name, topics: [], initialKeyHex: toHex(identityKey) },
    ]);
  });

  after(async () => {
    await channel?.close();
    await relay.close();
    // The session the test left at the broker.
    const cleaner = await mqtt.connectAsync(BROKER_URL, { clientId: controlClientId, clean: true });
    await cleaner.endAsync();
    await dir.cleanup();
  });

  function holds(topic: string): boolean {
    return ring.get(name)?.client.state.topicKeys.has(toHex(topicHash(topic))) === true;
  }

  void it('subscribes again after a lost session whose first re-subscribe failed', async () => {
    let freshSessions = 0;
    channel = await ControlChannel.start({
      broker: { url: relay.url },
      clientId: controlClientId,
      ring,
      metrics: new ProxyMetrics(),
      logger: recordingLogger(),
      onFreshSession: () => {
        freshSessions++;
      },
    });
    const base = unique('control');
    await sendTopicKey(name, identityKey, `${base}/before`, randomSymKey());
    await until(() => holds(`${base}/before`), 'the command before the loss');

    // The broker loses the session (a clean session takes the client id over and ends), and the
    // connection carrying the first re-subscribe dies before it reaches the broker.
    relay.cutsLeft = 1;
    const usurper = await mqtt.connectAsync(BROKER_URL, { clientId: controlClientId, clean: true });
    await usurper.endAsync();
    await until(() => relay.cutsLeft === 0, 'the cut re-subscribe');
    await until(() => freshSessions === 1, 'the fresh session reported', 15_000);
    await sendTopicKey(name, identityKey, `${base}/after`, randomSymKey());
    await until(() => holds(`${base}/after`), 'the command after the loss');
    assert.equal(freshSessions, 1);
    assert.equal(channel.freshSession, true);
  });

  void it('stops even when the broker never closes the connection after DISCONNECT', async () => {
    const broker = await startStickyBroker();
    try {
      const sticky = await ControlChannel.start({
        broker: { url: broker.url },
        clientId: unique('e4proxy-sticky'),
        ring,
        metrics: new ProxyMetrics(),
        logger: recordingLogger(),
      });
      let closed = false;
      void sticky.close().then(() => {
        closed = true;
      });
      await until(() => broker.disconnects === 1, 'the DISCONNECT');
      // Bounded: without the cut, the close waits for the broker for ever.
      await until(() => closed, 'the close', 30_000);
      assert.equal(sticky.connected, false);
    } finally {
      await broker.close();
    }
  });
});
