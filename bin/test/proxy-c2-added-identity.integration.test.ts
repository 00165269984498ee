/**
 * An identity added to a deployed gateway proxy (API node on the real PostgreSQL, real
 * Mosquitto): its control topic was not subscribed when `register` made the C2 send its topic
 * keys, so the broker dropped them while the control session stayed present. At the next start
 * the proxy asks the C2 to resync that identity (once), and its device's traffic is protected.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { eventually } from '../../cluster/test/support/eventually.ts';
import {
  BROKER_URL,
  Collector,
  proxyUrl,
  recordingLogger,
  startProxy,
  unique,
  writeConfig,
} from '../../proxy/test/support.ts';
import {
  proxyFingerprint,
  proxyRegister,
  topicFingerprint,
  useC2AndDir,
} from './support/proxy-c2.ts';

void describe('identity added to a deployed gateway proxy (C2, real Mosquitto)', () => {
  const env = useC2AndDir();

  void it('resyncs the new identity once its control topic is subscribed', async () => {
    const base = unique('e4proxy-added');
    const first = unique('gw-dev-1');
    const added = unique('gw-dev-4');
    const device = unique('dev-4');
    const topics: Record<string, string> = { [first]: `${base}/a`, [added]: `${base}/b` };
    const { a, c2Url, dir } = env;
    const controlClientId = unique('e4proxy-added');
    const file = join(dir, 'proxy.json');
    const configure = (names: string[]): ReturnType<typeof writeConfig> =>
      writeConfig(dir, {
        mode: 'gateway',
        upstream: { url: BROKER_URL, controlClientId },
        identities: names.map((name) => ({ name, topics: [topics[name]] })),
        devices: names.includes(added) ? [{ clientId: device, identity: added }] : [],
        gatewayIdentity: first,
        policy: { protect: [`${base}/#`] },
        c2: { url: c2Url },
      });

    // Deployed with one identity, running.
    let proxy = await startProxy(await configure([first]));
    await proxyRegister(file);
    const firstTopic = `${base}/a`;
    await eventually(async () => {
      assert.equal(
        proxyFingerprint(proxy, first, firstTopic),
        await topicFingerprint(a, firstTopic),
      );
    });

    // The identity is added and registered while the proxy runs, then the proxy is restarted.
    const config = await configure([first, added]);
    await proxyRegister(file);
    await proxy.close();
    proxy = await startProxy(config);
    const eavesdropper = await Collector.connect(BROKER_URL);
    try {
      const topic = `${base}/b`;
      await eventually(async () => {
        assert.equal(proxyFingerprint(proxy, added, topic), await topicFingerprint(a, topic));
      }, 15_000);
      // Its device's messages now go out protected instead of being dropped as no-key.
      await eavesdropper.client.subscribeAsync(topic, { qos: 1 });
      const dev = await Collector.connect(proxyUrl(proxy), { clientId: device });
      try {
        await dev.client.publishAsync(topic, 'reading of dev-4', { qos: 1 });
        await eavesdropper.waitFor(1);
      } finally {
        await dev.close();
      }
      assert.ok(!eavesdropper.messages[0]?.payload.toString('latin1').includes('reading'));
    } finally {
      await eavesdropper.close();
      await proxy.close();
    }

    // Recorded: the next start asks for no resync.
    const logger = recordingLogger();
    proxy = await startProxy(config, { logger });
    await proxy.close();
    assert.deepEqual(
      logger.lines.filter((l) => l.msg.includes('resync')),
      [],
    );
  });
});
