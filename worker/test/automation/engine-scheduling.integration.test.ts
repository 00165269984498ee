/**
 * The engine on the real Postgres with a fake clock, a fake C2 service and a sleep that only ends
 * when the engine stops (a rollout wait that lasts as long as the test wants): a slow firing holds
 * back neither planning nor other rules, the concurrency bound holds, a deleted or disabled rule's
 * firing stops before its next target, and a disabled rule does not pile up its schedule.
 */
import assert from 'node:assert/strict';
import { after, afterEach, before, describe, it } from 'node:test';
import { InProcessLeaderLease, LeaderElection } from '../../../cluster/coordination/index.ts';
import { AutomationService } from '../../../cluster/domain/index.ts';
import { C2Error } from '../../../cluster/errors.ts';
import { PgAutomationStore, type AutomationRuleRow } from '../../../cluster/storage/index.ts';
import { eventually } from '../../../cluster/test/support/eventually.ts';
import { createTestSchema, type TestSchema } from '../../../cluster/test/support/postgres.ts';
import { AutomationEngine, type AutomationC2 } from '../../automation/index.ts';
import type { Sleep } from '../../automation/rollout-policy.ts';
import { TEST_AUTOMATION_CAPABILITIES } from '../../../cluster/test/support/test-service.ts';

const ctx = { actor: 'test' };

/** Rejects when `promise` takes longer than `ms` (a tick that waits on a firing never returns). */
async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      reject(new Error(`${what} took more than ${ms} ms`));
    }, ms);
  });
  try {
    return await Promise.race([promise, late]);
  } finally {
    clearTimeout(timer);
  }
}

/** Sleeps until the engine stops: a rollout wait longer than the test. */
const waitForever: Sleep = (_ms, signal) =>
  new Promise((resolve) => {
    if (signal.aborted) resolve();
    signal.addEventListener(
      'abort',
      () => {
        resolve();
      },
      { once: true },
    );
  });

void describe('automation engine scheduling (fake clock)', () => {
  let schema: TestSchema;
  let store: PgAutomationStore;
  let admin: AutomationService;
  let now = 0;
  let rotated: string[] = [];
  let onRotate: (name: string) => Promise<void> = () => Promise.resolve();
  const noTopicList = (): Promise<unknown> => Promise.reject(new Error('no topic list here'));
  let listTopics = noTopicList;
  const engines: AutomationEngine[] = [];
  const errors: unknown[] = [];
  /** Firings that ended (or were interrupted), as the engine's observer is told. */
  const ended: string[] = [];
  /** Firings that ended, as the observer's `finished` gives them (what the node logs). */
  const finished: Array<{ id: string; status: string; errors: Record<string, number> }> = [];
  const rules: AutomationRuleRow[] = [];

  const c2 = {
    listTopics: () => listTopics(),
    getTopic: () => Promise.reject(new Error('members unknown: weight 1')),
    rotateTopicKey: async (_ctx: unknown, name: string) => {
      rotated.push(name);
      await onRotate(name);
      return { keyVersion: 2, members: 1 };
    },
  } as unknown as AutomationC2;

  const engine = async (maxConcurrentFirings?: number): Promise<AutomationEngine> => {
    const election = new LeaderElection({
      lease: new InProcessLeaderLease(),
      epochs: store.read,
      nodeId: `n${engines.length}`,
      ttlMs: 600_000,
    });
    await election.step();
    const e = new AutomationEngine({
      store,
      c2,
      election,
      clock: () => now,
      sleep: waitForever,
      ...(maxConcurrentFirings === undefined ? {} : { maxConcurrentFirings }),
      observer: {
        firing: (outcome) => {
          if (outcome !== 'planned') ended.push(outcome);
        },
        finished: (firing, outcome) => {
          finished.push({ id: firing.id, status: outcome.status, errors: outcome.result.errors });
        },
      },
      onError: (err) => {
        errors.push(err);
      },
    });
    engines.push(e);
    return e;
  };
  const rule = async (
    everySeconds: number,
    topics: string[],
    rollout: Record<string, number> = {},
  ): Promise<AutomationRuleRow> => {
    const r = await admin.createRule(ctx, {
      action: 'rotate-topic-key',
      triggers: [{ kind: 'interval', everySeconds }],
      targets: topics.map((expr) => ({ kind: 'topic', match: 'exact', expr })),
      rollout,
    });
    rules.push(r);
    return r;
  };
  const firings = async (r: AutomationRuleRow) => (await admin.listFirings(r.id, 100)).reverse();
  const setEnabled = async (r: AutomationRuleRow, enabled: boolean): Promise<void> => {
    await admin.updateRule(ctx, r.id, { ...(await admin.getRule(r.id)), enabled });
  };

  before(async () => {
    schema = await createTestSchema();
    store = new PgAutomationStore(schema.pool);
    admin = new AutomationService(store, TEST_AUTOMATION_CAPABILITIES);
  });
  afterEach(async () => {
    for (const e of engines.splice(0)) await e.stop();
    assert.deepEqual(errors.splice(0), [], 'no engine errors');
    for (const r of rules.splice(0)) await admin.deleteRule(ctx, r.id).catch(() => undefined);
    rotated = [];
    ended.length = 0;
    finished.length = 0;
    onRotate = () => Promise.resolve();
    listTopics = noTopicList;
    await admin.resume(ctx);
  });
  after(async () => {
    await schema.drop();
  });

  void it('a firing waiting on its rollout rate holds back neither planning nor other rules', async () => {
    // Two topics at one device a minute: the second waits (here until the engine stops).
    const slow = await rule(5, ['slow/1', 'slow/2'], { maxDevicesPerMinute: 1 });
    const fast = await rule(10, ['fast/1']);
    const e = await engine();
    now = fast.createdAt.getTime() + 10_000;
    const first = await within(e.tick(), 5000, 'a tick');
    assert.equal(first.planned, 3, 'slow: two slots, fast: one');
    await eventually(async () => {
      assert.deepEqual(
        (await firings(fast)).map((f) => f.status),
        ['succeeded'],
      );
    });
    // The next slot of the fast rule is planned and fired while the slow firing still waits.
    now += 10_000;
    await within(e.tick(), 5000, 'a tick');
    await eventually(async () => {
      assert.deepEqual(
        (await firings(fast)).map((f) => f.status),
        ['succeeded', 'succeeded'],
      );
    });
    // One firing at a time per rule: the slow rule's later slots wait for its first.
    await eventually(async () => {
      assert.deepEqual(
        (await firings(slow)).map((f) => [f.status, f.attempts]),
        [
          ['pending', 1],
          ['pending', 0],
          ['pending', 0],
          ['pending', 0],
        ],
      );
      assert.deepEqual([...rotated].sort(), ['fast/1', 'fast/1', 'slow/1']);
    });
  });

  void it('targets that cannot be resolved fail the firing, and keep no other trigger from planning', async () => {
    // What a target pattern over its time budget answers, at every attempt.
    listTopics = () =>
      Promise.reject(
        new C2Error('C2_VALIDATION', 'target g1 pattern took more than 250 ms over 4 name(s)'),
      );
    const r = await admin.createRule(ctx, {
      action: 'rotate-topic-key',
      triggers: [
        { kind: 'interval', everySeconds: 10 },
        { kind: 'max-key-age', maxAgeSeconds: 60 },
      ],
      targets: [{ kind: 'topic', match: 'pattern', expr: 'lasting/.*' }],
      rollout: {},
    });
    rules.push(r);
    const e = await engine();
    now = r.createdAt.getTime() + 10_000;
    const first = await within(e.tick(), 5000, 'a tick');
    assert.equal(first.planned, 1, 'the interval slot, despite the max-key-age scan');
    assert.deepEqual(
      errors.splice(0).map((err) => (err instanceof C2Error ? err.code : String(err))),
      ['C2_VALIDATION'],
      'the scan reported',
    );
    // The firing resolves the same targets: it ends failed, not pending and retried for ever.
    await eventually(async () => {
      const [only] = await firings(r);
      assert.equal(only?.status, 'failed');
      assert.deepEqual(only.result['errors'], { C2_VALIDATION: 1 });
      // Told to the observer too, which the node logs as a warning: a failure is not silent.
      assert.deepEqual(finished, [{ id: only.id, status: 'failed', errors: { C2_VALIDATION: 1 } }]);
    });
  });

  void it('runs at most maxConcurrentFirings firings at once', async () => {
    await rule(5, ['cap/1', 'cap/2'], { maxDevicesPerMinute: 1 });
    const other = await rule(10, ['cap/other']);
    const e = await engine(1);
    now = other.createdAt.getTime() + 10_000;
    assert.equal((await within(e.tick(), 5000, 'a tick')).planned, 3);
    await eventually(() => {
      assert.deepEqual(rotated, ['cap/1']);
    });
    await within(e.tick(), 5000, 'a tick');
    assert.deepEqual(
      (await firings(other)).map((f) => f.attempts),
      [0],
      'the other rule waits for a free slot',
    );
  });

  void it('deleting a rule stops its running firing before the next target', async () => {
    const r = await rule(5, ['del/1', 'del/2', 'del/3']);
    onRotate = async () => {
      if (rotated.length === 1) await admin.deleteRule(ctx, r.id);
    };
    const e = await engine();
    now = r.createdAt.getTime() + 5000;
    await within(e.tick(), 5000, 'a tick');
    await eventually(() => {
      assert.equal(ended.length, 1, 'the firing ended');
    });
    assert.deepEqual(rotated, ['del/1']);
  });

  void it('disabling a rule stops its running firing before the next target', async () => {
    const r = await rule(5, ['dis/1', 'dis/2', 'dis/3']);
    onRotate = async () => {
      if (rotated.length === 1) await setEnabled(r, false);
    };
    const e = await engine();
    now = r.createdAt.getTime() + 5000;
    await within(e.tick(), 5000, 'a tick');
    const f = await eventually(async () => {
      const [first] = await firings(r);
      assert.ok(first !== undefined && first.status !== 'pending', 'the firing ended');
      return first;
    });
    assert.equal(f.status, 'aborted');
    assert.deepEqual(
      { done: f.result['done'], skipped: f.result['skipped'] },
      { done: 1, skipped: 2 },
    );
    assert.deepEqual(rotated, ['dis/1']);
  });

  void it('a disabled rule does not pile up its schedule, paused or not', async () => {
    const r = await rule(5, ['off/1']);
    const steady = await rule(5, ['on/1']);
    const e = await engine();
    const at = async (seconds: number): Promise<number> => {
      now = r.createdAt.getTime() + seconds * 1000;
      await within(e.tick(), 5000, 'a tick');
      const list = await eventually(async () => {
        const f = await firings(r);
        assert.ok(
          f.every((x) => x.status !== 'pending'),
          'its firings ran',
        );
        return f;
      });
      return list.length;
    };
    await setEnabled(r, false);
    assert.equal(await at(30), 0);
    await setEnabled(r, true);
    assert.equal(await at(31), 0, 'enabling does not fire the slots missed while disabled');
    assert.equal(await at(35), 1, 'it fires at its next slot');
    await setEnabled(r, false);
    await admin.pause(ctx, 'test');
    assert.equal(await at(60), 1);
    await setEnabled(r, true);
    await admin.resume(ctx);
    assert.equal(await at(61), 1, 'nor those missed while disabled during a pause');
    assert.equal(await at(65), 2);
    // An enabled rule still catches up on the slots of the pause, one by one.
    const caught = (await firings(steady)).map(
      (f) => f.dueAt.getTime() - steady.createdAt.getTime(),
    );
    assert.ok(caught.includes(40_000) && caught.includes(60_000), 'the pause was caught up');
  });

  void it('a rule enabled while no engine ran fires none of the slots of its disabled time', async () => {
    const r = await rule(1, ['idle/1']);
    await setEnabled(r, false);
    // No engine ticks while it is disabled (every worker down) for a few of its slots.
    await new Promise((resolve) => setTimeout(resolve, 2500));
    await setEnabled(r, true);
    const enabledAt = (await admin.getRule(r.id)).updatedAt.getTime();
    const e = await engine();
    now = Date.now();
    await within(e.tick(), 5000, 'a tick');
    const owed = (await firings(r)).map((f) => f.dueAt.getTime());
    assert.deepEqual(
      owed.filter((dueAt) => dueAt <= enabledAt),
      [],
      'no slot due while it was disabled',
    );
  });
});
