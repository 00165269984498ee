/**
 * The MQTT command publisher: QoS 1 publishes resolve on the PUBACK from a real broker with the
 * payload intact; a broker that never acknowledges makes them fail with a PUBACK timeout and
 * drops them from the client's store so they are never resent; closing waits for what is in flight, then disconnects.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createServer, type Server, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import mqtt from 'mqtt';
import mqttPacket from 'mqtt-packet';
import {
  isPubackTimeout,
  MqttCommandPublisher,
  PubackTimeoutError,
  wasNotSent,
} from '../../delivery/index.ts';
import { eventually } from '../support/eventually.ts';
import { TEST_MQTT_URL } from '../support/c2-harness.ts';

/**
 * A broker that accepts connections and publishes but never sends a PUBACK (or, with
 * `ackAfterFirst`, sends one for every publish but the first: a lost PUBACK on a live link).
 */
async function silentBroker(
  ackAfterFirst = false,
): Promise<{ server: Server; url: string; published: () => number }> {
  let published = 0;
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    const parser = mqttPacket.parser({ protocolVersion: 4 });
    parser.on('packet', (packet) => {
      if (packet.cmd === 'connect') {
        socket.write(mqttPacket.generate({ cmd: 'connack', returnCode: 0, sessionPresent: false }));
      } else if (packet.cmd === 'publish') {
        published++;
        if (ackAfterFirst && published > 1)
          socket.write(mqttPacket.generate({ cmd: 'puback', messageId: packet.messageId ?? 0 }));
      } else if (packet.cmd === 'pingreq') {
        socket.write(mqttPacket.generate({ cmd: 'pingresp' }));
      } else if (packet.cmd === 'disconnect') {
        socket.end();
      }
    });
    socket.on('data', (chunk: Buffer) => parser.parse(chunk));
  });
  server.on('close', () => {
    for (const s of sockets) s.destroy();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('no port');
  return { server, url: `mqtt://127.0.0.1:${address.port}`, published: () => published };
}

const outgoing = (p: MqttCommandPublisher): number =>
  Object.keys((p as unknown as { client: { outgoing: object } }).client.outgoing).length;

void describe('MqttCommandPublisher', { timeout: 60_000 }, () => {
  void describe('against the broker', () => {
    let publisher: MqttCommandPublisher;
    before(async () => {
      publisher = await MqttCommandPublisher.connect({
        url: TEST_MQTT_URL,
        clientId: `pub-test-${process.pid}-${Date.now()}`,
        pubackTimeoutMs: 5000,
      });
    });
    after(() => publisher.close());

    void it('resolves every publish on its PUBACK, payloads intact', async () => {
      const topic = `e4/pubtest-${randomBytes(6).toString('hex')}`;
      const listener = await mqtt.connectAsync(TEST_MQTT_URL, { reconnectPeriod: 0 });
      const received: string[] = [];
      listener.on('message', (_t, payload) => received.push(Buffer.from(payload).toString('hex')));
      await listener.subscribeAsync(topic, { qos: 1 });
      try {
        // Views into one shared buffer: the publisher must send each view, not the buffer.
        const backing = new Uint8Array(randomBytes(300 * 73));
        const payloads = Array.from({ length: 300 }, (_, i) =>
          backing.subarray(i * 73, (i + 1) * 73),
        );
        await Promise.all(payloads.map((p) => publisher.publish(topic, p)));
        assert.equal(publisher.inFlight, 0);
        await eventually(() => {
          assert.equal(received.length, payloads.length);
        }, 10_000);
        assert.deepEqual(
          [...received].sort(),
          payloads.map((p) => Buffer.from(p).toString('hex')).sort(),
        );
      } finally {
        await listener.endAsync();
      }
    });
  });

  void describe('against a broker that never acknowledges', () => {
    let broker: Awaited<ReturnType<typeof silentBroker>>;
    before(async () => {
      broker = await silentBroker();
    });
    after(
      () =>
        new Promise<void>((resolve) => {
          broker.server.close(() => {
            resolve();
          });
        }),
    );

    void it('fails each publish with a PUBACK timeout and forgets the message', async () => {
      let resets = 0;
      const publisher = await MqttCommandPublisher.connect({
        url: broker.url,
        clientId: `pub-silent-${process.pid}`,
        pubackTimeoutMs: 150,
        onStalledReset: () => {
          resets++;
        },
      });
      try {
        const results = await Promise.allSettled(
          Array.from({ length: 20 }, (_, i) =>
            publisher.publish(`e4/silent${i}`, new Uint8Array([i])),
          ),
        );
        for (const r of results) {
          assert.equal(r.status, 'rejected');
          assert.ok(r.reason instanceof PubackTimeoutError, String(r.reason));
          assert.ok(isPubackTimeout(r.reason));
          assert.match(r.reason.message, /^no PUBACK within 150 ms$/);
        }
        // The fake broker reads its socket on its own schedule: after a stall the timeouts can
        // reject every publish before the broker has counted them.
        await eventually(() => {
          assert.equal(broker.published(), 20);
        }, 10_000);
        assert.equal(publisher.inFlight, 0);
        assert.equal(outgoing(publisher), 0, 'timed-out messages left in the client store');
        // Nothing was ever acknowledged: the connection is reset (its unsent bytes dropped).
        assert.ok(resets >= 1, 'the stalled connection was reset');
        // The publisher connects again and still works after every publish in flight timed out.
        await eventually(() => {
          assert.equal(publisher.connected, true);
        }, 10_000);
        await assert.rejects(
          publisher.publish('e4/again', new Uint8Array([1])),
          PubackTimeoutError,
        );
      } finally {
        await publisher.close();
      }
    });

    void it('counts a reset connection as disconnected at once: a publish fails fast', async () => {
      let reconnects = 0;
      const publisher = await MqttCommandPublisher.connect({
        url: broker.url,
        clientId: `pub-reset-${process.pid}`,
        pubackTimeoutMs: 150,
        onReconnect: () => {
          reconnects++;
        },
      });
      try {
        await assert.rejects(publisher.publish('e4/reset', new Uint8Array([1])), (err) => {
          assert.ok(err instanceof PubackTimeoutError);
          // Its bytes may have reached the broker: an attempt against the cap.
          assert.equal(wasNotSent(err), false);
          return true;
        });
        // Reset on the timeout; mqtt.js has not seen the socket's close event yet.
        assert.equal(publisher.connected, false, 'not connected from the reset on');
        await assert.rejects(publisher.publish('e4/reset', new Uint8Array([2])), (err) => {
          assert.ok(err instanceof Error);
          assert.equal(err.name, 'BrokerUnavailableError'); // a span's label (it was "Error")
          assert.equal(err.message, 'MQTT broker not connected');
          assert.equal(wasNotSent(err), true, 'nothing handed over: no attempt against the cap');
          return true;
        });
        assert.equal(reconnects, 0, 'the first connection is no reconnection');
        await eventually(() => {
          assert.equal(publisher.connected, true, 'connected again');
          assert.equal(reconnects, 1, 'told of the reconnection');
        }, 10_000);
      } finally {
        await publisher.close();
      }
    });

    void it('keeps the connection when only a PUBACK was lost (a later publish was acknowledged)', async () => {
      const lossy = await silentBroker(true);
      let resets = 0;
      const publisher = await MqttCommandPublisher.connect({
        url: lossy.url,
        clientId: `pub-lossy-${process.pid}`,
        pubackTimeoutMs: 300,
        onStalledReset: () => {
          resets++;
        },
      });
      try {
        const lost = publisher.publish('e4/lost', new Uint8Array([1]));
        lost.catch(() => undefined);
        await publisher.publish('e4/acked', new Uint8Array([2]));
        await assert.rejects(lost, PubackTimeoutError);
        assert.equal(resets, 0, 'its bytes reached the broker: nothing to drop');
        assert.equal(publisher.connected, true);
      } finally {
        await publisher.close();
        await new Promise<void>((resolve) => {
          lossy.server.close(() => {
            resolve();
          });
        });
      }
    });

    void it('closes once what is in flight has settled, and refuses publishes afterwards', async () => {
      const publisher = await MqttCommandPublisher.connect({
        url: broker.url,
        clientId: `pub-close-${process.pid}`,
        pubackTimeoutMs: 200,
      });
      const inFlight = publisher.publish('e4/closing', new Uint8Array([1]));
      inFlight.catch(() => undefined);
      assert.equal(publisher.inFlight, 1);
      const closing = publisher.close();
      await assert.rejects(publisher.publish('e4/closed', new Uint8Array([2])), /closed/);
      await assert.rejects(inFlight, PubackTimeoutError);
      await closing;
      assert.equal(publisher.inFlight, 0);
      assert.equal(publisher.connected, false);
    });
  });
});
