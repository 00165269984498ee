/**
 * Redlock-specific behaviour over real redis-server processes: quorum arithmetic with hung
 * (SIGSTOP) and unreachable instances, leases lost during a hold, release failures, locks that
 * expire on arrival, drift allowance, key layout and minority cleanup. The behaviour shared with
 * the in-process lock is in lock-service.test.ts.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import {
  lockKey,
  RedlockService,
  type RedlockClient,
  type RedlockOptions,
} from '../../coordination/index.ts';
import { eventually, pendingAfter } from '../support/eventually.ts';
import { freePort } from '../../../bin/free-ports.ts';
import { RedisGroup } from './redis-processes.ts';
import {
  abortedWithin,
  eventRecorder,
  expectC2Error,
  nth,
  sleep,
  uniqueResource,
} from './support.ts';

const COMMAND_TIMEOUT_MS = 100;

void describe('RedlockService over independent redis-server processes', () => {
  let group: RedisGroup;
  const deadClients: Redis[] = [];

  before(async () => {
    group = await RedisGroup.start(5);
  });
  after(async () => {
    for (const c of deadClients) c.disconnect();
    await group.stop();
  });

  /** A service over the first `instances` servers, through a fresh set of connections. */
  async function service(
    instances: number,
    options: Partial<RedlockOptions> = {},
  ): Promise<RedlockService> {
    const clients = (await group.connect()).slice(0, instances);
    return new RedlockService({
      clients,
      commandTimeoutMs: COMMAND_TIMEOUT_MS,
      retryDelayMs: 5,
      retryJitterMs: 10,
      ...options,
    });
  }

  /** A client of an instance that is down: nothing listens on its port. */
  async function deadClient(): Promise<Redis> {
    const client = new Redis({
      host: '127.0.0.1',
      port: await freePort(),
      maxRetriesPerRequest: 1,
      retryStrategy: () => 50,
    });
    client.on('error', () => undefined);
    deadClients.push(client);
    return client;
  }

  function server(index: number): { pause(): void; resume(): void } {
    const s = group.servers[index];
    if (s === undefined) throw new Error(`no server ${index}`);
    return s;
  }

  for (const n of [1, 3, 5]) {
    const tolerated = Math.floor((n - 1) / 2);
    void it(`over ${n}: locks with ${tolerated} instance(s) hung, fails fast with ${tolerated + 1}`, async () => {
      const rec = eventRecorder();
      const locks = await service(n, { acquireTimeoutMs: 400, onEvent: rec.onEvent });
      assert.equal(locks.quorum, tolerated + 1);
      const resource = uniqueResource('topic:quorum');
      try {
        for (let i = 0; i < tolerated; i += 1) server(n - 1 - i).pause();
        if (tolerated > 0) {
          assert.equal(await locks.withLock(resource, 1000, () => Promise.resolve('ok')), 'ok');
          const acquired = rec.of(resource, 'acquired')[0];
          // The quorum answered at once: the hung minority was not waited for.
          assert.ok(acquired?.type === 'acquired' && acquired.waitMs < COMMAND_TIMEOUT_MS);
        }
        server(n - 1 - tolerated).pause();
        const before = rec.of(resource, 'attempt-failed').length;
        const started = performance.now();
        const err = await expectC2Error(
          () => locks.withLock(resource, 1000, () => Promise.resolve()),
          ['C2_UNAVAILABLE'],
        );
        const elapsed = performance.now() - started;
        assert.ok(elapsed < 400 + 2 * COMMAND_TIMEOUT_MS + 300, `gave up after ${elapsed} ms`);
        assert.match(err.message, /lock instances answered/);
        assert.equal(err.details?.resource, resource);
        // Paused instances keep their connections open and never answer: timeouts, not errors.
        const hung = Array.from({ length: tolerated + 1 }, (_, i) => n - 1 - i).reverse();
        const attempts = rec.of(resource, 'attempt-failed').slice(before);
        assert.ok(attempts.length > 0);
        for (const a of attempts) {
          assert.deepEqual(a.type === 'attempt-failed' && a.timedOutInstances, hung);
        }
      } finally {
        group.resumeAll();
      }
    });
  }

  void it('counts an unreachable instance (connection refused) as a "no" vote', async () => {
    const rec = eventRecorder();
    const [a, b] = await group.connect();
    assert.ok(a !== undefined && b !== undefined);
    const dead = await deadClient();
    const locks = new RedlockService({
      clients: [a, b, dead],
      commandTimeoutMs: COMMAND_TIMEOUT_MS,
      onEvent: rec.onEvent,
    });
    const resource = uniqueResource('topic:refused');
    assert.equal(await locks.withLock(resource, 1000, () => Promise.resolve(7)), 7);
    // Reported once the unreachable instance's command failed, after withLock returned.
    await eventually(() => {
      const release = rec.of(resource, 'release-failed')[0];
      assert.deepEqual(release?.type === 'release-failed' && release.failedInstances, [2]);
    });

    const minority = new RedlockService({
      clients: [a, dead, await deadClient()],
      commandTimeoutMs: COMMAND_TIMEOUT_MS,
      acquireTimeoutMs: 200,
    });
    const started = performance.now();
    await expectC2Error(
      () => minority.withLock(resource, 1000, () => Promise.resolve()),
      ['C2_UNAVAILABLE'],
    );
    assert.ok(performance.now() - started < 200 + 2 * COMMAND_TIMEOUT_MS + 300);
  });

  void it('releases without waiting for a hung minority: the lock is free once a quorum let go', async () => {
    // A command timeout far above the bound checked below: a release that waited for the hung
    // instance would still be pending when the check runs.
    const slow = { commandTimeoutMs: 120_000, acquireTimeoutMs: 60_000 };
    const rec = eventRecorder();
    const locks = await service(3, { ...slow, onEvent: rec.onEvent });
    const next = await service(3, slow);
    const admin = await group.admin(2);
    const resource = uniqueResource('topic:release-hung-minority');
    server(2).pause();
    try {
      const call = locks.withLock(resource, 60_000, () => Promise.resolve('done'));
      assert.equal(await pendingAfter(call, 10_000), false, 'withLock waited for the hung one');
      assert.equal(await call, 'done');
      // Freed on the two that answered: another node takes it at once, the hung one still paused.
      assert.equal(
        await pendingAfter(
          next.withLock(resource, 60_000, () => Promise.resolve()),
          10_000,
        ),
        false,
      );
      assert.deepEqual(rec.of(resource, 'released'), [], 'reported when every instance answered');
    } finally {
      group.resumeAll();
    }
    // The queued release runs on resume: the key is gone there too, and the release is reported.
    await eventually(async () => {
      assert.equal(await admin.exists(lockKey(resource)), 0);
      assert.equal(rec.of(resource, 'released').length, 1);
    });
  });

  void it('keeps mutual exclusion while one of three instances hangs', async () => {
    const nodes = await Promise.all([1, 2, 3].map(() => service(3, { acquireTimeoutMs: 10_000 })));
    const resource = uniqueResource('topic:mutex-degraded');
    let inside = 0;
    let maxInside = 0;
    server(2).pause();
    try {
      await Promise.all(
        Array.from({ length: 9 }, (_, i) =>
          nth(nodes, i % 3).withLock(resource, 2000, async (lease) => {
            inside += 1;
            maxInside = Math.max(maxInside, inside);
            await sleep(2);
            lease.assertHeld();
            inside -= 1;
          }),
        ),
      );
    } finally {
      group.resumeAll();
    }
    assert.equal(maxInside, 1);
  });

  void it('aborts the lease when a majority hangs during the hold, and still returns', async () => {
    const rec = eventRecorder();
    const locks = await service(3, { onEvent: rec.onEvent });
    const resource = uniqueResource('topic:partition');
    const started = performance.now();
    try {
      // TTL 600: the first extension starts ~200 ms before expiry and times out ~100 ms later,
      // well before the expiry timer, so an extend-failed event is always seen first.
      const result = await locks.withLock(resource, 600, async (lease) => {
        server(1).pause();
        server(2).pause();
        assert.equal(await abortedWithin(lease.signal, 1500), true, 'signal aborted');
        const err = await expectC2Error(() => {
          lease.assertHeld();
        }, ['C2_UNAVAILABLE']);
        assert.equal(err.details?.reason, 'expired');
        return 'returned';
      });
      assert.equal(result, 'returned');
    } finally {
      group.resumeAll();
    }
    assert.ok(performance.now() - started < 600 + 4 * COMMAND_TIMEOUT_MS + 500);
    assert.ok(rec.of(resource, 'extend-failed').length >= 1);
    assert.equal(rec.of(resource, 'lost').length, 1);
    const release = rec.of(resource, 'release-failed')[0];
    assert.deepEqual(release?.type === 'release-failed' && release.failedInstances, [1, 2]);
  });

  void it('reports a failed release and does not throw it; the late release still cleans up', async () => {
    const rec = eventRecorder();
    const locks = await service(3, { onEvent: rec.onEvent });
    const admins = await Promise.all([0, 1, 2].map((i) => group.admin(i)));
    const resource = uniqueResource('topic:release-failure');
    const key = lockKey(resource);
    const started = performance.now();
    try {
      const value = await locks.withLock(resource, 10_000, () => {
        server(1).pause();
        server(2).pause();
        return Promise.resolve('committed');
      });
      assert.equal(value, 'committed');
      assert.ok(performance.now() - started < COMMAND_TIMEOUT_MS + 400, 'release is bounded');
      const failure = rec.of(resource, 'release-failed')[0];
      assert.ok(failure?.type === 'release-failed');
      assert.deepEqual(failure.failedInstances, [1, 2]);
      assert.ok(failure.error instanceof Error);
    } finally {
      group.resumeAll();
    }
    // The release commands were queued on the paused servers' connections and run on resume.
    await eventually(async () => {
      for (const admin of admins) assert.equal(await admin.exists(key), 0);
    }, 3000);
  });

  void it('loses the lease with C2_CONFLICT when its key is deleted on a majority', async () => {
    const rec = eventRecorder();
    const locks = await service(3, { onEvent: rec.onEvent });
    const admins = await Promise.all([0, 1, 2].map((i) => group.admin(i)));
    const resource = uniqueResource('topic:deleted');
    const key = lockKey(resource);
    // A TTL long enough that the next extension, not expiry, finds the key gone even when the
    // event loop stalls on a loaded box.
    await locks.withLock(resource, 1000, async (lease) => {
      await heldEverywhere(admins, key);
      await Promise.all(admins.slice(0, 2).map((a) => a.del(key)));
      assert.equal(await abortedWithin(lease.signal, 3000), true);
      const err = await expectC2Error(() => {
        lease.assertHeld();
      }, ['C2_CONFLICT']);
      assert.equal(
        err.message,
        `lock lease lost on resource "${resource}": the lock store reports it held by another caller or gone`,
      );
      assert.equal(err.details?.reason, 'taken');
    });
    const lost = rec.of(resource, 'lost')[0];
    assert.ok(lost?.type === 'lost' && lost.reason === 'taken');
  });

  void it('survives its key vanishing on a minority (early expiry on a fast-clock server)', async () => {
    const rec = eventRecorder();
    const locks = await service(3, { onEvent: rec.onEvent });
    const admins = await Promise.all([0, 1, 2].map((i) => group.admin(i)));
    const resource = uniqueResource('topic:minority-expiry');
    await locks.withLock(resource, 500, async (lease) => {
      await heldEverywhere(admins, lockKey(resource));
      await nth(admins, 0).del(lockKey(resource));
      await sleep(1200);
      lease.assertHeld();
    });
    assert.ok(rec.of(resource, 'extended').length >= 2);
    assert.equal(rec.of(resource, 'lost').length, 0);
  });

  void it('releases and retries a lock that expired on arrival (slow answers)', async () => {
    const rec = eventRecorder();
    // First replies arrive after the 300 ms TTL; the retry is answered at once.
    const clients = (await group.connect()).slice(0, 3).map((c) => slowFirstReply(c, 400));
    const locks = new RedlockService({
      clients,
      commandTimeoutMs: 1000,
      retryDelayMs: 5,
      onEvent: rec.onEvent,
    });
    const resource = uniqueResource('topic:late');
    const remaining = await locks.withLock(resource, 300, (lease) => {
      lease.assertHeld();
      return Promise.resolve(lease.remainingMs());
    });
    assert.ok(remaining > 50, `remaining ${remaining} ms`);
    const failed = rec.of(resource, 'attempt-failed')[0];
    assert.ok(failed?.type === 'attempt-failed');
    assert.equal(failed.expiredOnArrival, true);
    // A quorum granted (the vote resolves as soon as it has one), but too late to be a lock.
    assert.ok(failed.granted >= 2);
    const acquired = rec.of(resource, 'acquired')[0];
    assert.ok(acquired?.type === 'acquired' && acquired.failedAttempts === 1);
  });

  void it('subtracts the clock-drift allowance from the validity', async () => {
    const locks = await service(3, { driftFactor: 0.2 });
    const remaining = await locks.withLock(uniqueResource('topic:drift'), 1000, (lease) =>
      Promise.resolve(lease.remainingMs()),
    );
    // 1000 - (round(1000 * 0.2) + 2) = 798, minus the time the acquisition took.
    // Not above 798; the lower bound leaves the acquisition room on a loaded box.
    assert.ok(remaining <= 798 && remaining > 500, `remaining ${remaining} ms`);
  });

  void it('uses prefixed, hash-tagged keys holding a fresh random value per call', async () => {
    const locks = await service(3);
    const admins = await Promise.all([0, 1, 2].map((i) => group.admin(i)));
    const resource = `${uniqueResource('topic')}:a{b}%`;
    const key = lockKey(resource);
    assert.ok(key.startsWith('e4c2:lock:{topic:') && key.endsWith(':a%7Bb%7D%25}'));
    const values: string[] = [];
    for (let round = 0; round < 2; round += 1) {
      await locks.withLock(resource, 5000, async () => {
        const value = await heldEverywhere(admins, key);
        assert.match(value, /^[0-9a-f]{32}$/);
        const ttls = await Promise.all(admins.map((a) => a.pttl(key)));
        for (const ttl of ttls) assert.ok(ttl > 0 && ttl <= 5000);
        values.push(value);
      });
      for (const a of admins) assert.equal(await a.exists(key), 0, 'released everywhere');
    }
    assert.notEqual(values[0], values[1]);
    assert.equal(lockKey('x', 'p:'), 'p:{x}');
    assert.notEqual(lockKey('a}b'), lockKey('a%7Db'));
  });

  void it('cleans up a minority grant after a failed attempt', async () => {
    const rec = eventRecorder();
    const locks = await service(3, { acquireTimeoutMs: 150, onEvent: rec.onEvent });
    const admins = await Promise.all([0, 1, 2].map((i) => group.admin(i)));
    const resource = uniqueResource('topic:minority');
    const key = lockKey(resource);
    await admins[0]?.set(key, 'someone-else', 'PX', 10_000);
    await admins[1]?.set(key, 'someone-else', 'PX', 10_000);
    const err = await expectC2Error(
      () => locks.withLock(resource, 5000, () => Promise.resolve()),
      ['C2_UNAVAILABLE'],
    );
    assert.match(err.message, /still held elsewhere/);
    const attempt = rec.of(resource, 'attempt-failed')[0];
    assert.ok(attempt?.type === 'attempt-failed');
    assert.equal(attempt.granted, 1);
    assert.equal(attempt.heldElsewhere, 2);
    assert.equal(await admins[2]?.exists(key), 0, 'our minority key was removed');
    assert.equal(await admins[0]?.get(key), 'someone-else', "the other holder's key is untouched");
  });

  void it('rejects an empty, even or duplicated instance list and bad options', async () => {
    const [a, b, c] = await group.connect();
    assert.ok(a !== undefined && b !== undefined && c !== undefined);
    const bad: RedlockOptions[] = [
      { clients: [] },
      { clients: [a, b] },
      { clients: [a, a, b] },
      { clients: [a], driftFactor: 0.9 },
      { clients: [a], commandTimeoutMs: 0 },
      { clients: [a], keyPrefix: 'x{' },
      { clients: [a], acquireTimeoutMs: -1 },
    ];
    for (const options of bad) {
      await expectC2Error(() => new RedlockService(options), ['C2_CONFIG']);
    }
    assert.equal(new RedlockService({ clients: [a, b, c] }).quorum, 2);
  });
});

/**
 * Waits until every instance holds the same value under `key` and returns it: `withLock` starts
 * as soon as a quorum granted, so the last SET may still be in flight.
 */
function heldEverywhere(admins: readonly Redis[], key: string): Promise<string> {
  return eventually(async () => {
    const seen = await Promise.all(admins.map((a) => a.get(key)));
    const first = seen[0];
    assert.ok(typeof first === 'string', 'a value was read');
    assert.ok(
      seen.every((v) => v === first),
      'every instance holds the same value',
    );
    return first;
  }, 1000);
}

/** Delays the first successful reply of a client, as a slow network or a GC pause would. */
function slowFirstReply(client: Redis, delayMs: number): RedlockClient {
  let delayed = false;
  const slow = async (reply: Promise<unknown>): Promise<unknown> => {
    const value = await reply;
    if (!delayed) {
      delayed = true;
      await sleep(delayMs);
    }
    return value;
  };
  return {
    evalsha: (sha, numkeys, ...args) => slow(client.evalsha(sha, numkeys, ...args)),
    eval: (script, numkeys, ...args) => slow(client.eval(script, numkeys, ...args)),
  };
}
