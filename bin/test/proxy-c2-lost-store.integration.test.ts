/**
 * Trust on first use after an identity's key store was lost (API node on the real PostgreSQL,
 * real Mosquitto): the proxy draws a new key, which it registers in place of the lost one, and
 * the C2 sends the identity's topic keys again. Attaching the topics again sends nothing (the C2
 * holds them delivered), so without the resync the identity stayed without keys for good.
 */
import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import { describe, it } from 'node:test';
import { eventually } from '../../cluster/test/support/eventually.ts';
import { identityStatePath } from '../../proxy/key-ring.ts';
import {
  BROKER_URL,
  recordingLogger,
  startProxy,
  unique,
  writeConfig,
} from '../../proxy/test/support.ts';
import {
  clientKeyVersion,
  proxyFingerprint,
  topicFingerprint,
  useC2AndDir,
} from './support/proxy-c2.ts';

void describe('trust on first use after a lost key store (C2, real Mosquitto)', () => {
  const env = useC2AndDir();

  void it('registers the new key and has the topic keys sent again', async () => {
    const base = unique('e4proxy-lost');
    const name = unique('legacy-app');
    const topic = `${base}/t`;
    const { a, c2Url, dir } = env;
    const config = await writeConfig(dir, {
      mode: 'local',
      upstream: { url: BROKER_URL, controlClientId: unique('e4proxy-lost') },
      identities: [{ name, topics: [topic] }],
      policy: { protect: [`${base}/#`] },
      c2: { url: c2Url, tofu: true },
    });

    // Deployed with trust on first use: registered, rotated, holding the topic key.
    let proxy = await startProxy(config);
    await eventually(async () => {
      assert.equal(proxyFingerprint(proxy, name, topic), await topicFingerprint(a, topic));
    });
    await eventually(async () => {
      assert.equal(await clientKeyVersion(a, name), 2);
    });
    await proxy.close();

    // The identity's store is lost; the proxy starts again.
    await rm(identityStatePath(config.stateDir, name));
    const logger = recordingLogger();
    proxy = await startProxy(config, { logger });
    try {
      assert.equal(proxy.ring.get(name)?.created, true);
      await eventually(async () => {
        assert.equal(proxyFingerprint(proxy, name, topic), await topicFingerprint(a, topic));
      }, 15_000);
      assert.ok(
        logger.lines.some(
          (l) => l.level === 'warn' && l.msg.includes('its key store was not found'),
        ),
        JSON.stringify(logger.lines),
      );
    } finally {
      await proxy.close();
    }
  });
});
