/**
 * A protection proxy with a C2 in public-key mode (API node on the real PostgreSQL, real
 * Mosquitto): the proxy's identity is an Ed25519 key pair that never leaves it; it registers the
 * public key (trust on first use, nothing to rotate), fetches the C2's public key itself, receives
 * its topic key from the C2, and a plain client and an E4 public-key device exchange signed,
 * encrypted messages through it.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import {
  E4Client,
  ed25519KeyFromSeed,
  ed25519PublicKey,
  fromHex,
  toHex,
  topicHash,
} from '../../e4/index.ts';
import { eventually } from '../../cluster/test/support/eventually.ts';
import { SimDevice } from '../../cluster/test/support/sim-device.ts';
import { startApi, type ApiHarness } from '../../api/test/support/api-harness.ts';
import { parseProxyConfig } from '../../proxy/config.ts';
import type { ProtectionProxy } from '../../proxy/protection-proxy.ts';
import { BROKER_URL, startProxy, tempDir, unique, writeConfig } from '../../proxy/test/support.ts';
import { proxyRoundTrip } from './support/proxy-round-trip.ts';

const b64 = (bytes: Uint8Array): string => Buffer.from(bytes).toString('base64');

void describe('protection proxy with a C2 in public-key mode', () => {
  let a: ApiHarness;
  let c2Url: string;
  const cleanups: Array<() => Promise<void>> = [];

  before(async () => {
    a = await startApi({ mode: 'pubkey' });
    c2Url = `http://127.0.0.1:${a.api.httpAddress.port}`;
  });
  after(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup().catch(() => undefined);
    await a.close();
  });

  void it('registers a key pair it keeps, and carries signed traffic both ways', async () => {
    const base = unique('e4proxy-pk');
    const topic = `${base}/line/temp`;
    const name = unique('pk-app');
    const dir = await tempDir();
    cleanups.push(() => dir.cleanup());
    const config = await writeConfig(dir.path, {
      mode: 'local',
      identities: [{ name, topics: [topic] }],
      policy: { protect: [`${base}/#`] },
      c2: { url: c2Url, tofu: true, mode: 'public-key' },
    });
    const proxy: ProtectionProxy = await startProxy(config);
    cleanups.push(() => proxy.close());
    const identity = proxy.ring.get(name);
    assert.ok(identity?.created);
    const material = identity.client.state.keyMaterial;
    assert.equal(material.mode, 'public-key');
    const c2Key = (await a.http('GET', '/v1/c2-public-key')).json as { publicKey: string };
    assert.deepEqual(material.c2PublicKey, fromHex(c2Key.publicKey), 'fetched from the C2');

    // Registered with its public key (trust on first use), and not rotated: key version 1.
    const registered = await eventually(async () => {
      const client = await a.http('GET', `/v1/clients/${name}`);
      assert.equal(client.status, 200, client.text);
      return client.json as { keyVersion: number };
    });
    assert.equal(registered.keyVersion, 1);

    // A public-key device on the same topic; each learns the other's public key from the C2.
    const deviceName = unique('pk-device');
    const devicePrivate = ed25519KeyFromSeed(new Uint8Array(randomBytes(32)));
    const sim = await SimDevice.connect(
      await E4Client.createPublicKey(
        { name: deviceName },
        { privateKey: devicePrivate },
        fromHex(c2Key.publicKey),
      ),
      BROKER_URL,
    );
    cleanups.push(() => sim.close());
    const created = await a.http('POST', `/e4/client/${deviceName}`, {
      body: { key: b64(ed25519PublicKey(devicePrivate)) },
    });
    assert.equal(created.status, 200, created.text);
    assert.equal((await a.http('PUT', `/e4/client/${deviceName}/topic/${topic}`)).status, 200);
    for (const [source, target] of [
      [name, deviceName],
      [deviceName, name],
    ]) {
      const sent = await a.http('POST', '/e4/send-client-pubkey', {
        body: { sourceClient: { name: source }, targetClient: { name: target } },
      });
      assert.equal(sent.status, 200, sent.text);
    }
    const hash = toHex(topicHash(topic));
    await eventually(() => {
      const proxyKey = identity.client.state.topicKeys.get(hash);
      assert.ok(proxyKey !== undefined, 'the proxy holds the topic key');
      assert.deepEqual(sim.client.state.topicKeys.get(hash), proxyKey);
      const proxyPeers = identity.client.state.keyMaterial;
      const devicePeers = sim.client.state.keyMaterial;
      assert.ok(
        proxyPeers.mode === 'public-key' && proxyPeers.pubKeys.size === 1,
        'the proxy holds one peer public key',
      );
      assert.ok(
        devicePeers.mode === 'public-key' && devicePeers.pubKeys.size === 1,
        'the device holds one peer public key',
      );
    });

    // The device verifies the proxy's signature with the public key the C2 sent it, and the
    // proxy the device's.
    await proxyRoundTrip({
      proxy,
      device: sim,
      topic,
      subscription: topic,
      fromApp: 'signed by the proxy',
      fromDevice: 'signed by the device',
      cleanups,
    });
    assert.equal(await proxy.metrics.total(proxy.metrics.commands, { outcome: 'rejected' }), 0);
  });

  void it('refuses a public-key configuration it cannot complete', async () => {
    const dir = await tempDir();
    cleanups.push(() => dir.cleanup());
    const bad = JSON.stringify({
      stateDir: 'state',
      upstream: { url: BROKER_URL },
      identities: [{ name: 'x', initialKey: '00'.repeat(32) }],
      c2: { mode: 'public-key', publicKey: 'zz' },
    });
    assert.throws(
      () => parseProxyConfig(bad, `${dir.path}/proxy.json`),
      (err: unknown) =>
        err instanceof Error &&
        /initialKey: must be 128 hex digits \(a 64-byte Ed25519 private key\)/.test(err.message) &&
        /c2\.publicKey: must be 64 hex digits/.test(err.message),
    );
    const noWay = JSON.stringify({
      stateDir: 'state',
      upstream: { url: BROKER_URL },
      identities: [{ name: 'x' }],
      c2: { mode: 'public-key' },
    });
    assert.throws(
      () => parseProxyConfig(noWay, `${dir.path}/proxy.json`),
      /c2\.mode public-key: needs c2\.publicKey \(the C2's public key\) or c2\.url to fetch it/,
    );
  });
});
