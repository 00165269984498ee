/**
 * A node starts with a quorum of its Redlock instances, as it runs with one: an instance that is
 * down (a site lost, a rolling restart) must not keep every node that restarts meanwhile down
 * too. The instance joins when it comes back; fewer than a quorum still stops the start.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { pino } from 'pino';
import { Redis } from 'ioredis';
import { loadConfig } from '../../cluster/config/index.ts';
import { Lifecycle } from '../../cluster/lifecycle.ts';
import { freePort } from '../free-ports.ts';
import { lockService } from '../node-parts.ts';
import { startPrivateRedis, type PrivateRedis } from './support/redis-server.ts';

const logger = pino({ level: 'silent' });

function configWith(redlockUrls: readonly string[]): ReturnType<typeof loadConfig> {
  return loadConfig({
    DATABASE_URL: 'postgres://postgres@127.0.0.1:5432/test',
    MQTT_URL: 'mqtt://127.0.0.1:1883',
    E4C2_KEK_FILE: '/nonexistent/kek.bin',
    REDIS_URL: redlockUrls[0] ?? '',
    E4C2_REDLOCK_URLS: redlockUrls.join(','),
  });
}

void describe('Redlock instances at start', () => {
  const started: PrivateRedis[] = [];
  after(async () => {
    await Promise.all(started.map((r) => r.stop()));
  });

  void it('one of three down: the node starts, locks work, and the instance joins later', async () => {
    started.push(await startPrivateRedis(), await startPrivateRedis());
    const [one, two] = started as [PrivateRedis, PrivateRedis];
    const downPort = await freePort();
    const lifecycle = new Lifecycle(logger);
    try {
      const locks = await lockService(
        configWith([one.url, two.url, `redis://127.0.0.1:${downPort}`]),
        lifecycle,
        logger,
      );
      assert.equal(await locks.withLock('topic:t', 2000, () => Promise.resolve('held')), 'held');

      const three = await startPrivateRedis('127.0.0.1', downPort);
      started.push(three);
      const probe = new Redis(three.url);
      try {
        // The lock's key reaches the third instance once its client has reconnected.
        let seen = false;
        for (let i = 0; i < 50 && !seen; i++) {
          seen = await locks.withLock('topic:t', 2000, async () => (await probe.dbsize()) > 0);
          if (!seen) await new Promise((resolve) => setTimeout(resolve, 200));
        }
        assert.ok(seen, 'the third instance took part in a lock within 10 s');
      } finally {
        probe.disconnect();
      }
    } finally {
      await lifecycle.shutdown(5000);
    }
  });

  void it('two of three down: the start stops, naming the quorum', async () => {
    const [one] = started as [PrivateRedis];
    const [a, b] = [await freePort(), await freePort()];
    const lifecycle = new Lifecycle(logger);
    try {
      await assert.rejects(
        lockService(
          configWith([one.url, `redis://127.0.0.1:${a}`, `redis://127.0.0.1:${b}`]),
          lifecycle,
          logger,
        ),
        (err: Error & { code?: string }) => {
          assert.equal(err.code, 'C2_UNAVAILABLE');
          assert.match(err.message, /only 1 of 3 Redlock instances answer .*rotations need 2/);
          return true;
        },
      );
    } finally {
      await lifecycle.shutdown(5000);
    }
  });
});
