/**
 * The behaviour every LockService must have, run against the in-process mutex and against Redlock
 * over 1, 3 and 5 real redis-server processes. One table, so the two implementations cannot drift
 * apart.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  InProcessLockService,
  MAX_RESOURCE_LENGTH,
  MAX_TTL_MS,
  RedlockService,
  type LockService,
  type LockServiceOptions,
} from '../../coordination/index.ts';
import { C2Error } from '../../errors.ts';
import { eventually } from '../support/eventually.ts';
import { RedisGroup } from './redis-processes.ts';
import {
  abortedWithin,
  eventRecorder,
  expectC2Error,
  gate,
  nth,
  sleep,
  stallEventLoop,
  uniqueResource,
} from './support.ts';

/** One implementation under test. */
interface Implementation {
  readonly name: string;
  setup(): Promise<void>;
  teardown(): Promise<void>;
  /**
   * `count` services that share one lock store, as `count` C2 processes would (the in-process
   * mutex is per process, so there it is the same service each time).
   */
  nodes(count: number, options?: LockServiceOptions): Promise<LockService[]>;
}

// Fast retries keep the suite short; the command timeout bounds every Redis call.
const fast = { retryDelayMs: 5, retryJitterMs: 10 } as const;

function inProcess(): Implementation {
  return {
    name: 'InProcessLockService',
    setup: () => Promise.resolve(),
    teardown: () => Promise.resolve(),
    nodes: (count, options) => {
      const service = new InProcessLockService({ ...fast, ...options });
      return Promise.resolve(Array.from({ length: count }, () => service));
    },
  };
}

function redlock(instances: number): Implementation {
  let group: RedisGroup | undefined;
  return {
    name: `RedlockService over ${instances} redis-server`,
    setup: async () => {
      group = await RedisGroup.start(instances);
    },
    teardown: async () => {
      await group?.stop();
    },
    nodes: async (count, options) => {
      const g = group;
      if (g === undefined) throw new Error('setup did not run');
      const services: LockService[] = [];
      for (let i = 0; i < count; i += 1) {
        const clients = await g.connect();
        services.push(new RedlockService({ clients, commandTimeoutMs: 200, ...fast, ...options }));
      }
      return services;
    },
  };
}

const implementations = [inProcess(), redlock(1), redlock(3), redlock(5)];

for (const impl of implementations) {
  void describe(impl.name, () => {
    before(() => impl.setup());
    after(() => impl.teardown());

    void it('never lets two holders overlap (4 nodes, 20 concurrent callers)', async () => {
      const resource = uniqueResource('topic:mutex');
      const nodes = await impl.nodes(4, { acquireTimeoutMs: 10_000 });
      let inside = 0;
      let maxInside = 0;
      let completed = 0;
      const calls = Array.from({ length: 20 }, (_, i) =>
        nth(nodes, i % nodes.length).withLock(resource, 2000, async (lease) => {
          inside += 1;
          maxInside = Math.max(maxInside, inside);
          lease.assertHeld();
          await sleep(2);
          lease.assertHeld();
          inside -= 1;
          completed += 1;
          return i;
        }),
      );
      const results = await Promise.all(calls);
      assert.equal(maxInside, 1);
      assert.equal(completed, 20);
      assert.deepEqual(
        results,
        Array.from({ length: 20 }, (_, i) => i),
      );
    });

    void it('does not make other resources wait', async () => {
      const rec = eventRecorder();
      const [a, b] = await impl.nodes(2, { acquireTimeoutMs: 300, onEvent: rec.onEvent });
      assert.ok(a !== undefined && b !== undefined);
      const held = gate();
      const first = uniqueResource('topic:a');
      const second = uniqueResource('topic:b');
      const holding = a.withLock(first, 2000, () => held.opened);
      try {
        await sleep(20);
        const started = performance.now();
        assert.equal(await b.withLock(second, 2000, () => Promise.resolve('free')), 'free');
        // Far below the other lock's 2 s hold: not blocked by it (headroom for a loaded box).
        assert.ok(performance.now() - started < 1000);
        const acquired = rec.of(second, 'acquired')[0];
        assert.equal(acquired?.type === 'acquired' && acquired.failedAttempts, 0);
      } finally {
        held.open();
        await holding;
      }
    });

    void it('extends the lease so an operation longer than 3x the TTL keeps the lock', async () => {
      const rec = eventRecorder();
      const [holder, contender] = await impl.nodes(2, {
        onEvent: rec.onEvent,
        acquireTimeoutMs: 300,
      });
      assert.ok(holder !== undefined && contender !== undefined);
      const resource = uniqueResource('topic:long');
      // Long enough that an extension survives a stalled event loop on a loaded CI box.
      const ttlMs = 600;
      const outcome = await holder
        .withLock(resource, ttlMs, async (lease) => {
          const started = performance.now();
          await sleep(50);
          // While the holder works, another node cannot get in, even past several TTLs.
          const err = await expectC2Error(
            () => contender.withLock(resource, ttlMs, () => Promise.resolve()),
            ['C2_UNAVAILABLE'],
          );
          assert.match(err.message, new RegExp(resource));
          await sleep(Math.max(0, started + 3.5 * ttlMs - performance.now()));
          assert.equal(lease.signal.aborted, false);
          lease.assertHeld();
          assert.ok(lease.remainingMs() > 0 && lease.remainingMs() <= ttlMs);
          return 'done';
        })
        .catch((err: unknown) => err);
      assert.equal(outcome, 'done');
      assert.ok(rec.of(resource, 'extended').length >= 3, 'extended at least once per TTL');
      assert.equal(rec.of(resource, 'lost').length, 0);
    });

    void it('aborts the signal and fails assertHeld once the lease ran out (stalled event loop)', async () => {
      const rec = eventRecorder();
      const [holder, next] = await impl.nodes(2, { onEvent: rec.onEvent, acquireTimeoutMs: 1000 });
      assert.ok(holder !== undefined && next !== undefined);
      const resource = uniqueResource('topic:stall');
      const result = await holder.withLock(resource, 100, async (lease) => {
        stallEventLoop(300); // nothing can extend the lease meanwhile
        const err = await expectC2Error(() => {
          lease.assertHeld();
        }, ['C2_UNAVAILABLE', 'C2_CONFLICT']);
        // The message reaches API callers: it names the lock and says why it was lost.
        assert.ok(
          err.message.startsWith(`lock lease lost on resource "${resource}": `),
          err.message,
        );
        assert.match(err.message, /expired before an extension was confirmed|held by another/);
        assert.equal(err.details?.resource, resource);
        assert.equal(lease.signal.aborted, true);
        assert.equal(lease.signal.reason, err);
        assert.equal(lease.remainingMs(), 0);
        // The lock is free for the next holder although this work has not finished.
        assert.equal(await next.withLock(resource, 1000, () => Promise.resolve('next')), 'next');
        return 'late';
      });
      assert.equal(result, 'late', 'withLock returns the outcome of work even after a loss');
      assert.equal(rec.of(resource, 'lost').length, 1);
    });

    void it("never lets a stale holder's release free the next holder's lock", async () => {
      // One nodes() call: the in-process mutex is shared only by the services it returns.
      const [stale, current, third] = await impl.nodes(3, { acquireTimeoutMs: 300 });
      assert.ok(stale !== undefined && current !== undefined && third !== undefined);
      const resource = uniqueResource('topic:stale-release');
      const held = gate();
      let holding: Promise<void> | undefined;
      await stale.withLock(resource, 100, async (lease) => {
        stallEventLoop(250);
        assert.equal(await abortedWithin(lease.signal, 500), true);
        const currentHolds = gate();
        holding = current.withLock(resource, 5000, () => {
          currentHolds.open();
          return held.opened;
        });
        await currentHolds.opened; // the new holder is in before the stale one releases
      });
      try {
        // The stale holder has released by now; the lock must still be the new holder's.
        await expectC2Error(
          () => third.withLock(resource, 1000, () => Promise.resolve()),
          ['C2_UNAVAILABLE'],
        );
      } finally {
        held.open();
        await holding;
      }
    });

    void it('throws C2_UNAVAILABLE naming the resource when the lock stays held', async () => {
      const rec = eventRecorder();
      const [holder, waiter] = await impl.nodes(2, { onEvent: rec.onEvent, acquireTimeoutMs: 300 });
      assert.ok(holder !== undefined && waiter !== undefined);
      const resource = uniqueResource('topic:busy');
      const held = gate();
      const holding = holder.withLock(resource, 5000, () => held.opened);
      try {
        await sleep(20);
        let ran = false;
        const started = performance.now();
        const err = await expectC2Error(
          () =>
            waiter.withLock(resource, 5000, () => {
              ran = true;
              return Promise.resolve();
            }),
          ['C2_UNAVAILABLE'],
        );
        const elapsed = performance.now() - started;
        assert.ok(elapsed >= 290 && elapsed < 300 + 2 * 200 + 300, `gave up after ${elapsed} ms`);
        assert.equal(ran, false);
        assert.ok(err.message.includes(`"${resource}"`));
        assert.equal(err.details?.resource, resource);
        assert.equal(rec.of(resource, 'acquire-timeout').length, 1);
      } finally {
        held.open();
        await holding;
      }
    });

    void it('releases on success and on failure, so the next caller does not wait', async () => {
      const rec = eventRecorder();
      const [a, b] = await impl.nodes(2, { onEvent: rec.onEvent });
      assert.ok(a !== undefined && b !== undefined);
      const resource = uniqueResource('topic:release');
      const boom = new Error('boom');
      await assert.rejects(
        a.withLock(resource, 5000, () => Promise.reject(boom)),
        (err) => err === boom,
      );
      await b.withLock(resource, 5000, () => Promise.resolve());
      await a.withLock(resource, 5000, () => Promise.resolve());
      const acquired = rec.of(resource, 'acquired');
      assert.equal(acquired.length, 3);
      for (const e of acquired) assert.equal(e.type === 'acquired' && e.failedAttempts, 0);
      // Reported once every instance has answered, which may be after withLock returned.
      await eventually(() => {
        assert.equal(rec.of(resource, 'released').length, 3);
      });
    });

    void it('reports acquire latency and contention', async () => {
      const rec = eventRecorder();
      const [a, b] = await impl.nodes(2, { onEvent: rec.onEvent });
      assert.ok(a !== undefined && b !== undefined);
      const resource = uniqueResource('topic:metrics');
      // Gates, not sleeps, order the two: B starts only once A holds the lock, and A lets go
      // 150 ms after B started (a stall only makes B wait longer).
      const aHolds = gate();
      const aMayRelease = gate();
      const first = a.withLock(resource, 2000, () => {
        aHolds.open();
        return aMayRelease.opened;
      });
      await aHolds.opened;
      const second = b.withLock(resource, 2000, () => Promise.resolve());
      await sleep(150);
      aMayRelease.open();
      await second;
      await first;
      const waited = rec.of(resource, 'acquired')[1];
      assert.ok(waited?.type === 'acquired');
      assert.ok(waited.failedAttempts >= 1, 'contention counted');
      assert.ok(waited.waitMs >= 100, `latency ${waited.waitMs} ms`);
    });

    void it('scopes the lease to withLock', async () => {
      const [node] = await impl.nodes(1);
      assert.ok(node !== undefined);
      const resource = uniqueResource('topic:scope');
      const lease = await node.withLock(resource, 1000, (l) => Promise.resolve(l));
      assert.equal(lease.resource, resource);
      assert.equal(lease.signal.aborted, true);
      assert.equal(lease.remainingMs(), 0);
      await expectC2Error(() => {
        lease.assertHeld();
      }, ['C2_INTERNAL']);
    });

    void it('measures leases on a monotonic clock: wall-clock steps change nothing', async () => {
      const rec = eventRecorder();
      const [node] = await impl.nodes(1, { onEvent: rec.onEvent });
      assert.ok(node !== undefined);
      const resource = uniqueResource('topic:clock');
      const realNow = Date.now.bind(Date);
      try {
        await node.withLock(resource, 500, async (lease) => {
          Date.now = () => realNow() + 3_600_000; // NTP steps the clock an hour ahead
          await sleep(600);
          lease.assertHeld();
          Date.now = () => realNow() - 3_600_000; // ... and then an hour back
          await sleep(600);
          lease.assertHeld();
          assert.ok(lease.remainingMs() <= 500);
        });
      } finally {
        Date.now = realNow;
      }
      assert.ok(rec.of(resource, 'extended').length >= 2);
      assert.equal(rec.of(resource, 'lost').length, 0);
    });

    void it('rejects malformed resources and TTLs without locking', async () => {
      const [node] = await impl.nodes(1);
      assert.ok(node !== undefined);
      let ran = false;
      const work = (): Promise<void> => {
        ran = true;
        return Promise.resolve();
      };
      for (const [resource, ttl] of [
        ['', 1000],
        ['x'.repeat(MAX_RESOURCE_LENGTH + 1), 1000],
        ['topic:t', 0],
        ['topic:t', 5],
        ['topic:t', 1.5],
        ['topic:t', MAX_TTL_MS + 1],
        ['topic:t', Number.NaN],
      ] as const) {
        const err = await expectC2Error(
          () => node.withLock(resource, ttl, work),
          ['C2_VALIDATION'],
        );
        assert.ok(C2Error.is(err));
      }
      assert.equal(ran, false);
    });

    void it('keeps working after a lost lease and a stalled loop (no stale state)', async () => {
      const [node] = await impl.nodes(1, { acquireTimeoutMs: 1000 });
      assert.ok(node !== undefined);
      const resource = uniqueResource('topic:after-loss');
      await node.withLock(resource, 50, async (lease) => {
        stallEventLoop(120);
        assert.equal(await abortedWithin(lease.signal, 500), true);
      });
      const value = await node.withLock(resource, 1000, (lease) => {
        lease.assertHeld();
        return Promise.resolve(42);
      });
      assert.equal(value, 42);
    });
  });
}
