/**
 * The automation leader lease's connection keeps ioredis's offline queue (unlike the Redlock and
 * queue-producer connections): a renewal sent while the connection is being re-made (a watchdog
 * reset, a Redis restart) waits for it and keeps the leader. Failing it at once would make the
 * leader step down and claim a new epoch, fencing off the firing it was running.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { after, before, describe, it } from 'node:test';
import { pino } from 'pino';
import { RedisLeaderLease } from '../../cluster/coordination/index.ts';
import { Lifecycle } from '../../cluster/lifecycle.ts';
import { connectLeaseRedis } from '../automation-part.ts';
import { externalRedisConfig } from './support/redis-config.ts';
import { startPrivateRedis, type PrivateRedis } from './support/redis-server.ts';

const logger = pino({ level: 'silent' });

void describe("the automation lease's Redis connection", () => {
  let server: PrivateRedis;
  const lifecycle = new Lifecycle(logger);
  before(async () => {
    server = await startPrivateRedis();
  });
  after(async () => {
    await lifecycle.shutdown(5000);
    await server.stop();
  });

  void it('renews the lease across a reconnect instead of losing it', async () => {
    const client = await connectLeaseRedis(externalRedisConfig(server.url), lifecycle, logger);
    const lease = new RedisLeaderLease(client, `e4c2:test:lease:${randomBytes(4).toString('hex')}`);
    assert.equal(await lease.tryAcquire(10_000), true);

    // As the watchdog does with a silent connection; renewed once the old stream is gone.
    const reconnecting = once(client, 'reconnecting');
    client.disconnect(true);
    await reconnecting;
    assert.notEqual(client.status, 'ready');
    assert.equal(await lease.renew(10_000), true, 'the renewal waited for the new connection');
    await lease.release();
  });
});
