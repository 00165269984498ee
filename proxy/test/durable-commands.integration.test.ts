/**
 * A key update is never lost (real Mosquitto): when the key store cannot save a command, the
 * proxy does not acknowledge it, reconnects, and applies it when the broker delivers it again;
 * after a restart the key is there.
 */
import assert from 'node:assert/strict';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { randomSymKey, toHex, topicHash } from '../../e4/index.ts';
import { identityStatePath } from '../key-ring.ts';
import type { ProtectionProxy } from '../protection-proxy.ts';
import { sendTopicKey, startProxy, tempDir, unique, writeConfig } from './support.ts';

async function until(check: () => boolean, what: string, ms = 15_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

void describe('durable key updates', () => {
  const proxies: ProtectionProxy[] = [];
  let cleanup: (() => Promise<void>) | undefined;
  after(async () => {
    for (const p of proxies) await p.close();
    await cleanup?.();
  });

  void it('redelivers a command whose save failed, and keeps it across a restart', async () => {
    const dir = await tempDir();
    cleanup = dir.cleanup;
    const name = unique('durable-app');
    const identityKey = randomSymKey();
    const topic = `${unique('e4proxy-durable')}/t`;
    const config = await writeConfig(dir.path, {
      identities: [{ name, initialKey: toHex(identityKey) }],
      policy: { protect: [topic] },
    });
    const proxy = await startProxy(config);
    proxies.push(proxy);
    // Saving becomes impossible: the state file's path is now a non-empty directory.
    const path = identityStatePath(config.stateDir, name);
    await rm(path);
    await mkdir(path);
    await writeFile(join(path, 'blocker'), '');

    await sendTopicKey(name, identityKey, topic, randomSymKey());
    const hash = toHex(topicHash(topic));
    const identity = proxy.ring.get(name);
    assert.ok(identity);
    await new Promise((r) => setTimeout(r, 1500));
    assert.equal(identity.client.state.topicKeys.has(hash), false, 'not applied while unsaved');

    await rm(path, { recursive: true });
    await until(() => identity.client.state.topicKeys.has(hash), 'the redelivered command');
    assert.equal(await proxy.metrics.total(proxy.metrics.commands, { outcome: 'rejected' }), 0);
    const key = identity.client.state.topicKeys.get(hash);

    await proxy.close();
    proxies.pop();
    const again = await startProxy(config);
    proxies.push(again);
    assert.deepEqual(again.ring.get(name)?.client.state.topicKeys.get(hash), key);
  });
});
