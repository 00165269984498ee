/**
 * The firing runner while it waits for the rollout rate: a pause (or a lost leadership) and a
 * disabled or deleted rule take effect before the next target, and end the wait itself without
 * sitting out a minute's budget. Fake C2 service, clock and sleep: no database, no real waiting.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { C2Error } from '../../../cluster/errors.ts';
import type { FiringRow } from '../../../cluster/storage/index.ts';
import {
  FiringDeferred,
  FiringInterrupted,
  PASSING_FAILURE_BACKOFF_MS,
  PASSING_FAILURE_TRIES,
  runFiring,
  type AutomationC2,
  type FiringContext,
} from '../../automation/firing-runner.ts';

const T0 = Date.parse('2026-05-01T10:00:00Z');

function firing(topics: readonly string[]): FiringRow {
  return {
    id: '7',
    ruleId: '3',
    dueAt: new Date(T0),
    subject: '',
    triggerId: 't1',
    ruleVersion: 1,
    // One device a minute: the second topic waits a minute for the rate.
    snapshot: {
      action: 'rotate-topic-key',
      targets: topics.map((expr, i) => ({ id: `g${i}`, kind: 'topic', match: 'exact', expr })),
      rollout: { maxDevicesPerMinute: 1 },
    },
    coalesced: 1,
    status: 'pending',
    plannedEpoch: '1',
    finishedEpoch: null,
    attempts: 1,
    result: {},
    plannedAt: new Date(T0),
    startedAt: new Date(T0),
    finishedAt: null,
  };
}

/** A fake world: `onWait` runs when the runner first waits (the operator acts meanwhile). */
function world(onWait: () => void) {
  const rotated: string[] = [];
  const waits: number[] = [];
  let now = T0;
  const c2 = {
    getTopic: () => Promise.reject(new Error('members unknown: weight 1')),
    rotateTopicKey: (_ctx: unknown, name: string) => {
      rotated.push(name);
      return Promise.resolve({ keyVersion: 2, members: 1 });
    },
  } as unknown as AutomationC2;
  const ctx = (state: { paused: boolean; gone: boolean }): FiringContext => ({
    c2,
    clock: () => now,
    sleep: (ms) => {
      if (waits.length === 0) onWait();
      waits.push(ms);
      now += ms;
      return Promise.resolve();
    },
    signal: new AbortController().signal,
    shouldYield: () => Promise.resolve(state.paused),
    shouldStop: () => Promise.resolve(state.gone),
  });
  return { rotated, waits, ctx };
}

void describe('firing runner, waiting for the rollout rate', () => {
  void it('a pause during the wait stops the firing before its next target, promptly', async () => {
    const state = { paused: false, gone: false };
    const w = world(() => (state.paused = true));
    await assert.rejects(runFiring(firing(['a', 'b']), w.ctx(state)), FiringInterrupted);
    assert.deepEqual(w.rotated, ['a'], 'b was not rotated after the pause');
    const waited = w.waits.reduce((x, y) => x + y, 0);
    assert.ok(waited <= 1000, `the wait ended within a check interval (waited ${waited} ms)`);
  });

  void it('a rule disabled or deleted during the wait ends the firing aborted', async () => {
    const state = { paused: false, gone: false };
    const w = world(() => (state.gone = true));
    const outcome = await runFiring(firing(['a', 'b', 'c']), w.ctx(state));
    assert.equal(outcome.status, 'aborted');
    assert.deepEqual(
      { done: outcome.result.done, skipped: outcome.result.skipped },
      { done: 1, skipped: 2 },
    );
    assert.deepEqual(w.rotated, ['a']);
    assert.ok(w.waits.reduce((x, y) => x + y, 0) <= 1000, 'the wait ended promptly');
  });

  void it('without interruptions, the rate is kept: one topic a minute', async () => {
    const w = world(() => undefined);
    const outcome = await runFiring(firing(['a', 'b']), w.ctx({ paused: false, gone: false }));
    assert.equal(outcome.status, 'succeeded');
    assert.deepEqual(w.rotated, ['a', 'b']);
    assert.equal(
      w.waits.reduce((x, y) => x + y, 0),
      60_000,
    );
  });
});

void describe('firing runner, targets that cannot be resolved', () => {
  /** A firing whose pattern target the fake C2's topic list makes fail (over its time budget). */
  function patternFiring(): FiringRow {
    const row = firing([]);
    return {
      ...row,
      snapshot: {
        ...row.snapshot,
        targets: [{ id: 'g1', kind: 'topic', match: 'pattern', expr: 'plant/.*' }],
      },
    };
  }
  const context = (listTopics: () => Promise<unknown>, gone: boolean): FiringContext => ({
    c2: { listTopics } as unknown as AutomationC2,
    clock: () => T0,
    sleep: () => Promise.resolve(),
    signal: new AbortController().signal,
    shouldYield: () => Promise.resolve(false),
    shouldStop: () => Promise.resolve(gone),
  });
  const slow = (): Promise<unknown> =>
    Promise.reject(
      new C2Error('C2_VALIDATION', 'target g1 pattern took more than 250 ms over 4 name(s)'),
    );

  void it('a refusal that would repeat ends the firing failed, counted by its code', async () => {
    const outcome = await runFiring(patternFiring(), context(slow, false));
    assert.equal(outcome.status, 'failed');
    assert.deepEqual(
      { failed: outcome.result.failed, errors: outcome.result.errors },
      { failed: 1, errors: { C2_VALIDATION: 1 } },
    );
  });

  void it('a rule disabled meanwhile ends its firing aborted without resolving', async () => {
    const outcome = await runFiring(patternFiring(), context(slow, true));
    assert.equal(outcome.status, 'aborted');
  });

  void it('an unavailable database leaves the firing pending (thrown), to retry', async () => {
    const down = (): Promise<unknown> =>
      Promise.reject(new C2Error('C2_UNAVAILABLE', 'the database connection failed; retry'));
    await assert.rejects(runFiring(patternFiring(), context(down, false)), /retry/);
  });
});

/** Runs a C2 key rotation firing against `c2`, with no waits. */
function rotateC2Key(c2: AutomationC2): ReturnType<typeof runFiring> {
  const row = firing([]);
  return runFiring(
    { ...row, snapshot: { ...row.snapshot, action: 'rotate-c2-key', targets: [] } },
    {
      c2,
      clock: () => T0,
      sleep: () => Promise.resolve(),
      signal: new AbortController().signal,
      shouldYield: () => Promise.resolve(false),
    },
  );
}

void describe('firing runner, C2 key rotation', () => {
  void it('counts the devices the new C2 key goes to', async () => {
    const c2 = {
      newC2Key: () => Promise.resolve({ version: 3, fingerprint: 'ab', devices: 7 }),
    } as unknown as AutomationC2;
    const outcome = await rotateC2Key(c2);
    assert.equal(outcome.status, 'succeeded');
    assert.deepEqual(
      { done: outcome.result.done, devices: outcome.result.devices },
      { done: 1, devices: 7 },
    );
  });
});

void describe('firing runner, progress of a long rollout', () => {
  void it('records its counts so far: on resolving, then at most every progressEveryMs', async () => {
    const w = world(() => undefined);
    const saved: Array<{ at: number; targets: number; done: number }> = [];
    const base = w.ctx({ paused: false, gone: false });
    // One topic a minute: four topics take three minutes of (fake) waiting.
    const outcome = await runFiring(firing(['a', 'b', 'c', 'd']), {
      ...base,
      progressEveryMs: 90_000,
      onProgress: (p) => {
        saved.push({ at: base.clock() - T0, targets: p.targets, done: p.done });
        return Promise.resolve();
      },
    });
    assert.equal(outcome.status, 'succeeded');
    assert.deepEqual(outcome.result.targets, 4);
    // Saved during the waits for the rate too: the counts advance while the rollout waits.
    assert.deepEqual(saved, [
      { at: 0, targets: 4, done: 0 }, // targets resolved
      { at: 90_000, targets: 4, done: 2 }, // waiting for c
      { at: 180_000, targets: 4, done: 3 }, // the wait for d over
    ]);
  });
});

void describe('firing runner, progress of a paused rollout', () => {
  void it('saves its counts so far when a pause stops it, so they show while it waits', async () => {
    const state = { paused: false, gone: false };
    const w = world(() => (state.paused = true));
    const saved: number[] = [];
    const run = runFiring(firing(['a', 'b', 'c']), {
      ...w.ctx(state),
      onProgress: (p) => {
        saved.push(p.done);
        return Promise.resolve();
      },
    });
    await assert.rejects(run, FiringInterrupted);
    assert.deepEqual(w.rotated, ['a']);
    // On resolving (0 done), then when the pause stopped it: a was done.
    assert.deepEqual(saved, [0, 1]);
  });
});

void describe('firing runner, a subject whose call fails for a passing reason', () => {
  /** A C2 whose rotations of `flaky` fail with `code` the first `failures` times. */
  function flakyWorld(code: string, failures: number) {
    const calls: string[] = [];
    const waits: number[] = [];
    const saved: number[] = [];
    let now = T0;
    let left = failures;
    const c2 = {
      getTopic: () => Promise.reject(new Error('members unknown: weight 1')),
      rotateTopicKey: (_ctx: unknown, name: string) => {
        calls.push(name);
        if (name === 'flaky' && left > 0) {
          left -= 1;
          return Promise.reject(new C2Error(code as 'C2_UNAVAILABLE', 'lock topic:flaky is busy'));
        }
        return Promise.resolve({ keyVersion: 2, members: 1 });
      },
    } as unknown as AutomationC2;
    const ctx: FiringContext = {
      c2,
      clock: () => now,
      sleep: (ms) => {
        waits.push(ms);
        now += ms;
        return Promise.resolve();
      },
      signal: new AbortController().signal,
      shouldYield: () => Promise.resolve(false),
      shouldStop: () => Promise.resolve(false),
      onProgress: (p) => {
        saved.push(p.done);
        return Promise.resolve();
      },
    };
    const row = firing(['a', 'flaky', 'z']);
    const unlimited = { ...row, snapshot: { ...row.snapshot, rollout: {} } };
    return { calls, waits, saved, ctx, firing: unlimited };
  }

  void it('is tried again after a backoff, and the firing succeeds', async () => {
    const w = flakyWorld('C2_UNAVAILABLE', PASSING_FAILURE_TRIES - 1);
    const outcome = await runFiring(w.firing, w.ctx);
    assert.equal(outcome.status, 'succeeded');
    assert.deepEqual(outcome.result.errors, {});
    assert.equal(outcome.result.done, 3);
    assert.deepEqual(w.calls, ['a', 'flaky', 'flaky', 'flaky', 'z']);
    assert.equal(
      w.waits.reduce((x, y) => x + y, 0),
      PASSING_FAILURE_BACKOFF_MS * 3, // 1 s, then 2 s
    );
  });

  void it('still failing after its tries: the firing stays pending (deferred), never failed', async () => {
    const w = flakyWorld('C2_CONFLICT', 100);
    await assert.rejects(runFiring(w.firing, w.ctx), (err: unknown) => {
      assert.ok(err instanceof FiringDeferred);
      assert.match(
        err.message,
        /^topic "flaky": C2_CONFLICT: lock topic:flaky is busy \(3 tries\)/,
      );
      return true;
    });
    assert.deepEqual(w.calls, ['a', 'flaky', 'flaky', 'flaky'], 'z waits for the next run');
    assert.equal(w.saved.at(-1), 1, 'the progress so far is recorded');
  });

  void it('a refusal that would repeat is not tried again: that subject fails', async () => {
    const w = flakyWorld('C2_FAILED_PRECONDITION', 1);
    const outcome = await runFiring(w.firing, w.ctx);
    assert.equal(outcome.status, 'failed');
    assert.deepEqual(outcome.result.errors, { C2_FAILED_PRECONDITION: 1 });
    assert.deepEqual(w.calls, ['a', 'flaky', 'z']);
  });

  void it('a C2 key rotation that meets an unavailable database is deferred, not failed', async () => {
    const c2 = {
      newC2Key: () => Promise.reject(new C2Error('C2_UNAVAILABLE', 'the database is away')),
    } as unknown as AutomationC2;
    await assert.rejects(rotateC2Key(c2), FiringDeferred);
  });
});
