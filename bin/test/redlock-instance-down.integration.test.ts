/**
 * A node's Redlock connections while one of three instances is down: a lock command sent to the
 * stopped instance fails at once instead of waiting in ioredis's offline queue until the lock
 * service's command timeout. Otherwise every attempt that needs all three votes (a lock held
 * elsewhere, the common case under contention) waits that timeout for a vote that cannot come.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { pino } from 'pino';
import type { Redis } from 'ioredis';
import {
  RedlockService,
  type LockEvent,
  type RedlockClient,
} from '../../cluster/coordination/index.ts';
import { Lifecycle } from '../../cluster/lifecycle.ts';
import { c2Rejection } from '../../cluster/test/support/c2-rejection.ts';
import { eventually } from '../../cluster/test/support/eventually.ts';
import { connectRedlockClients } from '../node-parts.ts';
import { redlockConfig } from './support/redlock-config.ts';
import { startPrivateRedis, type PrivateRedis } from './support/redis-server.ts';

const logger = pino({ level: 'silent' });

/** `client`, noting the message of every command that fails in `failures`. */
function noting(client: Redis, failures: string[]): RedlockClient {
  const noted = <T>(reply: Promise<T>): Promise<T> => {
    reply.catch((err: unknown) => failures.push(err instanceof Error ? err.message : String(err)));
    return reply;
  };
  return {
    evalsha: (sha, numkeys, ...args) => noted(client.evalsha(sha, numkeys, ...args)),
    eval: (script, numkeys, ...args) => noted(client.eval(script, numkeys, ...args)),
  };
}

void describe('Redlock with one of three instances down', () => {
  const servers: PrivateRedis[] = [];
  const lifecycle = new Lifecycle(logger);
  after(async () => {
    await lifecycle.shutdown(5000);
    await Promise.all(servers.map((s) => s.stop()));
  });

  void it('fails the down instance at once: no attempt waits for its command timeout', async () => {
    servers.push(await startPrivateRedis(), await startPrivateRedis(), await startPrivateRedis());
    const urls = servers.map((s) => s.url);
    const config = redlockConfig(urls);
    assert.ok(config.redis.kind === 'external');
    const clients = await connectRedlockClients(config.redis, lifecycle, logger);
    const [, , third] = clients;
    assert.ok(third !== undefined);

    // Another node holds the lock, taken while every instance answered.
    const resource = `topic:down-${process.pid}`;
    let release: () => void = () => undefined;
    let held: () => void = () => undefined;
    const holding = new Promise<void>((resolve) => {
      held = resolve;
    });
    const holder = new RedlockService({ clients }).withLock(resource, 30_000, () => {
      held();
      return new Promise<void>((resolve) => {
        release = resolve;
      });
    });
    await holding;
    await servers[2]?.stop();
    await eventually(() => {
      assert.notEqual(third.status, 'ready');
    });

    const failures: string[][] = clients.map(() => []);
    const events: LockEvent[] = [];
    const contender = new RedlockService({
      clients: clients.map((c, i) => noting(c, failures[i] ?? [])),
      acquireTimeoutMs: 400,
      onEvent: (e) => events.push(e),
    });
    const err = await c2Rejection(contender.withLock(resource, 5000, () => Promise.resolve()));
    assert.equal(err.code, 'C2_UNAVAILABLE', err.message);
    assert.match(err.message, /still held elsewhere/);

    const attempts = events.filter((e) => e.type === 'attempt-failed');
    assert.ok(attempts.length > 0);
    for (const attempt of attempts) {
      assert.equal(attempt.heldElsewhere, 2);
      assert.deepEqual(attempt.failedInstances, [2]);
      // The down instance's vote came back at once, never by the command timeout.
      assert.deepEqual(attempt.timedOutInstances, []);
    }
    // The error path taken: refused by the client for want of a connection, never queued.
    assert.ok((failures[2] ?? []).length >= attempts.length);
    for (const message of failures[2] ?? []) {
      assert.match(message, /enableOfflineQueue options is false/);
    }

    release();
    await holder;
  });
});
