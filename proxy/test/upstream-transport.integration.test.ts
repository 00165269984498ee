/**
 * Plain MQTT and TLS mixed up between the proxy and its broker: the error says so and names the
 * scheme to try, rather than only `read ECONNRESET`. Both directions: a TLS client on the real
 * Mosquitto's plain port (which resets the handshake), and a plain client on a TLS port (a Node
 * TLS server, which closes the connection without a word).
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { createServer, type Server } from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { ControlChannel } from '../control-channel.ts';
import { ProxyError } from '../errors.ts';
import { KeyRing } from '../key-ring.ts';
import { ProxyMetrics } from '../metrics.ts';
import { MqttUpstreamConnector } from '../upstream.ts';
import { BROKER_URL, recordingLogger, selfSignedCert, tempDir, unique } from './support.ts';

void describe('plain MQTT and TLS mixed up upstream', () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let ring: KeyRing;
  let tlsServer: Server;
  let tlsUrl = '';
  const plainPortAsTls = BROKER_URL.replace(/^mqtt:/, 'mqtts:');

  before(async () => {
    dir = await tempDir();
    ring = await KeyRing.open(dir.path, new Uint8Array(randomBytes(32)), [
      { name: unique('transport-app'), topics: [], initialKeyHex: undefined },
    ]);
    const cert = await selfSignedCert();
    tlsServer = createServer({ cert: cert.cert, key: cert.key }, (socket) => socket.end());
    tlsServer.on('tlsClientError', () => undefined);
    await new Promise<void>((resolve) => tlsServer.listen(0, '127.0.0.1', resolve));
    tlsUrl = `mqtt://127.0.0.1:${(tlsServer.address() as AddressInfo).port}`;
  });
  after(async () => {
    await new Promise((resolve) => tlsServer.close(resolve));
    await dir.cleanup();
  });

  const start = (url: string): Promise<ControlChannel> =>
    ControlChannel.start({
      broker: { url, connectTimeoutMs: 3000 },
      clientId: unique('e4proxy-transport'),
      ring,
      metrics: new ProxyMetrics(),
      logger: recordingLogger(),
    });

  void it('names a TLS URL on a plain port at start (PROXY_UPSTREAM)', async () => {
    await assert.rejects(start(plainPortAsTls), (err) => {
      assert.ok(ProxyError.is(err, 'PROXY_UPSTREAM'), String(err));
      assert.match(err.message, /^cannot reach the broker at mqtts:\/\/\S+: /);
      assert.match(err.message, /does this port speak plain MQTT\? Use mqtt:\/\//);
      return true;
    });
  });

  void it('names a plain URL on a TLS port at start (PROXY_UPSTREAM)', async () => {
    await assert.rejects(start(tlsUrl), (err) => {
      assert.ok(ProxyError.is(err, 'PROXY_UPSTREAM'), String(err));
      assert.match(err.message, /does this port expect TLS\? Use mqtts:\/\//);
      return true;
    });
  });

  void it("says so for a device's upstream session too", async () => {
    for (const [url, expected] of [
      [plainPortAsTls, /speak plain MQTT/],
      [tlsUrl, /expect TLS/],
    ] as const) {
      const connector = new MqttUpstreamConnector({ url, connectTimeoutMs: 3000 });
      await assert.rejects(
        connector.connect(
          { clientId: unique('transport-device'), protocolVersion: 4, clean: true, keepalive: 60 },
          { onMessage: () => undefined, onClose: () => undefined },
        ),
        expected,
      );
    }
  });
});
