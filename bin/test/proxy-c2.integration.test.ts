/**
 * Protection proxies against our C2 (API node on the real PostgreSQL, real Mosquitto): the
 * proxies register their identities over the C2's HTTP API, receive their keys from the C2's
 * delivery, follow rotations, and carry plain MQTT clients' traffic protected end to end.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import mqtt from 'mqtt';
import { E4Client, randomSymKey, toHex, topicHash } from '../../e4/index.ts';
import { eventually } from '../../cluster/test/support/eventually.ts';
import { SimDevice } from '../../cluster/test/support/sim-device.ts';
import { startApi, type ApiHarness } from '../../api/test/support/api-harness.ts';
import { hashPassword } from '../../proxy/password.ts';
import type { ProxyConfig } from '../../proxy/config.ts';
import type { ProtectionProxy } from '../../proxy/protection-proxy.ts';
import { C2Registrar } from '../../proxy/registration.ts';
import {
  BROKER_URL,
  Collector,
  proxyUrl,
  startProxy,
  tempDir,
  unique,
  writeConfig,
} from '../../proxy/test/support.ts';
import { proxyFingerprint, proxyRegister, topicFingerprint } from './support/proxy-c2.ts';
import { proxyRoundTrip } from './support/proxy-round-trip.ts';

const b64 = (bytes: Uint8Array): string => Buffer.from(bytes).toString('base64');

void describe('protection proxies with the C2', () => {
  let a: ApiHarness;
  let c2Url: string;
  const cleanups: Array<() => Promise<void>> = [];

  before(async () => {
    a = await startApi();
    c2Url = `http://127.0.0.1:${a.api.httpAddress.port}`;
  });
  after(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup().catch(() => undefined);
    await a.close();
  });

  /** A device on our library, registered with the C2 and attached to `topic`. */
  async function device(topic: string): Promise<SimDevice> {
    const name = unique('device');
    const key = randomSymKey();
    const sim = await SimDevice.connect(
      await E4Client.createSymmetric({ name }, { key }),
      BROKER_URL,
    );
    cleanups.push(() => sim.close());
    assert.equal(
      (await a.http('POST', `/e4/client/${name}`, { body: { key: b64(key) } })).status,
      200,
    );
    const attached = await a.http('PUT', `/e4/client/${name}/topic/${topic}`);
    assert.equal(attached.status, 200, attached.text);
    return sim;
  }

  /**
   * Writes the configuration of a local proxy for `name` into `dir` (a new one by default):
   * `c2` is its C2 section. @returns the configuration, its file and its directory
   */
  async function localConfig(
    name: string,
    topics: string[],
    protect: string,
    c2: Record<string, unknown>,
    dir?: string,
  ): Promise<{ config: ProxyConfig; file: string; dir: string }> {
    let path = dir;
    if (path === undefined) {
      const made = await tempDir();
      cleanups.push(() => made.cleanup());
      path = made.path;
    }
    const config = await writeConfig(path, {
      mode: 'local',
      identities: [{ name, topics }],
      policy: { protect: [protect] },
      c2,
    });
    return { config, file: join(path, 'proxy.json'), dir: path };
  }

  async function startLocal(
    name: string,
    topics: string[],
    protect: string,
    tofu = false,
  ): Promise<ProtectionProxy> {
    const { config } = await localConfig(name, topics, protect, { url: c2Url, tofu });
    const proxy = await startProxy(config);
    cleanups.push(() => proxy.close());
    return proxy;
  }

  /**
   * A local proxy for `topic` registered with the C2 and an E4 device on it, once both hold the
   * topic's current key (whose fingerprint is returned).
   */
  async function proxyAndDevice(base: string, topic: string) {
    const name = unique('legacy-app');
    const proxy = await startLocal(name, [topic], `${base}/#`);
    const identity = proxy.ring.get(name);
    assert.ok(identity);
    await new C2Registrar(c2Url, undefined).register(identity);
    const sim = await device(topic);
    const fingerprint = await topicFingerprint(a, topic);
    await eventually(() => {
      assert.equal(proxyFingerprint(proxy, name, topic), fingerprint);
      assert.equal(sim.topicKeyFingerprint(toHex(topicHash(topic))), fingerprint);
    });
    return { name, proxy, sim, fingerprint };
  }

  void it('local proxy: a plain client and an E4 device talk both ways; the broker sees ciphertext', async () => {
    const base = unique('e4proxy-c2');
    const topic = `${base}/line-1/temp`;
    const { proxy, sim } = await proxyAndDevice(base, topic);

    const app = await proxyRoundTrip({
      proxy,
      device: sim,
      topic,
      subscription: `${base}/+/temp`,
      fromApp: '21.5 C from a legacy app',
      fromDevice: 'setpoint 19',
      cleanups,
    });
    // The app's own message came back through its subscription in clear too.
    assert.deepEqual(app.texts(topic), ['21.5 C from a legacy app', 'setpoint 19']);
  });

  void it('a C2 rotation reaches the proxy while traffic flows, and nothing is lost', async () => {
    const base = unique('e4proxy-rot');
    const topic = `${base}/flow`;
    const { name, proxy, sim, fingerprint: v1 } = await proxyAndDevice(base, topic);
    const received: string[] = [];
    const listener = await mqtt.connectAsync(BROKER_URL, { clientId: unique('dev-sub') });
    cleanups.push(() => listener.endAsync());
    listener.on('message', (t, payload) => {
      received.push(Buffer.from(sim.client.unprotectMessage(payload, t)).toString());
    });
    await listener.subscribeAsync(topic, { qos: 1 });
    const app = await Collector.connect(proxyUrl(proxy));
    cleanups.push(() => app.close());

    const total = 150;
    let rotatedAt = -1;
    for (let i = 0; i < total; i++) {
      if (i === 50) {
        const rotated = await a.http('POST', `/v1/topics/${encodeURIComponent(topic)}/rotate`);
        assert.equal(rotated.status, 200, rotated.text);
        rotatedAt = i;
      }
      if (i === 100) {
        // The identity key too: the proxy applies SetIdKey and keeps receiving commands.
        const rotated = await a.http('POST', `/v1/clients/${name}/rotate`, { body: {} });
        assert.equal(rotated.status, 200, rotated.text);
      }
      await app.client.publishAsync(topic, `m${i}`, { qos: 1 });
      await new Promise((r) => setTimeout(r, 5));
    }
    assert.equal(rotatedAt, 50);
    const v2 = await topicFingerprint(a, topic);
    assert.notEqual(v2, v1);
    await eventually(() => {
      assert.equal(proxyFingerprint(proxy, name, topic), v2);
      assert.equal(received.length, total);
    });
    assert.deepEqual(
      received,
      Array.from({ length: total }, (_v, i) => `m${i}`),
    );

    // After the identity rotation a further topic rotation still reaches the proxy.
    await eventually(async () => {
      const client = (await a.http('GET', `/v1/clients/${name}`)).json as { keyVersion: number };
      assert.equal(client.keyVersion, 2);
    });
    assert.equal(
      (await a.http('POST', `/v1/topics/${encodeURIComponent(topic)}/rotate`)).status,
      200,
    );
    const v3 = await topicFingerprint(a, topic);
    await eventually(() => {
      assert.equal(proxyFingerprint(proxy, name, topic), v3);
    });
    assert.equal(await proxy.metrics.total(proxy.metrics.commands, { outcome: 'rejected' }), 0);
  });

  void it('trust on first use: the C2 rotates a locally created identity at once', async () => {
    const base = unique('e4proxy-tofu');
    const topic = `${base}/t`;
    const name = unique('tofu-app');
    const proxy = await startLocal(name, [topic], `${base}/#`, true);
    const identity = proxy.ring.get(name);
    assert.ok(identity?.created);
    const firstKey = identity.client.state.keyMaterial;
    await eventually(async () => {
      const client = (await a.http('GET', `/v1/clients/${name}`)).json as { keyVersion: number };
      assert.equal(client.keyVersion, 2);
      assert.notDeepEqual(
        identity.client.state.keyMaterial,
        firstKey,
        'the identity key was rotated',
      );
      assert.equal(proxyFingerprint(proxy, name, topic), await topicFingerprint(a, topic));
    });
  });

  void it('register before the first start: the keys sent meanwhile reach the proxy once it runs', async () => {
    const base = unique('e4proxy-early');
    const topic = `${base}/t`;
    const name = unique('early-app');
    const { config, file } = await localConfig(name, [topic], `${base}/#`, { url: c2Url });
    // `npm run proxy -- register`, as the docs allow, before the proxy ever ran: the C2 sends the
    // topic key to a control topic no session listens on yet, and the broker drops it.
    const registered = await proxyRegister(file);
    assert.match(registered.stdout, /^registered /);
    const fingerprint = await topicFingerprint(a, topic);
    await eventually(async () => {
      const status = (await a.http('GET', `/v1/topics/${encodeURIComponent(topic)}/rollout`))
        .json as { rollout: { delivered: number } };
      assert.equal(status.rollout.delivered, 1, 'the C2 delivered it (to nobody)');
    });
    const proxy = await startProxy(config);
    cleanups.push(() => proxy.close());
    await eventually(() => {
      assert.equal(proxyFingerprint(proxy, name, topic), fingerprint);
    });
  });

  void it('register --rotate before the first start: the rotation waits for the proxy', async () => {
    const base = unique('e4proxy-early-rotate');
    const topic = `${base}/t`;
    const name = unique('early-rotate');
    const { config, file } = await localConfig(name, [topic], `${base}/#`, { url: c2Url });
    const registered = await proxyRegister(file, '--rotate');
    assert.match(registered.stdout, /rotation deferred to the proxy's first start/);
    const keyVersion = async (): Promise<number> =>
      ((await a.http('GET', `/v1/clients/${name}`)).json as { keyVersion: number }).keyVersion;
    assert.equal(await keyVersion(), 1, 'not rotated while nothing could receive the new key');

    const proxy = await startProxy(config);
    cleanups.push(() => proxy.close());
    const identity = proxy.ring.get(name);
    assert.ok(identity);
    const firstKey = identity.client.state.keyMaterial;
    await eventually(async () => {
      assert.equal(await keyVersion(), 2);
      assert.notDeepEqual(identity.client.state.keyMaterial, firstKey);
    });
    assert.equal(existsSync(join(config.stateDir, 'pending-rotations.json')), false);
    // Keys sent after the rotation are protected under the new identity key: they arrive.
    const rotated = await a.http('POST', `/v1/topics/${encodeURIComponent(topic)}/rotate`);
    assert.equal(rotated.status, 200, rotated.text);
    const fingerprint = await topicFingerprint(a, topic);
    await eventually(() => {
      assert.equal(proxyFingerprint(proxy, name, topic), fingerprint);
    });
  });

  void it('trust on first use after a start that could not reach the C2', async () => {
    const base = unique('e4proxy-tofu-retry');
    const topic = `${base}/t`;
    const name = unique('tofu-retry');
    const unreachable = await localConfig(name, [topic], `${base}/#`, {
      url: 'http://127.0.0.1:1',
      tofu: true,
    });
    await assert.rejects(startProxy(unreachable.config), /cannot reach the C2/);
    // The identity's store was made; a later start with the C2 back registers it all the same.
    const { config } = await localConfig(
      name,
      [topic],
      `${base}/#`,
      { url: c2Url, tofu: true },
      unreachable.dir,
    );
    const proxy = await startProxy(config);
    cleanups.push(() => proxy.close());
    assert.equal(proxy.ring.get(name)?.created, false, 'the store of the first start');
    await eventually(async () => {
      const client = await a.http('GET', `/v1/clients/${name}`);
      assert.equal(client.status, 200, client.text);
      assert.equal(proxyFingerprint(proxy, name, topic), await topicFingerprint(a, topic));
    });
  });

  void it('gateway: 50 plain devices, each with its own E4 identity', async () => {
    const base = unique('e4proxy-gw');
    const fleet = `${base}/fleet`;
    const count = 50;
    const names = Array.from({ length: count }, (_v, i) => unique(`gw-dev-${i}`));
    const dir = await tempDir();
    cleanups.push(() => dir.cleanup());
    const password = 'device-0 secret';
    const config = await writeConfig(dir.path, {
      mode: 'gateway',
      identities: names.map((name, i) => ({ name, topics: [`${base}/dev/${i}`, fleet] })),
      devices: names.map((name, i) => ({
        clientId: `${base}-dev-${i}`,
        identity: name,
        ...(i === 0 ? { passwordHash: hashPassword(password) } : {}),
      })),
      policy: { protect: [`${base}/#`], otherTopics: 'drop' },
    });
    const proxy = await startProxy(config);
    cleanups.push(() => proxy.close());
    const registrar = new C2Registrar(c2Url, undefined);
    for (const name of names) {
      const identity = proxy.ring.get(name);
      assert.ok(identity);
      await registrar.register(identity);
    }
    await eventually(
      async () => {
        for (const [i, name] of names.entries()) {
          assert.ok(proxyFingerprint(proxy, name, fleet) !== undefined, `fleet key of ${name}`);
          assert.equal(
            proxyFingerprint(proxy, name, `${base}/dev/${i}`),
            await topicFingerprint(a, `${base}/dev/${i}`),
          );
        }
      },
      30_000,
      200,
    );

    // A wrong password and an unknown client id are refused.
    await assert.rejects(
      mqtt.connectAsync(proxyUrl(proxy), {
        clientId: `${base}-dev-0`,
        username: 'u',
        password: 'wrong',
        reconnectPeriod: 0,
      }),
    );
    await assert.rejects(
      mqtt.connectAsync(proxyUrl(proxy), { clientId: `${base}-stranger`, reconnectPeriod: 0 }),
    );

    const eavesdropper = await Collector.connect(BROKER_URL);
    cleanups.push(() => eavesdropper.close());
    await eavesdropper.client.subscribeAsync(`${base}/dev/#`, { qos: 1 });
    const devices: Collector[] = [];
    for (let i = 0; i < count; i++) {
      const d = await Collector.connect(proxyUrl(proxy), {
        clientId: `${base}-dev-${i}`,
        ...(i === 0 ? { username: 'device-0', password } : {}),
      });
      cleanups.push(() => d.close());
      await d.client.subscribeAsync(fleet, { qos: 1 });
      devices.push(d);
    }
    await Promise.all(
      devices.map((d, i) =>
        d.client.publishAsync(`${base}/dev/${i}`, `reading of ${i}`, { qos: 1 }),
      ),
    );
    await eavesdropper.waitFor(count);
    // Each was protected with its own topic's key: the C2 unprotects it.
    for (const m of eavesdropper.messages) {
      assert.ok(!m.payload.toString('latin1').includes('reading'));
      const opened = await a.http('POST', '/e4/unprotect-message', {
        body: { topic: m.topic, protectedBinaryData: b64(m.payload) },
      });
      assert.equal(opened.status, 200, opened.text);
      const i = m.topic.split('/').pop();
      assert.equal(
        Buffer.from((opened.json as { binaryData: string }).binaryData, 'base64').toString(),
        `reading of ${i}`,
      );
    }
    // The C2 protects one message for the fleet topic: every device reads it in clear.
    const sealed = await a.http('POST', '/e4/protect-message', {
      body: { topic: fleet, binaryData: b64(Buffer.from('fleet-wide notice')) },
    });
    assert.equal(sealed.status, 200, sealed.text);
    const publisher = await mqtt.connectAsync(BROKER_URL, { clientId: unique('c2-app') });
    cleanups.push(() => publisher.endAsync());
    await publisher.publishAsync(
      fleet,
      Buffer.from((sealed.json as { protectedBinaryData: string }).protectedBinaryData, 'base64'),
      { qos: 1 },
    );
    await eventually(() => {
      for (const d of devices) assert.deepEqual(d.texts(fleet), ['fleet-wide notice']);
    });
    assert.equal(proxy.status().downstreamConnections, count);
  });
});
