/**
 * A node starts with a quorum of its Redlock instances, as it runs with one: an instance that is
 * down (a site lost, a rolling restart) must not keep every node that restarts meanwhile down
 * too. The instance joins when it comes back. With fewer than a quorum the node starts too, as a
 * running node goes on: only its rotations fail until the quorum is back. While an instance is down, the operator sees it (gauges, `/readyz` entry, a log line on each change)
 * before a second one goes and rotations fail.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { pino } from 'pino';
import { Redis } from 'ioredis';
import { Lifecycle } from '../../cluster/lifecycle.ts';
import { C2Metrics } from '../../cluster/telemetry/index.ts';
import { eventually } from '../../cluster/test/support/eventually.ts';
import { freePort } from '../free-ports.ts';
import { lockService } from '../node-parts.ts';
import { redlockConfig } from './support/redlock-config.ts';
import { startPrivateRedis, type PrivateRedis } from './support/redis-server.ts';

const logger = pino({ level: 'silent' });

void describe('Redlock instances at start', () => {
  const started: PrivateRedis[] = [];
  after(async () => {
    await Promise.all(started.map((r) => r.stop()));
  });

  /** The `c2_lock_instances` / `c2_lock_quorum` figures of a scrape. */
  async function lockGauges(metrics: C2Metrics): Promise<string[]> {
    const { body } = await metrics.scrape();
    return body.split('\n').filter((line) => /^c2_lock_(instances|quorum)\b/.test(line));
  }

  void it('one of three down: the node starts, locks work, and the instance joins later', async () => {
    started.push(await startPrivateRedis(), await startPrivateRedis());
    const [one, two] = started as [PrivateRedis, PrivateRedis];
    const downPort = await freePort();
    const lifecycle = new Lifecycle(logger);
    const lines: { level: number; msg: string; redis?: string; up?: number }[] = [];
    const recording = pino(
      { level: 'info' },
      { write: (line: string) => lines.push(JSON.parse(line) as (typeof lines)[number]) },
    );
    const metrics = new C2Metrics({ node: 'api-1', role: 'api', version: 'test' });
    try {
      const { locks, readiness } = await lockService(
        redlockConfig([one.url, two.url, `redis://127.0.0.1:${downPort}`]),
        lifecycle,
        recording,
        metrics,
      );
      assert.equal(await locks.withLock('topic:t', 2000, () => Promise.resolve('held')), 'held');
      // Nothing fails, but the degraded quorum shows: 2 up, 1 down, 2 needed.
      assert.deepEqual(await lockGauges(metrics), [
        'c2_lock_instances{state="up"} 2',
        'c2_lock_instances{state="down"} 1',
        'c2_lock_quorum 2',
      ]);
      assert.equal(readiness?.name, 'redlock');
      assert.equal(readiness.required, false);
      assert.equal(await readiness.ok(), true, 'a quorum is up');

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
      assert.deepEqual((await lockGauges(metrics)).slice(0, 2), [
        'c2_lock_instances{state="up"} 3',
        'c2_lock_instances{state="down"} 0',
      ]);
      assert.ok(
        lines.some((l) => l.msg === 'Redlock instance connected' && l.redis === 'redlock-3'),
        'the return is logged',
      );

      // Two go: the node says which one left the quorum short, and readiness reports it.
      await one.stop();
      await eventually(() => {
        assert.ok(
          lines.some((l) => l.level === 40 && l.msg.startsWith('Redlock instance lost')),
          'the first loss is a warning',
        );
      });
      await two.stop();
      await eventually(() => {
        const last = lines.filter((l) => l.msg.startsWith('Redlock instance lost')).at(-1);
        assert.equal(last?.level, 50);
        assert.equal(last.up, 1);
        assert.match(last.msg, /rotations fail with UNAVAILABLE until one is back/);
      });
      assert.equal(await readiness.ok(), false);
      assert.ok(
        lines.every((l) => !JSON.stringify(l).includes('redis://')),
        'no URL in logs',
      );
    } finally {
      await lifecycle.shutdown(5000);
    }
  });

  void it('two of three down: the node starts, says so, fails rotations, and locks once one is back', async () => {
    const one = await startPrivateRedis();
    started.push(one);
    const [a, b] = [await freePort(), await freePort()];
    const lifecycle = new Lifecycle(logger);
    const lines: { level: number; msg: string; up?: number; redlockDown?: string[] }[] = [];
    const recording = pino(
      { level: 'info' },
      { write: (line: string) => lines.push(JSON.parse(line) as (typeof lines)[number]) },
    );
    try {
      const { locks, readiness } = await lockService(
        redlockConfig([one.url, `redis://127.0.0.1:${a}`, `redis://127.0.0.1:${b}`]),
        lifecycle,
        recording,
      );
      const said = lines.find(
        (l) => l.level === 50 && /Redlock instances answer at start/.test(l.msg),
      );
      assert.ok(said !== undefined, 'an error line says the quorum is short');
      assert.match(said.msg, /only 1 of 3 .*rotations fail with UNAVAILABLE until 2 do/);
      assert.equal(said.up, 1);
      assert.deepEqual(said.redlockDown, [
        `redlock-2 (127.0.0.1:${a})`,
        `redlock-3 (127.0.0.1:${b})`,
      ]);
      assert.equal(await readiness?.ok(), false, '/readyz reports it (informational)');
      await assert.rejects(
        locks.withLock('topic:t', 2000, () => Promise.resolve('held')),
        (err: Error & { code?: string }) => {
          assert.equal(err.code, 'C2_UNAVAILABLE');
          assert.match(err.message, /only 1 of 3 lock instances answered/);
          return true;
        },
      );
      // One comes back: the quorum is there again, and locks work without a restart.
      started.push(await startPrivateRedis('127.0.0.1', a));
      await eventually(async () => {
        assert.equal(await readiness?.ok(), true, 'the quorum is back');
      }, 20_000);
      assert.equal(await locks.withLock('topic:t', 2000, () => Promise.resolve('held')), 'held');
      assert.ok(
        lines.every((l) => !JSON.stringify(l).includes('redis://')),
        'no URL in logs',
      );
    } finally {
      await lifecycle.shutdown(5000);
    }
  });
});
