/**
 * The upgrade practice's keys in the shared Redis (ops/upgrade/run-keys.ts), on the Redis of
 * `REDIS_URL`: the secrecy scan (I8) finds key material in any key of the run (the device queue,
 * the automation lease, a lock with `--redlock 1`) and never reads a key of another deployment,
 * not even one whose schema starts with the run's; the clean-up removes the run's keys and only
 * them. Redis's MONITOR shows what the scan sent: no command names a foreign key.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { redisText } from '../../chaos/final-state.ts';
import { parseRollArgs } from '../upgrade/roll-args.ts';
import { cleanUpRun } from '../upgrade/run-cleanup.ts';
import { globEscape, runKeyPatterns } from '../upgrade/run-keys.ts';

const REDIS_URL = process.env['REDIS_URL'] ?? 'redis://127.0.0.1:6379';
const DATABASE_URL = 'postgres://postgres@127.0.0.1:5432/test';

void describe('upgrade practice: the run keys', () => {
  void it('names the queue, the lease and, with one Redlock instance, the run locks', () => {
    const scope = { databaseUrl: DATABASE_URL, schema: 'e4c2_upgrade_ab12', tag: 'ab12' };
    assert.deepEqual(runKeyPatterns({ ...scope, redlock: 3 }), [
      'e4c2:test:e4c2_upgrade_ab12:*',
      'e4c2:automation:leader:test:e4c2_upgrade_ab12',
    ]);
    assert.deepEqual(runKeyPatterns({ ...scope, redlock: 1 }).slice(2), [
      'e4c2:lock:{topic:upgrade/ab12/*}',
      'e4c2:lock:{client:upgrade-ab12-*}',
    ]);
    assert.equal(globEscape('a*b?c[d]e\\f'), 'a\\*b\\?c\\[d\\]e\\\\f');
  });
});

void describe('upgrade practice: the scan and the clean-up of the shared Redis', () => {
  const redis = new Redis(REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 1 });
  redis.on('error', () => undefined);
  const tag = randomBytes(3).toString('hex');
  const schema = `e4c2_upgrade_${tag}`;
  /** A device key, as a queue job's data would leak it (hex). */
  const runSecret = randomBytes(32).toString('hex');
  const foreignSecret = randomBytes(32).toString('hex');
  const run = {
    queue: `e4c2:test:${schema}:e4c2-device-sync:1`,
    lease: `e4c2:automation:leader:test:${schema}`,
    lock: `e4c2:lock:{topic:upgrade/${tag}/t0}`,
  };
  /** Another deployment's keys, one of a schema that starts with the run's. */
  const foreign = {
    queue: `e4c2:test:${schema}x:e4c2-device-sync:1`,
    other: `e4c2:test:other_${tag}:e4c2-device-sync:1`,
    lock: `e4c2:lock:{topic:elsewhere/${tag}/t0}`,
  };

  after(async () => {
    await redis.del(...Object.values(run), ...Object.values(foreign)).catch(() => undefined);
    redis.disconnect();
  });

  void it('reads every key of the run, and sends no command that names a foreign key', async () => {
    await redis.connect();
    await redis.hset(run.queue, 'data', JSON.stringify({ key: runSecret }));
    await redis.set(run.lease, 'node-a', 'PX', 60_000);
    await redis.set(run.lock, 'token-of-the-run', 'PX', 60_000);
    await redis.hset(foreign.queue, 'data', JSON.stringify({ key: foreignSecret }));
    await redis.set(foreign.other, foreignSecret);
    await redis.set(foreign.lock, foreignSecret, 'PX', 60_000);

    const monitor = await redis.duplicate().monitor();
    const sent: string[][] = [];
    monitor.on('monitor', (_time: string, args: string[]) => {
      sent.push(args);
    });
    const patterns = runKeyPatterns({ databaseUrl: DATABASE_URL, schema, tag, redlock: 1 });
    let text: string;
    try {
      text = await redisText(REDIS_URL, patterns);
      // MONITOR's stream lags the commands a little: a last command of ours marks its end.
      await redis.get(`e4c2:test:${schema}:end-of-scan`);
      const deadline = Date.now() + 5000;
      while (!sent.some((a) => a[1] === `e4c2:test:${schema}:end-of-scan`)) {
        if (Date.now() > deadline) throw new Error('MONITOR never showed the end of the scan');
        await new Promise((r) => setTimeout(r, 50));
      }
    } finally {
      monitor.disconnect();
    }

    assert.ok(text.includes(runSecret), 'key material in a queue key of the run is found');
    for (const key of Object.values(run)) assert.ok(text.includes(key), `${key} is read`);
    assert.ok(!text.includes(foreignSecret), "another deployment's values are not read");
    for (const key of Object.values(foreign)) assert.ok(!text.includes(key), `${key} is not read`);
    const named = sent.filter((a) => Object.values(foreign).some((k) => a.includes(k)));
    assert.deepEqual(named, [], 'no command names a foreign key');
    const scans = sent.filter((a) => a[0]?.toLowerCase() === 'scan');
    assert.ok(scans.length >= patterns.length, 'one scan per pattern at least');
    for (const scan of scans)
      assert.ok(patterns.includes(scan[3] ?? ''), `${scan.join(' ')} matches a run pattern`);
  });

  void it("removes the run's keys, and only them", async () => {
    const args = parseRollArgs(['--from', 'x', '--keep', '--redlock', '1'], {
      REDIS_URL,
      DATABASE_URL,
    });
    assert.ok(args !== undefined);
    const lines: string[] = [];
    await cleanUpRun(args, schema, tag, (l) => lines.push(l));
    assert.equal(await redis.exists(...Object.values(run)), 0, lines.join('\n'));
    assert.equal(await redis.exists(...Object.values(foreign)), 3);
  });
});
