/**
 * Malformed packets, oversized payloads, protocol violations and unknown topics on the downstream
 * side (with an in-memory upstream): the offending connection is closed or the message dropped,
 * counted, and the listener keeps serving. A fast-check fuzz test drives the packet path with
 * random valid packets, random bytes and mutations of both.
 */
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import mqtt from 'mqtt';
import mqttPacket, { type Packet } from 'mqtt-packet';
import { randomSymKey } from '../../e4/index.ts';
import { localAuthenticator } from '../downstream/authenticate.ts';
import { DEFAULT_TIMING } from '../downstream/deps.ts';
import { DownstreamListener } from '../downstream/listener.ts';
import { KeyRing } from '../key-ring.ts';
import { silentLogger } from '../logger.ts';
import { ProxyMetrics } from '../metrics.ts';
import { DEFAULT_ROTATION_HOLD, RotationHold } from '../rotation-hold.ts';
import { TopicPolicy } from '../policy.ts';
import { FakeUpstream } from './fake-upstream.ts';
import { tempDir } from './support.ts';

const MAX_PAYLOAD = 1024;

/** Writes `chunks` on a fresh connection; resolves when the proxy closed it or after `idleMs`. */
function exchange(
  port: number,
  chunks: readonly Buffer[],
  idleMs = 40,
): Promise<{ closed: boolean; received: Buffer }> {
  return new Promise((resolve) => {
    const socket: Socket = connect(port, '127.0.0.1');
    const received: Buffer[] = [];
    let done = false;
    const finish = (closed: boolean): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      resolve({ closed, received: Buffer.concat(received) });
    };
    const timer = setTimeout(() => {
      finish(false);
    }, idleMs + 200);
    socket.on('data', (d: Buffer) => received.push(d));
    socket.on('error', () => {
      finish(true);
    });
    socket.on('close', () => {
      finish(true);
    });
    socket.on('connect', () => {
      for (const c of chunks) socket.write(c);
    });
  });
}

const gen = (packet: Packet, protocolVersion = 4): Buffer =>
  mqttPacket.generate(packet, { protocolVersion });
const CONNECT = gen({
  cmd: 'connect',
  clientId: 'fuzz',
  protocolVersion: 4,
  clean: true,
  keepalive: 30,
});

void describe('bad input on the downstream side', () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let listener: DownstreamListener;
  let upstream: FakeUpstream;
  let metrics: ProxyMetrics;

  before(async () => {
    dir = await tempDir();
    const ring = await KeyRing.open(join(dir.path, 'state'), randomSymKey(), [
      { name: 'fuzz-app', topics: [], initialKeyHex: undefined },
    ]);
    const identity = ring.get('fuzz-app');
    assert.ok(identity);
    metrics = new ProxyMetrics();
    upstream = new FakeUpstream();
    listener = await DownstreamListener.start('127.0.0.1', 0, undefined, {
      authenticate: localAuthenticator(identity),
      policy: new TopicPolicy(['secure/#'], 'drop'),
      metrics,
      logger: silentLogger,
      upstream,
      limits: {
        ...DEFAULT_TIMING,
        connectTimeoutMs: 2000,
        maxPayloadBytes: MAX_PAYLOAD,
        maxPacketBytes: MAX_PAYLOAD + 2048,
      },
      clientIdPrefix: '',
      controlClientId: 'e4proxy-control',
      now: Date.now,
      hold: new RotationHold(DEFAULT_ROTATION_HOLD, new ProxyMetrics()),
    });
  });

  after(async () => {
    await listener.close();
    await dir.cleanup();
  });

  async function stillServes(): Promise<void> {
    const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${listener.address.port}`, {
      clientId: `good-${upstream.sessions.length}`,
      reconnectPeriod: 0,
    });
    const marker = `alive-${Date.now()}-${Math.random()}`;
    await client.publishAsync('open/ping', 'x', { qos: 0 });
    await client.publishAsync('secure/no-key', marker, { qos: 1 });
    await client.endAsync();
    // Unknown topic dropped, protected topic without a key dropped: nothing went upstream.
    assert.ok(
      upstream.sessions.every((s) => !s.published.some((p) => p.payload.toString() === marker)),
    );
  }

  void it('closes a connection whose first packet is not CONNECT, or is garbage', async () => {
    const before = await metrics.total(metrics.rejected);
    assert.equal((await exchange(listener.address.port, [gen({ cmd: 'pingreq' })])).closed, true);
    assert.equal(
      (await exchange(listener.address.port, [Buffer.from([0xff, 0xff, 0xff])])).closed,
      true,
    );
    assert.equal(
      (await exchange(listener.address.port, [Buffer.from('GET / HTTP/1.1\r\n\r\n')])).closed,
      true,
    );
    assert.ok((await metrics.total(metrics.rejected)) >= before + 3);
    await stillServes();
  });

  void it('refuses MQTT 3.1 and a second CONNECT', async () => {
    const v3 = await exchange(listener.address.port, [
      gen({
        cmd: 'connect',
        clientId: 'old',
        protocolVersion: 3,
        protocolId: 'MQIsdp',
        clean: true,
        keepalive: 10,
      }),
    ]);
    assert.equal(v3.closed, true);
    assert.equal(v3.received[3], 1, 'CONNACK: unacceptable protocol version');
    assert.equal((await exchange(listener.address.port, [CONNECT, CONNECT])).closed, true);
  });

  void it('answers a CONNECT of an unknown protocol level with CONNACK 0x01, then closes', async () => {
    // MQTT 3.1.1 §3.1.2.2; the level byte follows the protocol name "MQTT".
    const level6 = Buffer.from(CONNECT);
    assert.equal(level6.subarray(4, 8).toString(), 'MQTT');
    level6[8] = 6;
    const before = await metrics.total(metrics.rejected, { reason: 'unsupported-version' });
    const malformed = await metrics.total(metrics.rejected, { reason: 'malformed' });
    const r = await exchange(listener.address.port, [level6]);
    assert.equal(r.closed, true);
    assert.deepEqual([...r.received], [0x20, 0x02, 0x00, 0x01], 'CONNACK 0x01');
    assert.equal(
      await metrics.total(metrics.rejected, { reason: 'unsupported-version' }),
      before + 1,
    );
    assert.equal(await metrics.total(metrics.rejected, { reason: 'malformed' }), malformed);
    await stillServes();
  });

  void it('tells an MQTT 5 client why it is closed: a DISCONNECT with the reason code', async () => {
    const connect5 = gen(
      { cmd: 'connect', clientId: 'v5-why', protocolVersion: 5, clean: true, keepalive: 30 },
      5,
    );
    /** The packets the proxy answered `chunks` (after a v5 CONNECT) with, by command. */
    const answers = async (...chunks: Buffer[]): Promise<Packet[]> => {
      const r = await exchange(listener.address.port, [connect5, ...chunks], 200);
      assert.equal(r.closed, true);
      const parser = mqttPacket.parser({ protocolVersion: 5 });
      const packets: Packet[] = [];
      parser.on('packet', (p: Packet) => packets.push(p));
      parser.parse(r.received);
      return packets;
    };
    const disconnectCode = (packets: Packet[]): number | undefined => {
      assert.equal(packets[0]?.cmd, 'connack', 'after its CONNACK');
      const last = packets.at(-1);
      return last?.cmd === 'disconnect' ? last.reasonCode : undefined;
    };
    const publish = (topic: string, topicAlias?: number): Buffer =>
      gen(
        {
          cmd: 'publish',
          topic,
          payload: Buffer.from('p'),
          qos: 0,
          retain: false,
          dup: false,
          ...(topicAlias === undefined ? {} : { properties: { topicAlias } }),
        },
        5,
      );
    assert.equal(disconnectCode(await answers(connect5)), 0x82, 'a second CONNECT: protocol error');
    assert.equal(disconnectCode(await answers(publish('open/a', 1))), 0x94, 'topic alias invalid');
    assert.equal(disconnectCode(await answers(publish('open/+'))), 0x90, 'topic name invalid');
    // Never before the CONNACK (§3.14.0-1): a first packet that is not CONNECT is just closed.
    const early = await exchange(listener.address.port, [gen({ cmd: 'pingreq' }, 5)]);
    assert.deepEqual([...early.received], []);
    await stillServes();
  });

  void it('closes on a packet declaring more than the limit, before reading it', async () => {
    const header = Buffer.from([0x30, 0xff, 0xff, 0xff, 0x7f]); // PUBLISH of 256 MiB declared
    const r = await exchange(listener.address.port, [CONNECT, header]);
    assert.equal(r.closed, true);
    assert.ok((await metrics.total(metrics.rejected, { reason: 'packet-too-large' })) >= 1);
  });

  void it('closes on a topic or client id that is not UTF-8; a U+FFFD written in UTF-8 passes', async () => {
    /** `packet` encoded, with the ASCII `marker` in it replaced by the bytes `with`. */
    const withBytes = (packet: Packet, marker: string, bytes: readonly number[]): Buffer => {
      const encoded = gen(packet);
      const at = encoded.indexOf(marker);
      assert.ok(at > 0 && marker.length === bytes.length, 'marker in the packet');
      Buffer.from(bytes).copy(encoded, at);
      return encoded;
    };
    const publish = (topic: string): Packet => ({
      cmd: 'publish',
      topic,
      payload: Buffer.from('p'),
      qos: 1,
      retain: false,
      dup: false,
      messageId: 5,
    });
    const rejected = (): Promise<number> =>
      metrics.total(metrics.rejected, { reason: 'malformed' });
    const before = await rejected();
    const sessionsBefore = upstream.sessions.length;

    const badTopic = withBytes(publish('open/ZZ'), 'ZZ', [0xff, 0xfe]);
    const r = await exchange(listener.address.port, [CONNECT, badTopic], 200);
    assert.equal(r.closed, true, 'PUBLISH to an ill-formed topic closes the connection');
    const badClientId = withBytes(
      { cmd: 'connect', clientId: 'idZZ', protocolVersion: 4, clean: true, keepalive: 30 },
      'ZZ',
      [0xc3, 0x28],
    );
    const c = await exchange(listener.address.port, [badClientId], 200);
    assert.equal(c.closed, true, 'CONNECT with an ill-formed client id closes the connection');
    assert.equal(await rejected(), before + 2);
    const ids = upstream.sessions.slice(sessionsBefore).map((s) => s.options.clientId);
    assert.ok(!ids.some((id) => id.includes('\uFFFD')), `no session for the bad id: ${ids.join()}`);

    // The character U+FFFD itself, well-formed, is an ordinary topic character.
    const ok = await exchange(listener.address.port, [CONNECT, gen(publish('open/\uFFFD'))], 200);
    assert.equal(ok.closed, false, 'a well-formed U+FFFD keeps the connection');
    assert.equal(await rejected(), before + 2);
  });

  void it('drops an oversized payload, a PUBLISH to an unknown topic, and keeps the connection', async () => {
    const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${listener.address.port}`, {
      clientId: 'sizes',
      reconnectPeriod: 0,
    });
    await client.publishAsync('secure/x', Buffer.alloc(MAX_PAYLOAD + 1), { qos: 1 });
    await client.publishAsync('elsewhere/x', 'y', { qos: 1 });
    assert.equal(client.connected, true);
    await client.endAsync();
    assert.ok((await metrics.total(metrics.dropped, { reason: 'oversized' })) >= 1);
    assert.ok((await metrics.total(metrics.dropped, { reason: 'unknown-topic' })) >= 1);
  });

  void it('never crashes on random packets, random bytes and mutations (fast-check)', async () => {
    const qos = fc.constantFrom(0 as const, 1 as const, 2 as const);
    const topic = fc.oneof(
      fc.constantFrom('secure/a', 'open/b', 'e4/' + '0'.repeat(32), '#', 'a/+/b'),
      fc.string({ maxLength: 20 }),
    );
    const packet: fc.Arbitrary<Packet> = fc.oneof(
      fc.record({
        cmd: fc.constant('publish' as const),
        topic,
        payload: fc.uint8Array({ maxLength: 1500 }).map((b) => Buffer.from(b)),
        qos,
        retain: fc.boolean(),
        dup: fc.boolean(),
        messageId: fc.integer({ min: 1, max: 65535 }),
      }),
      fc.record({
        cmd: fc.constant('subscribe' as const),
        messageId: fc.integer({ min: 1, max: 65535 }),
        subscriptions: fc.array(fc.record({ topic, qos }), { minLength: 1, maxLength: 3 }),
      }),
      fc.record({
        cmd: fc.constant('unsubscribe' as const),
        messageId: fc.integer({ min: 1, max: 65535 }),
        unsubscriptions: fc.array(topic, { minLength: 1, maxLength: 3 }),
      }),
      fc.constantFrom<Packet>(
        { cmd: 'pingreq' },
        { cmd: 'disconnect' },
        { cmd: 'puback', messageId: 7 },
        { cmd: 'pubrel', messageId: 9 },
        { cmd: 'pubrec', messageId: 3 },
      ),
    );
    const encoded = packet.map((p) => {
      try {
        return gen(p);
      } catch {
        return Buffer.from([0xe0, 0x00]); // an unencodable packet: send a DISCONNECT instead
      }
    });
    const chunk = fc.oneof(
      encoded,
      fc.uint8Array({ minLength: 1, maxLength: 64 }).map((b) => Buffer.from(b)),
      fc.tuple(encoded, fc.nat(), fc.integer({ min: 0, max: 255 })).map(([b, at, byte]) => {
        const copy = Buffer.from(b);
        copy[at % copy.length] = byte;
        return copy;
      }),
    );
    await fc.assert(
      fc.asyncProperty(
        fc.boolean(),
        fc.array(chunk, { maxLength: 8 }),
        async (withConnect, chunks) => {
          await exchange(listener.address.port, withConnect ? [CONNECT, ...chunks] : chunks, 10);
        },
      ),
      { numRuns: 80 },
    );
    await stillServes();
    // Every connection the fuzzer opened has been closed by one side or the other.
    const deadline = Date.now() + 5000;
    while (listener.connections > 0 && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 20));
    assert.equal(listener.connections, 0);
  });
});
