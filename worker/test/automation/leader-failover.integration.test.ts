/**
 * Exactly once across a leader's death: three automation nodes as separate processes on the real
 * Postgres and Redis; the leader is SIGKILLed while a firing of a due rule is in progress (some
 * targets rotated, others not yet). The successor finishes that firing without rotating any target
 * twice, and every due slot of the rule, including those that fell due while no node led, fired
 * exactly once.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import type { C2Service } from '../../../cluster/domain/index.ts';
import { AutomationService } from '../../../cluster/domain/index.ts';
import { PgAutomationStore } from '../../../cluster/storage/index.ts';
import { eventually } from '../../../cluster/test/support/eventually.ts';
import {
  createTestSchema,
  TEST_DATABASE_URL,
  type TestSchema,
} from '../../../cluster/test/support/postgres.ts';
import { testService } from '../../../cluster/test/support/test-service.ts';
import { TEST_AUTOMATION_CAPABILITIES } from '../../../cluster/test/support/test-service.ts';
import {
  killLeaderDuringFiring,
  startEngineProcess,
  type EngineClusterSettings,
  type EngineProcess,
} from './support/engine-processes.ts';

const REDIS_URL = process.env['REDIS_TEST_URL'] ?? 'redis://127.0.0.1:6379';
const ctx = { actor: 'test' };
const TOPICS = ['kill/a', 'kill/b', 'kill/c'];
const EVERY_SECONDS = 4;

void describe('automation leader killed inside a due window', () => {
  let schema: TestSchema;
  let service: C2Service;
  let store: PgAutomationStore;
  let admin: AutomationService;
  let settings: EngineClusterSettings;
  const nodes: EngineProcess[] = [];

  before(async () => {
    schema = await createTestSchema();
    const kekHex = randomBytes(32).toString('hex');
    ({ service } = await testService(schema.pool, new Uint8Array(Buffer.from(kekHex, 'hex'))));
    store = new PgAutomationStore(schema.pool);
    admin = new AutomationService(store, TEST_AUTOMATION_CAPABILITIES);
    settings = {
      databaseUrl: TEST_DATABASE_URL,
      schema: schema.schema,
      redisUrl: REDIS_URL,
      leaseKey: `e4c2-test:${randomBytes(6).toString('hex')}:automation:leader`,
      kekHex,
      ttlMs: 2000,
      tickMs: 100,
      // Each rotation takes a while, so a firing of three topics is in progress long enough to
      // kill its leader in the middle.
      actionDelayMs: 700,
    };
    for (const t of TOPICS) await service.newTopic(ctx, t);
    for (let i = 0; i < 3; i++) nodes.push(await startEngineProcess(settings, `proc-${i + 1}`));
  });

  after(async () => {
    for (const n of nodes) await n.stop().catch(() => undefined);
    await schema.drop();
  });

  void it('finishes the interrupted firing once and skips no slot', async () => {
    const rule = await admin.createRule(ctx, {
      description: 'rotate kill/* every few seconds',
      action: 'rotate-topic-key',
      triggers: [{ kind: 'interval', everySeconds: EVERY_SECONDS }],
      targets: [{ kind: 'topic', match: 'prefix', expr: 'kill/' }],
    });
    const report = await killLeaderDuringFiring(nodes, store, rule.id, 60_000);
    assert.equal(report.finalStatus, 'succeeded');
    assert.notEqual(report.finishedEpoch, null);
    assert.ok(
      BigInt(report.finishedEpoch ?? '0') > BigInt(report.epochAtKill),
      'a successor with a newer epoch finished the firing',
    );
    // Let one more slot fire under the new leader, then stop the rule and drain.
    await eventually(async () => {
      const f = await admin.listFirings(rule.id, 100);
      assert.ok(
        f.some(
          (x) => x.status === 'succeeded' && BigInt(x.plannedEpoch) > BigInt(report.epochAtKill),
        ),
        'the new leader planned a firing',
      );
    }, 60_000);
    await admin.updateRule(ctx, rule.id, { ...rule, enabled: false });
    await eventually(async () => {
      assert.equal((await admin.status()).pendingFirings, 0);
    }, 60_000);

    const firings = (await admin.listFirings(rule.id, 1000)).reverse();
    // Never skipped: consecutive due times, one interval apart, from the first slot on.
    assert.equal(firings[0]?.dueAt.getTime(), rule.createdAt.getTime() + EVERY_SECONDS * 1000);
    for (let i = 1; i < firings.length; i++) {
      const gap = (firings[i]?.dueAt.getTime() ?? 0) - (firings[i - 1]?.dueAt.getTime() ?? 0);
      assert.equal(gap, EVERY_SECONDS * 1000, `slot ${i} follows slot ${i - 1}`);
    }
    // Disabling the rule stops a firing in progress before its next target (it ends `aborted`):
    // only the last firings may have stopped short.
    const cut = firings.findIndex((f) => f.status !== 'succeeded');
    assert.ok(
      firings.slice(0, cut < 0 ? undefined : cut).every((f) => f.result['done'] === TOPICS.length),
      'every firing before the rule was disabled rotated every topic',
    );
    assert.ok(
      cut < 0 || firings.slice(cut).every((f) => f.status === 'aborted'),
      'the rest stopped when the rule was disabled',
    );
    // Never twice: each topic rotated exactly once per firing that reached it (targets go in
    // name order).
    for (const [i, t] of TOPICS.entries()) {
      const reached = firings.filter((f) => Number(f.result['done']) > i).length;
      assert.equal((await service.getTopic(t)).keyVersion, 1 + reached, t);
    }
    const killed = firings.find((f) => f.id === report.firingId);
    assert.ok((killed?.attempts ?? 0) >= 2, 'the killed firing was resumed by another node');
  });
});
