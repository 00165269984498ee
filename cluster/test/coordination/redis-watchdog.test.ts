/**
 * RedisWatchdog's rules on a fake connection: reset only a ready connection whose ping goes
 * unanswered; leave alone one that answers (even with an error) or that ioredis is already
 * reconnecting; nothing after stop().
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { RedisWatchdog, type WatchedRedis } from '../../coordination/index.ts';
import { sleep } from './support.ts';

/** A connection whose ping behaves as `ping` says; records pings and resets. */
class FakeRedis implements WatchedRedis {
  pings = 0;
  resets: (boolean | undefined)[] = [];
  constructor(
    public status: string,
    private readonly answer: 'ok' | 'error' | 'never',
  ) {}
  ping(): Promise<unknown> {
    this.pings++;
    if (this.answer === 'ok') return Promise.resolve('PONG');
    if (this.answer === 'error') return Promise.reject(new Error('Connection is closed.'));
    return new Promise(() => undefined);
  }
  disconnect(reconnect?: boolean): void {
    this.resets.push(reconnect);
  }
}

/** Watches `redis` for `ms` with 10 ms pings and a 20 ms allowance. */
async function watchFor(redis: FakeRedis, ms: number): Promise<void> {
  const watchdog = RedisWatchdog.start(redis, { intervalMs: 10, timeoutMs: 20 });
  await sleep(ms);
  watchdog.stop();
}

void describe('RedisWatchdog', () => {
  void it('resets a ready connection whose ping goes unanswered, with a reconnect', async () => {
    const redis = new FakeRedis('ready', 'never');
    let told = 0;
    const watchdog = RedisWatchdog.start(redis, {
      intervalMs: 10,
      timeoutMs: 20,
      onReset: () => {
        told++;
      },
    });
    await sleep(150);
    watchdog.stop();
    assert.ok(redis.resets.length >= 1, 'reset at least once');
    assert.ok(
      redis.resets.every((r) => r === true),
      'always disconnect(true)',
    );
    assert.equal(told, redis.resets.length);
  });

  void it('leaves alone a connection that answers, even with an error', async () => {
    for (const answer of ['ok', 'error'] as const) {
      const redis = new FakeRedis('ready', answer);
      await watchFor(redis, 100);
      assert.ok(redis.pings >= 2, `${answer}: pinged`);
      assert.deepEqual(redis.resets, [], `${answer}: never reset`);
    }
  });

  void it('does not ping or reset a connection ioredis is already re-establishing', async () => {
    for (const status of ['connecting', 'reconnecting', 'end', 'wait']) {
      const redis = new FakeRedis(status, 'never');
      await watchFor(redis, 80);
      assert.equal(redis.pings, 0, status);
      assert.deepEqual(redis.resets, [], status);
    }
  });

  void it('stops pinging once stopped', async () => {
    const redis = new FakeRedis('ready', 'ok');
    await watchFor(redis, 60);
    const pings = redis.pings;
    await sleep(60);
    assert.equal(redis.pings, pings);
  });
});
