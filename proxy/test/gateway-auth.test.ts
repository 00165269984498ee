/**
 * Gateway authentication on the downstream side (in-memory upstream): TLS client certificates
 * (the verified common name selects the identity), passwords, client ids and usernames, and the
 * gateway identity for unlisted devices.
 */
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import mqtt from 'mqtt';
import { generate } from 'selfsigned';
import { randomSymKey } from '../../e4/index.ts';
import type { DeviceConfig } from '../config.ts';
import { gatewayAuthenticator, sessionTag } from '../downstream/authenticate.ts';
import { DEFAULT_TIMING } from '../downstream/deps.ts';
import { DownstreamListener } from '../downstream/listener.ts';
import { KeyRing } from '../key-ring.ts';
import { ProxyMetrics } from '../metrics.ts';
import { DEFAULT_ROTATION_HOLD, RotationHold } from '../rotation-hold.ts';
import { hashPassword } from '../password.ts';
import { TopicPolicy } from '../policy.ts';
import { FakeUpstream } from './fake-upstream.ts';
import { recordingLogger, tempDir } from './support.ts';

function device(fields: Partial<DeviceConfig> & { identity: string }): DeviceConfig {
  return {
    clientId: undefined,
    username: undefined,
    certCommonName: undefined,
    passwordHash: undefined,
    ...fields,
  };
}

void describe('gateway authentication', () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let ring: KeyRing;
  const listeners: DownstreamListener[] = [];
  const upstream = new FakeUpstream();
  const logger = recordingLogger();
  let pems: {
    ca: string;
    caKey: string;
    client: { cert: string; key: string };
    stranger: { cert: string; key: string };
    rogue: { cert: string; key: string };
  };

  async function listen(
    devices: DeviceConfig[],
    gateway: string | undefined,
    tls?: boolean,
    requireClientCert = true,
  ): Promise<number> {
    let tlsConfig;
    if (tls === true) {
      const server = await generate([{ name: 'commonName', value: 'localhost' }], {
        algorithm: 'sha256',
        keySize: 2048,
        ca: { key: pems.caKey, cert: pems.ca },
      });
      await writeFile(join(dir.path, 'server.crt'), server.cert);
      await writeFile(join(dir.path, 'server.key'), server.private);
      await writeFile(join(dir.path, 'ca.crt'), pems.ca);
      tlsConfig = {
        certFile: join(dir.path, 'server.crt'),
        keyFile: join(dir.path, 'server.key'),
        caFile: join(dir.path, 'ca.crt'),
        requireClientCert,
      };
    }
    const listener = await DownstreamListener.start('127.0.0.1', 0, tlsConfig, {
      authenticate: gatewayAuthenticator(devices, ring, gateway),
      policy: new TopicPolicy(['secure/#'], 'forward'),
      metrics: new ProxyMetrics(),
      logger,
      upstream,
      limits: { ...DEFAULT_TIMING, maxPayloadBytes: 1024, maxPacketBytes: 4096 },
      clientIdPrefix: 'gw/',
      controlClientId: 'e4proxy-control',
      now: Date.now,
      hold: new RotationHold(DEFAULT_ROTATION_HOLD, new ProxyMetrics()),
    });
    listeners.push(listener);
    return listener.address.port;
  }

  before(async () => {
    dir = await tempDir();
    ring = await KeyRing.open(join(dir.path, 'state'), randomSymKey(), [
      { name: 'dev-a', topics: [], initialKeyHex: undefined },
      { name: 'dev-b', topics: [], initialKeyHex: undefined },
      { name: 'gateway', topics: [], initialKeyHex: undefined },
    ]);
    const ca = await generate([{ name: 'commonName', value: 'E4 test device CA' }], {
      algorithm: 'sha256',
      keySize: 2048,
      extensions: [
        { name: 'basicConstraints', cA: true, critical: true },
        {
          name: 'keyUsage',
          keyCertSign: true,
          cRLSign: true,
          digitalSignature: true,
          critical: true,
        },
      ],
    });
    const issue = async (cn: string): Promise<{ cert: string; key: string }> => {
      const r = await generate([{ name: 'commonName', value: cn }], {
        algorithm: 'sha256',
        keySize: 2048,
        ca: { key: ca.private, cert: ca.cert },
      });
      return { cert: r.cert, key: r.private };
    };
    pems = {
      ca: ca.cert,
      caKey: ca.private,
      client: await issue('sensor-7'),
      stranger: await issue('stranger'),
      rogue: await generate([{ name: 'commonName', value: 'sensor-7' }], {
        algorithm: 'sha256',
        keySize: 2048,
      }).then((r) => ({ cert: r.cert, key: r.private })),
    };
  });

  after(async () => {
    for (const l of listeners) await l.close();
    await dir.cleanup();
  });

  void it('maps client ids and usernames, checks passwords, refuses the unlisted', async () => {
    const plc = device({ clientId: 'plc-1', identity: 'dev-a' });
    const meterEntry = device({
      username: 'meter',
      passwordHash: hashPassword('m3ter-pass'),
      identity: 'dev-b',
    });
    const port = await listen([plc, meterEntry], undefined);
    const url = `mqtt://127.0.0.1:${port}`;
    const ok = await mqtt.connectAsync(url, { clientId: 'plc-1', reconnectPeriod: 0 });
    await ok.endAsync();
    const meter = await mqtt.connectAsync(url, {
      clientId: 'any',
      username: 'meter',
      password: 'm3ter-pass',
      reconnectPeriod: 0,
    });
    await meter.endAsync();
    assert.deepEqual(
      upstream.sessions.slice(-2).map((s) => s.options.clientId),
      [`gw/${sessionTag(plc)}-plc-1`, `gw/${sessionTag(meterEntry)}-any`],
    );
    await assert.rejects(
      mqtt.connectAsync(url, {
        clientId: 'x',
        username: 'meter',
        password: 'nope',
        reconnectPeriod: 0,
      }),
      /Bad username or password/,
    );
    await assert.rejects(
      mqtt.connectAsync(url, { clientId: 'intruder', reconnectPeriod: 0, protocolVersion: 5 }),
      /Not authorized/,
    );
    // Each refusal is logged with what the client claimed, never its password.
    const refusals = logger.lines
      .filter((l) => l.msg === 'downstream connection closed by the proxy')
      .map((l) => l.obj as Record<string, unknown>);
    assert.deepEqual(
      refusals.map(({ clientId, username, reason }) => ({ clientId, username, reason })),
      [
        { clientId: 'x', username: 'meter', reason: 'auth' },
        { clientId: 'intruder', username: undefined, reason: 'auth' },
      ],
    );
    assert.doesNotMatch(JSON.stringify(logger.lines), /nope/);
  });

  void it('gives unlisted devices the gateway identity when one is configured', async () => {
    const port = await listen([], 'gateway');
    const c = await mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, {
      clientId: 'whoever',
      reconnectPeriod: 0,
    });
    await c.endAsync();
  });

  void it('never gives a client accepted by another entry the session of a device', async () => {
    const meterEntry = device({
      username: 'meter',
      passwordHash: hashPassword('m3ter-pass'),
      identity: 'dev-b',
    });
    // Same identity, weaker entries: a client id alone, or the gateway identity.
    const byClientId = device({ clientId: 'meter-17', identity: 'dev-b' });
    const withEntry = `mqtt://127.0.0.1:${await listen([meterEntry, byClientId], undefined)}`;
    const withGateway = `mqtt://127.0.0.1:${await listen([meterEntry], 'dev-b')}`;
    const upstreamIdOf = async (url: string, options: mqtt.IClientOptions): Promise<string> => {
      const c = await mqtt.connectAsync(url, { reconnectPeriod: 0, clean: false, ...options });
      await c.endAsync();
      const id = upstream.sessions.at(-1)?.options.clientId;
      assert.ok(id !== undefined);
      return id;
    };
    const meter = { clientId: 'meter-17', username: 'meter', password: 'm3ter-pass' };
    const legitimate = await upstreamIdOf(withEntry, meter);
    // The same device again, or at the other listener: the same session.
    assert.equal(await upstreamIdOf(withEntry, { ...meter, protocolVersion: 5 }), legitimate);
    assert.equal(await upstreamIdOf(withGateway, meter), legitimate);
    // Its client id without credentials: other sessions, though the identity is the same.
    const intruders = [
      await upstreamIdOf(withEntry, { clientId: 'meter-17' }),
      await upstreamIdOf(withGateway, { clientId: 'meter-17', protocolVersion: 5 }),
    ];
    assert.equal(new Set([legitimate, ...intruders]).size, 3, 'three sessions');
    assert.deepEqual(
      [legitimate, ...intruders],
      [
        `gw/${sessionTag(meterEntry)}-meter-17`,
        `gw/${sessionTag(byClientId)}-meter-17`,
        `gw/${sessionTag({ gatewayIdentity: 'dev-b' })}-meter-17`,
      ],
    );
  });

  void it('selects the identity by a verified client certificate, and refuses clients without one', async () => {
    const port = await listen(
      [device({ certCommonName: 'sensor-7', identity: 'dev-a' })],
      undefined,
      true,
    );
    const url = `mqtts://localhost:${port}`;
    const ok = await mqtt.connectAsync(url, {
      clientId: 'sensor-7',
      ca: pems.ca,
      cert: pems.client.cert,
      key: pems.client.key,
      reconnectPeriod: 0,
    });
    assert.equal(ok.connected, true);
    await ok.endAsync();
    await assert.rejects(
      mqtt.connectAsync(url, {
        clientId: 'stranger',
        ca: pems.ca,
        cert: pems.stranger.cert,
        key: pems.stranger.key,
        reconnectPeriod: 0,
      }),
      /Not authorized/,
    );
    await assert.rejects(
      mqtt.connectAsync(url, {
        clientId: 'no-cert',
        ca: pems.ca,
        reconnectPeriod: 0,
        connectTimeout: 3000,
      }),
    );
  });

  void it('says why a client certificate did not verify when certificates are optional', async () => {
    // Another CA's certificate naming a listed device: the client goes on as one without a
    // certificate (here, the gateway identity). Nothing said so: an operator saw the device
    // under the wrong identity with no cause.
    const port = await listen(
      [device({ certCommonName: 'sensor-7', identity: 'dev-a' })],
      'gateway',
      true,
      false,
    );
    const before = logger.lines.length;
    const c = await mqtt.connectAsync(`mqtts://localhost:${port}`, {
      clientId: 'rogue',
      ca: pems.ca,
      cert: pems.rogue.cert,
      key: pems.rogue.key,
      reconnectPeriod: 0,
    });
    await c.endAsync();
    const warned = logger.lines
      .slice(before)
      .filter((l) => l.msg.startsWith('downstream client certificate not verified'));
    assert.equal(warned.length, 1, JSON.stringify(logger.lines.slice(before)));
    const fields = warned[0]?.obj as Record<string, unknown>;
    assert.equal(fields['claimedCommonName'], 'sensor-7');
    assert.equal(fields['reason'], 'DEPTH_ZERO_SELF_SIGNED_CERT', 'the verification error code');
    assert.equal(
      upstream.sessions.at(-1)?.options.clientId,
      `gw/${sessionTag({ gatewayIdentity: 'gateway' })}-rogue`,
    );
    // A client without a certificate is an intended fallback: nothing to say.
    const plain = await mqtt.connectAsync(`mqtts://localhost:${port}`, {
      clientId: 'no-cert',
      ca: pems.ca,
      reconnectPeriod: 0,
    });
    await plain.endAsync();
    assert.equal(
      logger.lines.filter((l) => l.msg.startsWith('downstream client certificate not verified'))
        .length,
      1,
    );
  });
});
