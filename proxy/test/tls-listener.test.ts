/**
 * The TLS downstream listener and clients that never finish the handshake (a TCP connect and
 * silence, a device that lost power mid-handshake): they are cut as a plain client that sends no
 * CONNECT is, and they do not hold up the listener's close (a stop of the proxy).
 */
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { connect as tcpConnect, type Socket } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { connect as tlsConnect } from 'node:tls';
import { randomSymKey } from '../../e4/index.ts';
import { localAuthenticator } from '../downstream/authenticate.ts';
import { DEFAULT_TIMING } from '../downstream/deps.ts';
import { DownstreamListener } from '../downstream/listener.ts';
import { KeyRing } from '../key-ring.ts';
import { ProxyMetrics } from '../metrics.ts';
import { DEFAULT_ROTATION_HOLD, RotationHold } from '../rotation-hold.ts';
import { TopicPolicy } from '../policy.ts';
import { FakeUpstream } from './fake-upstream.ts';
import { recordingLogger, selfSignedCert, tempDir } from './support.ts';

/** A TCP connection that says nothing, open once the kernel accepted it. */
async function silentClient(port: number): Promise<Socket> {
  const socket = tcpConnect(port, '127.0.0.1');
  socket.on('error', () => undefined);
  await new Promise<void>((resolve) => socket.once('connect', resolve));
  return socket;
}

function closedPromise(socket: Socket): Promise<void> {
  return new Promise((resolve) => {
    if (socket.destroyed) resolve();
    else
      socket.once('close', () => {
        resolve();
      });
  });
}

void describe('TLS listener: clients that never finish the handshake', () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let ring: KeyRing;
  let tls: { certFile: string; keyFile: string; caFile: undefined; requireClientCert: false };

  async function listen(connectTimeoutMs: number): Promise<{
    listener: DownstreamListener;
    metrics: ProxyMetrics;
    logger: ReturnType<typeof recordingLogger>;
  }> {
    const metrics = new ProxyMetrics();
    const logger = recordingLogger();
    const only = ring.all()[0];
    assert.ok(only);
    const listener = await DownstreamListener.start('127.0.0.1', 0, tls, {
      authenticate: localAuthenticator(only),
      policy: new TopicPolicy(['secure/#'], 'forward'),
      metrics,
      logger,
      upstream: new FakeUpstream(),
      limits: { ...DEFAULT_TIMING, connectTimeoutMs, maxPayloadBytes: 1024, maxPacketBytes: 4096 },
      clientIdPrefix: '',
      controlClientId: 'e4proxy-control',
      now: Date.now,
      hold: new RotationHold(DEFAULT_ROTATION_HOLD, new ProxyMetrics()),
    });
    return { listener, metrics, logger };
  }

  before(async () => {
    dir = await tempDir();
    ring = await KeyRing.open(join(dir.path, 'state'), randomSymKey(), [
      { name: 'app', topics: [], initialKeyHex: undefined },
    ]);
    const cert = await selfSignedCert();
    tls = {
      certFile: join(dir.path, 'server.crt'),
      keyFile: join(dir.path, 'server.key'),
      caFile: undefined,
      requireClientCert: false,
    };
    await writeFile(tls.certFile, cert.cert);
    await writeFile(tls.keyFile, cert.key);
  });

  after(async () => {
    await dir.cleanup();
  });

  // Node's own handshake timeout is 120 s, and it does not close the socket after it: the test's
  // timeout fails the test without the listener's handling.
  void it(
    'cuts a client that sends nothing after the connect timeout, counted as timeout',
    {
      timeout: 20_000,
    },
    async () => {
      const { listener, metrics, logger } = await listen(300);
      try {
        const silent = await silentClient(listener.address.port);
        const silentPort = silent.localPort;
        await closedPromise(silent);
        assert.equal(await metrics.total(metrics.rejected, { reason: 'timeout' }), 1);
        assert.equal(await metrics.total(metrics.rejected, { reason: 'auth' }), 0);
        const line = logger.lines.find((l) => l.msg === 'downstream TLS handshake failed');
        assert.ok(line, 'the failed handshake is logged');
        assert.equal(
          (line.obj as { remote: string }).remote,
          `127.0.0.1:${String(silentPort)}`,
          'with the peer that failed',
        );
      } finally {
        await listener.close();
      }
    },
  );

  void it('closes with a client in the handshake, cutting it', { timeout: 20_000 }, async () => {
    const { listener } = await listen(60_000);
    const port = listener.address.port;
    const silent = await silentClient(port);
    // A full handshake after it: once it is done, the listener has accepted the silent one too.
    const done = tlsConnect({ port, host: '127.0.0.1', rejectUnauthorized: false });
    done.on('error', () => undefined);
    await new Promise<void>((resolve) => done.once('secureConnect', resolve));
    await listener.close();
    await closedPromise(silent);
    done.destroy();
  });

  void it('says so when a client speaks plain MQTT to it', { timeout: 20_000 }, async () => {
    const { listener, metrics, logger } = await listen(60_000);
    try {
      const plain = await silentClient(listener.address.port);
      // The start of an MQTT 3.1.1 CONNECT.
      plain.write(Buffer.from([0x10, 0x0c, 0x00, 0x04, 0x4d, 0x51, 0x54, 0x54, 0x04, 0x02]));
      await closedPromise(plain);
      assert.equal(await metrics.total(metrics.rejected, { reason: 'auth' }), 1);
      const line = logger.lines.find((l) => l.msg === 'downstream TLS handshake failed');
      assert.match(
        (line?.obj as { err: string } | undefined)?.err ?? '',
        /^not TLS \(wrong version number\): a client speaking plain MQTT to the TLS listener\?$/,
      );
    } finally {
      await listener.close();
    }
  });
});
