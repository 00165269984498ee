/**
 * Downstream sessions with an in-memory upstream: a persistent session's queued messages, which
 * the broker sends right after its CONNACK (before the proxy answered the client), are delivered
 * in order and acknowledged only once the client has them; a client cannot take the proxy's
 * control session; and a broker's refusal of the client's protocol version reaches the client.
 */
import assert from 'node:assert/strict';
import { createServer, type AddressInfo, type Socket } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import mqtt, { type MqttClient } from 'mqtt';
import { randomSymKey } from '../../e4/index.ts';
import { localAuthenticator } from '../downstream/authenticate.ts';
import { DEFAULT_TIMING } from '../downstream/deps.ts';
import { DownstreamListener } from '../downstream/listener.ts';
import { KeyRing } from '../key-ring.ts';
import { silentLogger } from '../logger.ts';
import { ProxyMetrics } from '../metrics.ts';
import { DEFAULT_ROTATION_HOLD, RotationHold } from '../rotation-hold.ts';
import { TopicPolicy } from '../policy.ts';
import { MqttUpstreamConnector, type InboundMessage } from '../upstream.ts';
import { FakeUpstream } from './fake-upstream.ts';
import { connectRecording, tempDir, type RecordingClient } from './support.ts';

const CONTROL_ID = 'app/e4proxy-local-session-app';

async function until(check: () => boolean, what: string, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

function message(text: string, qos: 0 | 1 | 2 = 1): InboundMessage {
  return { topic: 'open/queued', payload: Buffer.from(text), qos, retain: false };
}

void describe('downstream sessions', () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let listener: DownstreamListener;
  let metrics: ProxyMetrics;
  const upstream = new FakeUpstream();
  const clients: MqttClient[] = [];

  before(async () => {
    dir = await tempDir();
    const ring = await KeyRing.open(join(dir.path, 'state'), randomSymKey(), [
      { name: 'session-app', topics: [], initialKeyHex: undefined },
    ]);
    const identity = ring.get('session-app');
    assert.ok(identity);
    metrics = new ProxyMetrics();
    listener = await DownstreamListener.start('127.0.0.1', 0, undefined, {
      authenticate: localAuthenticator(identity),
      policy: new TopicPolicy(['secure/#'], 'forward'),
      metrics,
      logger: silentLogger,
      upstream,
      limits: { ...DEFAULT_TIMING, maxPayloadBytes: 1024, maxPacketBytes: 4096 },
      clientIdPrefix: 'app/',
      controlClientId: CONTROL_ID,
      now: Date.now,
      hold: new RotationHold(DEFAULT_ROTATION_HOLD, new ProxyMetrics()),
    });
  });

  after(async () => {
    for (const c of clients) await c.endAsync(true).catch(() => undefined);
    await listener.close();
    await dir.cleanup();
  });

  /** Connects through the listener and records messages from the first packet on. */
  function connect(options: mqtt.IClientOptions): Promise<RecordingClient> {
    return connectRecording(`mqtt://127.0.0.1:${listener.address.port}`, options, clients);
  }

  void it('delivers the queued messages of a resumed session, in order, then live ones', async () => {
    const queued = [message('queued 1'), message('queued 2', 0), message('queued 3', 2)];
    upstream.queued = [...queued];
    const { texts, sessionPresent } = await connect({
      clientId: 'resumer',
      clean: false,
      protocolVersion: 4,
    });
    assert.equal(sessionPresent, true);
    const session = upstream.sessions.at(-1);
    assert.ok(session);
    await until(() => texts.length === 3, 'the queued messages');
    assert.deepEqual(texts, ['queued 1', 'queued 2', 'queued 3']);
    // Each one acknowledged upstream once the client had it, none lost.
    await until(() => session.acknowledged.length === 3, 'the upstream acknowledgements');
    assert.deepEqual(session.acknowledged, queued);
    // The session goes on.
    await session.deliver(message('live'));
    assert.deepEqual(texts, ['queued 1', 'queued 2', 'queued 3', 'live']);
  });

  void it('refuses a client that would take the control session, on 3.1.1 and 5', async () => {
    const url = `mqtt://127.0.0.1:${listener.address.port}`;
    const sessions = upstream.sessions.length;
    const refusedBefore = await metrics.total(metrics.rejected, { reason: 'auth' });
    await assert.rejects(
      mqtt.connectAsync(url, {
        clientId: 'e4proxy-local-session-app',
        clean: false,
        reconnectPeriod: 0,
      }),
      /Identifier rejected/,
    );
    await assert.rejects(
      mqtt.connectAsync(url, {
        clientId: 'e4proxy-local-session-app',
        protocolVersion: 5,
        reconnectPeriod: 0,
      }),
      /Client Identifier not valid/,
    );
    assert.equal(upstream.sessions.length, sessions, 'no upstream session opened');
    assert.equal(await metrics.total(metrics.rejected, { reason: 'auth' }), refusedBefore + 2);
    // Any other client id is fine.
    const { client } = await connect({ clientId: 'e4proxy-local-session-app2' });
    assert.equal(client.connected, true);
    assert.equal(upstream.sessions.at(-1)?.options.clientId, 'app/e4proxy-local-session-app2');
  });
});

void describe('a broker that refuses the client', () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let listener: DownstreamListener;
  const sockets: Socket[] = [];
  /** The return code of the broker's CONNACK (3.1.1 format, as a 3.1.1-only broker sends). */
  let returnCode = 1;
  const broker = createServer((socket) => {
    sockets.push(socket);
    socket.once('data', () => {
      socket.end(Buffer.from([0x20, 0x02, 0x00, returnCode]));
    });
  });

  before(async () => {
    dir = await tempDir();
    const ring = await KeyRing.open(join(dir.path, 'state'), randomSymKey(), [
      { name: 'refused-app', topics: [], initialKeyHex: undefined },
    ]);
    const identity = ring.get('refused-app');
    assert.ok(identity);
    await new Promise<void>((resolve) => broker.listen(0, '127.0.0.1', resolve));
    const { port } = broker.address() as AddressInfo;
    listener = await DownstreamListener.start('127.0.0.1', 0, undefined, {
      authenticate: localAuthenticator(identity),
      policy: new TopicPolicy(['secure/#'], 'forward'),
      metrics: new ProxyMetrics(),
      logger: silentLogger,
      upstream: new MqttUpstreamConnector({ url: `mqtt://127.0.0.1:${port}` }),
      limits: { ...DEFAULT_TIMING, maxPayloadBytes: 1024, maxPacketBytes: 4096 },
      clientIdPrefix: '',
      controlClientId: CONTROL_ID,
      now: Date.now,
      hold: new RotationHold(DEFAULT_ROTATION_HOLD, new ProxyMetrics()),
    });
  });

  after(async () => {
    await listener.close();
    for (const socket of sockets) socket.destroy();
    await new Promise((resolve) => broker.close(resolve));
    await dir.cleanup();
  });

  /** The CONNACK code a client of `protocolVersion` gets. */
  async function refusal(protocolVersion: 4 | 5): Promise<unknown> {
    const url = `mqtt://127.0.0.1:${listener.address.port}`;
    let code: unknown;
    await assert.rejects(
      mqtt.connectAsync(url, { clientId: 'refused', protocolVersion, reconnectPeriod: 0 }),
      (err: { code?: unknown }) => {
        code = err.code;
        return true;
      },
    );
    return code;
  }

  void it('tells a client the broker refused its protocol version (MQTT 5: 0x84, not 0x88)', async () => {
    returnCode = 1;
    assert.equal(await refusal(5), 0x84, 'unsupported protocol version');
    assert.equal(await refusal(4), 1, 'unacceptable protocol version');
    // Any other refusal is the proxy's problem: the server is unavailable.
    returnCode = 5;
    assert.equal(await refusal(5), 0x88, 'server unavailable');
    assert.equal(await refusal(4), 3, 'server unavailable');
  });
});
