/**
 * `register` run again on a deployed proxy (API node on the real PostgreSQL, real Mosquitto): an
 * identity the C2 already knows keeps the C2's key, so a rotation made since (its SetIdKey still
 * waiting in the proxy's control session) is not undone, and both sides end on the same key.
 * `--replace` posts the stored key all the same.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { eventually } from '../../cluster/test/support/eventually.ts';
import { BROKER_URL, startProxy, unique, writeConfig } from '../../proxy/test/support.ts';
import {
  clientKeyVersion,
  proxyFingerprint,
  proxyRegister,
  topicFingerprint,
  useC2AndDir,
} from './support/proxy-c2.ts';

void describe('register again (C2, real Mosquitto)', () => {
  const env = useC2AndDir();

  void it('leaves the key of a known identity to the C2, and --replace overwrites it', async () => {
    const base = unique('e4proxy-rereg');
    const first = unique('gw-dev-1');
    const added = unique('gw-dev-4');
    const { a, c2Url, dir } = env;
    const file = join(dir, 'proxy.json');
    const configure = (names: string[]): ReturnType<typeof writeConfig> =>
      writeConfig(dir, {
        mode: 'gateway',
        upstream: { url: BROKER_URL, controlClientId: unique('e4proxy-rereg') },
        identities: names.map((name) => ({ name, topics: [`${base}/${name}`] })),
        devices: names.map((name) => ({ clientId: `${name}-device`, identity: name })),
        policy: { protect: [`${base}/#`] },
        c2: { url: c2Url },
      });
    const topic = `${base}/${first}`;

    // Deployed: registered, started once (it got its topic key), stopped.
    let config = await configure([first]);
    assert.match((await proxyRegister(file)).stdout, new RegExp(`^registered ${first} `));
    let proxy = await startProxy(config);
    await eventually(async () => {
      assert.equal(proxyFingerprint(proxy, first, topic), await topicFingerprint(a, topic));
    });
    await proxy.close();

    // The operator rotates the identity while the proxy is down: SetIdKey waits at the broker.
    assert.equal((await a.http('POST', `/v1/clients/${first}/rotate`, { body: {} })).status, 200);
    assert.equal(await clientKeyVersion(a, first), 2);

    // An identity is added, and register runs again.
    config = await configure([first, added]);
    const again = (await proxyRegister(file)).stdout;
    assert.match(
      again,
      new RegExp(`^${first}: already registered with the C2, its key left as is`),
    );
    assert.match(again, new RegExp(`^registered ${added} `, 'm'));
    assert.equal(await clientKeyVersion(a, first), 2, 'the C2 keeps the rotated key');

    // The proxy applies the waiting SetIdKey: later commands (a topic rotation) are authentic.
    proxy = await startProxy(config);
    try {
      assert.equal(
        (await a.http('POST', `/v1/topics/${encodeURIComponent(topic)}/rotate`)).status,
        200,
      );
      const rotated = await topicFingerprint(a, topic);
      await eventually(() => {
        assert.equal(proxyFingerprint(proxy, first, topic), rotated);
      }, 15_000);
      assert.equal(await proxy.metrics.total(proxy.metrics.commands, { outcome: 'rejected' }), 0);
    } finally {
      await proxy.close();
    }

    // --replace posts the stored key all the same: after another rotation, it undoes it (the
    // danger the docs name) with a version of its own.
    assert.equal((await a.http('POST', `/v1/clients/${first}/rotate`, { body: {} })).status, 200);
    assert.equal(await clientKeyVersion(a, first), 3);
    const replaced = (await proxyRegister(file, '--replace')).stdout;
    assert.match(replaced, new RegExp(`^registered ${first} `));
    assert.equal(await clientKeyVersion(a, first), 4);
  });
});
