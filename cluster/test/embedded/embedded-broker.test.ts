// The embedded MQTT broker, exercised with the same `mqtt` client the C2 uses: QoS 1 publishes are
// acknowledged (PUBACK) and delivered, a taken port falls back or fails clearly, close() frees it.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect as connectTcp } from 'node:net';
import { after, describe, it } from 'node:test';
import { connectAsync, type IPublishPacket, type MqttClient, type Packet } from 'mqtt';
import { C2Error } from '../../errors.ts';
import { isPortFree, startEmbeddedBroker, type RunningBroker } from '../../embedded/index.ts';
import { closeServer, holdPort, recordingLogger } from './support.ts';

void describe('startEmbeddedBroker', () => {
  const brokers: RunningBroker[] = [];
  const clients: MqttClient[] = [];
  after(async () => {
    for (const client of clients) await client.endAsync(true);
    for (const broker of brokers) await broker.close();
  });

  async function start(port: number, onPortTaken?: 'fail'): Promise<RunningBroker> {
    const broker = await startEmbeddedBroker({
      host: '127.0.0.1',
      port,
      log: recordingLogger().log,
      ...(onPortTaken === undefined ? {} : { onPortTaken }),
    });
    brokers.push(broker);
    return broker;
  }

  async function client(url: string, clientId: string): Promise<MqttClient> {
    const c = await connectAsync(url, { clientId, reconnectPeriod: 0, connectTimeout: 5_000 });
    clients.push(c);
    return c;
  }

  void it('acknowledges QoS 1 publishes with PUBACK and delivers them to subscribers', async () => {
    const broker = await start(0);
    assert.equal(broker.url, `mqtt://127.0.0.1:${broker.port}`);
    assert.equal(broker.fallbackFrom, undefined);

    const subscriber = await client(broker.url, 'sub-1');
    const grants = await subscriber.subscribeAsync('e4/test/#', { qos: 1 });
    assert.deepEqual(
      grants.map((g) => g.qos),
      [1],
    );
    const received = new Promise<[string, Buffer, IPublishPacket]>((resolve) => {
      subscriber.once('message', (topic, payload, packet) => {
        resolve([topic, payload, packet]);
      });
    });

    const publisher = await client(broker.url, 'pub-1');
    const acks: Packet[] = [];
    publisher.on('packetreceive', (packet) => {
      if (packet.cmd === 'puback') acks.push(packet);
    });
    await publisher.publishAsync('e4/test/a', Buffer.from([1, 2, 3]), { qos: 1 });
    assert.equal(acks.length, 1, 'one PUBACK for one QoS 1 publish');

    const [topic, payload, packet] = await received;
    assert.equal(topic, 'e4/test/a');
    assert.deepEqual([...payload], [1, 2, 3]);
    assert.equal(packet.qos, 1);
  });

  void it('falls back from a taken port and says so, or fails clearly when told to', async () => {
    const held = await holdPort();
    try {
      const broker = await start(held.port);
      assert.equal(broker.fallbackFrom, held.port);
      assert.notEqual(broker.port, held.port);
      assert.equal(broker.url, `mqtt://127.0.0.1:${broker.port}`);
      const c = await client(broker.url, 'fallback-1');
      assert.ok(c.connected);

      await assert.rejects(start(held.port, 'fail'), (err: unknown) => {
        assert.ok(C2Error.is(err, 'C2_CONFIG'));
        assert.equal(
          err.message,
          `embedded MQTT broker: port ${held.port} on 127.0.0.1 is already in use (choose ` +
            `another port, or stop what listens there)`,
        );
        return true;
      });
    } finally {
      await closeServer(held.server);
    }
  });

  void it('close() disconnects clients, ends silent connections and frees the port; twice is fine', async () => {
    const broker = await start(0);
    const c = await client(broker.url, 'closing-1');
    const closed = new Promise<void>((resolve) =>
      c.once('close', () => {
        resolve();
      }),
    );
    // A connection that never sends CONNECT must not hold close() up.
    const silent = connectTcp({ host: '127.0.0.1', port: broker.port });
    await once(silent, 'connect');
    const silentClosed = once(silent, 'close');

    await Promise.all([broker.close(), broker.close()]);
    await closed;
    await silentClosed;
    assert.equal(await isPortFree('127.0.0.1', broker.port), true);
    await broker.close();
  });
});
