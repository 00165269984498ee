/**
 * A node that stops closes its Redlock connections itself: that is no lost instance. Logged as
 * one, every orderly stop of a rolling upgrade wrote a warning (`Redlock instance lost`) and, had
 * the second close been logged before the exit, an error saying rotations fail: found by the
 * upgrade practice (ops/upgrade/), which requires nodes to log no warning while they are rolled.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { pino } from 'pino';
import { Lifecycle } from '../../cluster/lifecycle.ts';
import { lockService } from '../node-parts.ts';
import { redlockConfig } from './support/redlock-config.ts';
import { startPrivateRedis, type PrivateRedis } from './support/redis-server.ts';

void describe('Redlock instances at a node shutdown', () => {
  const servers: PrivateRedis[] = [];
  after(async () => {
    await Promise.all(servers.map((s) => s.stop()));
  });

  void it('logs no instance lost when the node closes the connections itself', async () => {
    servers.push(await startPrivateRedis(), await startPrivateRedis(), await startPrivateRedis());
    const urls = servers.map((s) => s.url);
    const lines: Array<{ level: number; msg: string }> = [];
    const recording = pino(
      { level: 'info' },
      { write: (line: string) => lines.push(JSON.parse(line) as (typeof lines)[number]) },
    );
    const lifecycle = new Lifecycle(recording);
    const config = redlockConfig(urls);
    const { locks } = await lockService(config, lifecycle, recording);
    assert.equal(await locks.withLock('topic:t', 2000, () => Promise.resolve('held')), 'held');

    assert.equal(await lifecycle.shutdown(5000), true, 'the shutdown is clean');
    // The connections' `close` events come after QUIT is answered: give them time to arrive.
    await new Promise((resolve) => setTimeout(resolve, 500));
    const lost = lines.filter((l) => l.msg.startsWith('Redlock instance lost'));
    assert.deepEqual(lost, [], 'no instance reported lost by the node that closed it');
    assert.ok(
      lines.every((l) => l.level < 40),
      `no warning or error at shutdown: ${JSON.stringify(lines.filter((l) => l.level >= 40))}`,
    );
  });
});
