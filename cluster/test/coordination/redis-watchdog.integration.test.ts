/**
 * A Redis connection black-holed by a failover behind the same address (old connections never
 * answer again, new ones reach the server) is reset by the watchdog, so commands get an answer
 * again; without it they wait. The machine's Redis, through a forwarder that can cut the
 * connections open at a given moment.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { RedisWatchdog } from '../../coordination/index.ts';
import { BlackholeProxy } from '../support/blackhole-proxy.ts';
import { pendingAfter } from '../support/eventually.ts';

const REDIS_URL = new URL(process.env['REDIS_TEST_URL'] ?? 'redis://127.0.0.1:6379');

void describe('RedisWatchdog with a real Redis', () => {
  const cleanups: (() => Promise<void> | void)[] = [];
  after(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup();
  });

  /** A connection as a node's non-blocking ones are made, through a fresh forwarder. */
  async function connectThroughProxy(): Promise<{ redis: Redis; proxy: BlackholeProxy }> {
    const proxy = await BlackholeProxy.start({
      host: REDIS_URL.hostname,
      port: Number(REDIS_URL.port || 6379),
    });
    const redis = new Redis({
      host: '127.0.0.1',
      port: proxy.port,
      maxRetriesPerRequest: 1,
      lazyConnect: true,
      connectTimeout: 2000,
    });
    redis.on('error', () => undefined);
    await redis.connect();
    cleanups.push(() => proxy.close());
    cleanups.push(() => {
      redis.disconnect();
    });
    return { redis, proxy };
  }

  void it('a connection cut by a failover is reset, and commands are answered again', async () => {
    const { redis, proxy } = await connectThroughProxy();
    let resets = 0;
    const watchdog = RedisWatchdog.start(redis, {
      intervalMs: 200,
      timeoutMs: 300,
      onReset: () => {
        resets++;
      },
    });
    cleanups.push(() => {
      watchdog.stop();
    });
    const key = `watchdog:${randomUUID()}`;
    await redis.set(key, 'before');
    proxy.cutExisting();
    // Sent into the black hole: answered once the watchdog has reset the connection (ioredis
    // resends it on the new one) or failed; either way not left waiting.
    const during = redis.set(key, 'during').then(
      () => 'answered',
      () => 'failed',
    );
    assert.equal(await pendingAfter(during, 10_000), false, 'the command got an outcome');
    assert.ok(resets >= 1, 'the watchdog reset the connection');
    assert.equal(await redis.get(key), (await during) === 'answered' ? 'during' : 'before');
    await redis.del(key);
  });

  void it('without it, a command on a cut connection keeps waiting', async () => {
    const { redis, proxy } = await connectThroughProxy();
    proxy.cutExisting();
    assert.equal(await pendingAfter(redis.ping(), 3000), true, 'still waiting');
  });
});
