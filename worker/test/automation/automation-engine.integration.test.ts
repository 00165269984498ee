/**
 * The automation engine with two or more nodes in one process (each with its own pool, Redis
 * connection, C2 service and engine) on the real Postgres and Redis: event thresholds counted
 * across nodes and across a change of leader, the pause switch, and a rule edited while one of its
 * firings is in progress.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { AutomationService } from '../../../cluster/domain/index.ts';
import { C2Error } from '../../../cluster/errors.ts';
import { KeyVault, LocalKekProvider } from '../../../cluster/keyvault/index.ts';
import { PgAutomationStore, PgC2Store, PgDataKeyStore } from '../../../cluster/storage/index.ts';
import { eventually } from '../../../cluster/test/support/eventually.ts';
import {
  createTestSchema,
  TEST_DATABASE_URL,
  type TestSchema,
} from '../../../cluster/test/support/postgres.ts';
import { TEST_AUTOMATION_CAPABILITIES } from '../../../cluster/test/support/test-service.ts';
import { startAutomationNode, type AutomationNode } from './support/automation-node.ts';

const REDIS_URL = process.env['REDIS_TEST_URL'] ?? 'redis://127.0.0.1:6379';
const ctx = { actor: 'test' };

void describe('automation engine, several nodes', () => {
  let schema: TestSchema;
  let admin: AutomationService;
  let store: PgAutomationStore;
  const nodes: AutomationNode[] = [];
  /** What each node's c2_automation_paused shows (its engine observer's last value), by node. */
  const pausedGauges = new Map<AutomationNode, { paused?: boolean }>();
  const kekHex = randomBytes(32).toString('hex');
  const leaseKey = `e4c2-test:${randomBytes(6).toString('hex')}:automation:leader`;

  const startNode = async (actionDelayMs = 0): Promise<AutomationNode> => {
    const gauge: { paused?: boolean } = {};
    const node = await startAutomationNode({
      databaseUrl: TEST_DATABASE_URL,
      schema: schema.schema,
      redisUrl: REDIS_URL,
      leaseKey,
      kekHex,
      nodeId: `node-${nodes.length + 1}`,
      ttlMs: 3000,
      tickMs: 100,
      actionDelayMs,
      observer: {
        paused: (paused) => {
          gauge.paused = paused;
        },
      },
    });
    pausedGauges.set(node, gauge);
    nodes.push(node);
    return node;
  };
  const leaderOf = async (): Promise<AutomationNode> =>
    eventually(() => {
      const leaders = nodes.filter((n) => n.engine.isLeader);
      assert.equal(leaders.length, 1, 'exactly one leader');
      return leaders[0] as AutomationNode;
    }, 15_000);
  const topicVersion = async (name: string): Promise<number> =>
    (await (nodes[0] as AutomationNode).service.getTopic(name)).keyVersion;

  before(async () => {
    schema = await createTestSchema();
    // The shared data key exists before the nodes load their key vaults.
    await KeyVault.create({
      provider: LocalKekProvider.fromKey(new Uint8Array(Buffer.from(kekHex, 'hex'))),
      store: new PgDataKeyStore(schema.pool),
    });
    store = new PgAutomationStore(schema.pool);
    admin = new AutomationService(store, TEST_AUTOMATION_CAPABILITIES);
    await startNode();
    await startNode();
  });

  after(async () => {
    for (const n of nodes) await n.close().catch(() => undefined);
    await schema.drop();
  });

  void it('elects exactly one leader among the nodes', async () => {
    const leader = await leaderOf();
    const record = (await admin.status()).leader;
    assert.ok(Number(record.epoch) >= 1, 'an epoch was claimed');
    assert.ok(nodes.includes(leader), 'the leader is one of the nodes');
  });

  void it('counts event thresholds across nodes and across a change of leader', async () => {
    await (nodes[0] as AutomationNode).service.newTopic(ctx, 'th/x');
    const rule = await admin.createRule(ctx, {
      description: 'rotate th/x every 3 subscriptions to it',
      action: 'rotate-topic-key',
      triggers: [{ kind: 'event', event: 'client.subscribed', threshold: 3 }],
      targets: [{ kind: 'topic', match: 'exact', expr: 'th/x' }],
    });
    const subscribe = async (i: number): Promise<void> => {
      // Alternate the node that serves the change (the nodes alive at the time).
      const via = nodes[i % nodes.length] as AutomationNode;
      await via.service.newClient(ctx, `th-dev-${i}`, new Uint8Array(randomBytes(32)));
      await via.service.newTopicClient(ctx, `th-dev-${i}`, 'th/x');
      // Noise that must not count: another topic.
      await via.service.newTopic(ctx, `th/other-${i}`);
      await via.service.newTopicClient(ctx, `th-dev-${i}`, `th/other-${i}`);
    };
    for (let i = 0; i < 4; i++) await subscribe(i);
    await eventually(async () => {
      const firings = await admin.listFirings(rule.id, 10);
      assert.equal(firings.length, 1);
      assert.equal(firings[0]?.status, 'succeeded');
    });
    // The leader goes away (graceful); a new node joins; counting continues where it stood.
    const leader = await leaderOf();
    await leader.close();
    nodes.splice(nodes.indexOf(leader), 1);
    await startNode();
    for (let i = 4; i < 7; i++) await subscribe(i);
    await eventually(async () => {
      const firings = await admin.listFirings(rule.id, 10);
      assert.equal(firings.length, 2, '7 subscriptions at threshold 3: exactly 2 firings');
      assert.ok(
        firings.every((f) => f.status === 'succeeded'),
        'every firing succeeded',
      );
      const states = await store.read.triggerStates(rule.id);
      assert.equal([...states.values()][0]?.counter, 1);
    }, 15_000);
    assert.equal(await topicVersion('th/x'), 3);
  });

  void it('a paused engine fires nothing, and resumes cleanly', async () => {
    const [a] = nodes as [AutomationNode];
    await a.service.newTopic(ctx, 'pause/t');
    const paused = await admin.pause(ctx, 'planned outage');
    assert.equal(paused.paused, true);
    const rule = await admin.createRule(ctx, {
      action: 'rotate-topic-key',
      triggers: [{ kind: 'interval', everySeconds: 1 }],
      targets: [{ kind: 'topic', match: 'exact', expr: 'pause/t' }],
    });
    const dueBy = rule.createdAt.getTime() + 3000;
    // Wait until a live leader has heartbeated well after three slots fell due.
    await eventually(async () => {
      const status = await admin.status();
      assert.ok(
        (status.leader.heartbeatAt?.getTime() ?? 0) > dueBy + 600,
        'a leader is alive after the due time',
      );
    }, 15_000);
    assert.equal((await admin.listFirings(rule.id, 10)).length, 0);
    assert.equal(await topicVersion('pause/t'), 1);
    assert.equal((await admin.status()).control.reason, 'planned outage');
    const gauges = (): Array<boolean | undefined> => nodes.map((n) => pausedGauges.get(n)?.paused);
    // Every engine's c2_automation_paused says so, the followers' too (they never read it).
    await eventually(() => {
      assert.deepEqual(gauges(), [true, true]);
    });

    await admin.resume(ctx);
    await eventually(() => {
      assert.deepEqual(gauges(), [false, false], 'no node still shows the pause');
    });
    const firings = await eventually(async () => {
      const f = await admin.listFirings(rule.id, 100);
      assert.ok(f.length >= 3, 'the slots missed during the pause fired');
      assert.ok(
        f.every((x) => x.status !== 'pending'),
        'no firing is still pending',
      );
      return f;
    }, 15_000);
    await admin.updateRule(ctx, rule.id, { ...rule, enabled: false }, undefined);
    await eventually(async () => {
      assert.equal((await admin.status()).pendingFirings, 0);
    });
    const all = (await admin.listFirings(rule.id, 1000)).reverse();
    // Each slot once, in order, one second apart: nothing doubled, nothing skipped.
    for (let i = 1; i < all.length; i++)
      assert.equal(
        (all[i] as (typeof all)[0]).dueAt.getTime() -
          (all[i - 1] as (typeof all)[0]).dueAt.getTime(),
        1000,
      );
    assert.ok(firings.length <= all.length, 'firings are only added');
    // Disabling stops a firing that has not reached the topic yet: it ends `aborted`, done 0.
    assert.ok(
      all.every((f) => f.status === 'succeeded' || (f.status === 'aborted' && !f.result['done'])),
      'every firing rotated the topic, or stopped before it when the rule was disabled',
    );
    const rotations = all.filter((f) => f.status === 'succeeded').length;
    assert.equal(await topicVersion('pause/t'), 1 + rotations);
  });

  void it('a rule edited while its firing runs: the firing finishes as planned, stale edits conflict', async () => {
    const slow = await startNode(400);
    const [a] = nodes as [AutomationNode];
    for (const t of ['edit/1', 'edit/2', 'edit/3']) await a.service.newTopic(ctx, t);
    // Make the slow node the leader: stop the others (graceful), the slow one takes over.
    for (const n of nodes.filter((x) => x !== slow)) await n.close();
    nodes.splice(0, nodes.length, slow);
    await eventually(() => {
      assert.ok(slow.engine.isLeader, 'the slow node leads');
    }, 15_000);
    const rule = await admin.createRule(ctx, {
      action: 'rotate-topic-key',
      triggers: [{ kind: 'interval', everySeconds: 2 }],
      targets: [{ kind: 'topic', match: 'prefix', expr: 'edit/' }],
    });
    const running = await eventually(async () => {
      const f = (await admin.listFirings(rule.id, 10)).find(
        (x) => x.status === 'pending' && x.attempts > 0,
      );
      assert.ok(f, 'the firing exists');
      // Its progress is saved while it runs: the targets it resolved, nothing done yet.
      assert.deepEqual(
        { targets: f.result['targets'], done: f.result['done'] },
        { targets: 3, done: 0 },
      );
      return f;
    }, 15_000);
    const edited = await admin.updateRule(
      ctx,
      rule.id,
      { ...rule, targets: [{ kind: 'topic', match: 'exact', expr: 'edit/1' }] },
      rule.version,
    );
    assert.equal(edited.version, rule.version + 1);
    await assert.rejects(
      admin.addTarget(ctx, rule.id, { kind: 'topic', expr: 'edit/2' }, rule.version),
      (err: unknown) => err instanceof C2Error && err.code === 'C2_CONFLICT',
    );
    // The running firing keeps its snapshot: all three topics, once each.
    const done = await eventually(async () => {
      const f = (await admin.listFirings(rule.id, 10)).find((x) => x.id === running.id);
      assert.equal(f?.status, 'succeeded');
      return f;
    }, 15_000);
    assert.equal(done.result['done'], 3);
    // Later firings act on the edited rule.
    const next = await eventually(async () => {
      const f = (await admin.listFirings(rule.id, 10)).find(
        (x) => x.ruleVersion === edited.version && x.status === 'succeeded',
      );
      assert.ok(f, 'the firing exists');
      return f;
    }, 15_000);
    assert.equal(next.result['done'], 1);
    await admin.deleteRule(ctx, rule.id);
  });

  void it('a member-removed rule rotates every topic of a client that is removed', async () => {
    const service = (nodes[0] as AutomationNode).service;
    for (const t of ['mr/a', 'mr/b', 'mr/c', 'other/d']) await service.newTopic(ctx, t);
    await service.newClient(ctx, 'mr-dev', new Uint8Array(randomBytes(32)));
    for (const t of ['mr/a', 'mr/b', 'mr/c', 'other/d'])
      await service.newTopicClient(ctx, 'mr-dev', t);
    // Left before the rule existed: already a revoked membership, owed nothing by this rule.
    await service.removeTopicClient(ctx, 'mr-dev', 'mr/c');
    const rule = await admin.createRule(ctx, {
      description: 'forward secrecy for mr/*',
      action: 'rotate-topic-key',
      triggers: [{ kind: 'member-removed' }],
      targets: [{ kind: 'topic', match: 'prefix', expr: 'mr/' }],
    });
    const journal = new PgC2Store(schema.pool).read.journal;
    await service.sequenceEvents();
    const before = (await journal.eventsAfter('0', 10_000)).at(-1)?.seq ?? '0';
    await service.removeClient(ctx, 'mr-dev');
    // The removal's events, as the stream gives them (an API node positions them; here, the
    // test): one unsubscription per topic the client was still in, then the removal.
    await eventually(async () => {
      await service.sequenceEvents();
      const events = (await journal.eventsAfter(before, 100)).filter(
        (e) => e.clientName === 'mr-dev',
      );
      assert.deepEqual(
        events.map((e) => [e.type, e.topic ?? null, e.details?.['clientRemoved'] ?? null]),
        [
          ['client.unsubscribed', 'mr/a', true],
          ['client.unsubscribed', 'mr/b', true],
          ['client.unsubscribed', 'other/d', true],
          ['client.removed', null, null],
        ],
      );
    }, 15_000);
    await eventually(async () => {
      assert.equal(await topicVersion('mr/a'), 2);
      assert.equal(await topicVersion('mr/b'), 2);
      const firings = await admin.listFirings(rule.id, 10);
      assert.ok(
        firings.every((f) => f.status === 'succeeded'),
        'every firing succeeded',
      );
    }, 15_000);
    assert.equal(await topicVersion('mr/c'), 1, 'left before the rule: not rotated by it');
    assert.equal(await topicVersion('other/d'), 1, 'not a target');
    await admin.deleteRule(ctx, rule.id);
  });
});
