/**
 * Claims on the batched delivery path, on the real PostgreSQL: a delivery record ends a device's
 * claim in the same statement only when nothing else is pending for it (R5: the next command
 * waits for the previous one's PUBACK, and no pending work is left behind unclaimed), a renewal
 * never takes back a released device, and a batch leaves no claim behind.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { randomSymKey } from '../../../e4/index.ts';
import {
  syncBatch,
  type BatchOutcome,
  type BatchSyncDeps,
  type CommandPublisher,
} from '../../delivery/index.ts';
import { PgDelivery, type DeviceBatchRow, type TopicDelivery } from '../../storage/index.ts';
import { startHarness, type C2Harness } from '../support/c2-harness.ts';

const ctx = { actor: 'test' };

class CountingPublisher implements CommandPublisher {
  readonly sent: string[] = [];
  publish(topic: string): Promise<void> {
    this.sent.push(topic);
    return Promise.resolve();
  }
}

void describe('claims of the batched delivery path', () => {
  let h: C2Harness;
  let delivery: PgDelivery;
  const now = 1_800_000_000_000;
  before(async () => {
    h = await startHarness({ start: false });
    delivery = new PgDelivery(h.schema.pool);
  });
  after(async () => {
    await h.close();
  });

  function deps(publisher: CommandPublisher, owner: string): BatchSyncDeps {
    return {
      store: h.store,
      sealer: h.service.deps.sealer,
      mode: 'symkey',
      publisher,
      clock: () => now,
      sleep: () => Promise.resolve(),
      policy: { maxAttempts: 3, initialBackoffMs: 10, maxBackoffMs: 50, deadlineMs: 60_000 },
      delivery,
      owner,
      claimTtlMs: 30_000,
      publishConcurrency: 8,
    };
  }

  /** Devices that are members of every topic in `topics` (created here). */
  async function fleet(n: number, topics: number): Promise<{ names: string[]; ids: string[] }> {
    const prefix = `claims-${randomBytes(4).toString('hex')}`;
    const topicNames = Array.from({ length: topics }, (_, t) => `${prefix}-t${t}`);
    for (const topic of topicNames) await h.service.newTopic(ctx, topic);
    const names: string[] = [];
    const ids: string[] = [];
    for (let i = 0; i < n; i++) {
      const name = `${prefix}-dev-${i}`;
      await h.service.newClient(ctx, name, randomSymKey());
      for (const topic of topicNames) await h.service.newTopicClient(ctx, name, topic);
      const row = await h.store.read.clients.byName(name);
      assert.ok(row);
      names.push(name);
      ids.push(row.id);
    }
    return { names, ids };
  }

  async function owners(ids: readonly string[]): Promise<Map<string, string | null>> {
    const found = await h.schema.pool.query<{ id: string; inflight_owner: string | null }>(
      'SELECT id::text AS id, inflight_owner FROM clients WHERE id = ANY($1::bigint[])',
      [ids],
    );
    return new Map(found.rows.map((r) => [r.id, r.inflight_owner]));
  }

  function deliveriesOf(plan: readonly DeviceBatchRow[]): TopicDelivery[] {
    return plan.map((p) => {
      assert.ok(p.topic);
      return {
        clientId: p.clientId,
        topicHash: p.topic.topicHash,
        topicId: p.topic.topicId,
        version: p.topic.desiredVersion,
        epoch: p.deliveryEpoch,
        commandId: new Uint8Array(16),
        lastPending: p.pendingTopics === 1,
      };
    });
  }

  void it('a batch sends every pending topic one after the other and leaves no claim', async () => {
    const { ids } = await fleet(3, 2);
    const publisher = new CountingPublisher();
    const outcome = await syncBatch(deps(publisher, 'node-a'), ids);
    assert.equal(outcome.delivered, 6, 'two topics for each of three devices');
    assert.equal(outcome.perDevice.size, 0);
    assert.equal(publisher.sent.length, 6);
    for (const [id, owner] of await owners(ids)) assert.equal(owner, null, `device ${id} claimed`);
  });

  void it('a claim that waited plans from after it: never a version older than one delivered', async () => {
    // The plan is read after the claim committed. Read in the claim's own statement, it would use
    // a snapshot from before the claim waited; here that snapshot says v2 is pending for `later`
    // while node-b delivers v3 to it meanwhile, and v2 would follow v3.
    const { ids } = await fleet(2, 1);
    const [first, later] = ids;
    assert.ok(first !== undefined && later !== undefined);
    await h.schema.pool.query(
      'UPDATE device_topics SET delivered_version = desired_version WHERE client_id = ANY($1)',
      [ids],
    );
    const member = (await delivery.planBatch([later]))[0];
    assert.ok(member === undefined || member.topic === null, 'both devices up to date');
    const [topicRow] = (
      await h.schema.pool.query<{ name: string }>(
        `SELECT t.name FROM topics t JOIN device_topics dt ON dt.topic_id = t.id
         WHERE dt.client_id = $1`,
        [later],
      )
    ).rows;
    assert.ok(topicRow);
    await h.service.rotateTopicKey(ctx, topicRow.name); // v2 pending for both
    // Another transaction holds `first`'s row: node-a's claim statement stops there.
    const blocker = await h.schema.pool.connect();
    const publisher = new CountingPublisher();
    let batch: Promise<unknown> | undefined;
    try {
      await blocker.query('BEGIN');
      await blocker.query('SELECT 1 FROM clients WHERE id = $1 FOR UPDATE', [first]);
      const blockerPid = (await blocker.query<{ pid: number }>('SELECT pg_backend_pid() AS pid'))
        .rows[0]?.pid;
      batch = syncBatch(deps(publisher, 'node-a'), ids);
      await waitUntilBlockedBy(blockerPid ?? -1);
      // Meanwhile: v3, which node-b delivers to `later` and records.
      await h.service.rotateTopicKey(ctx, topicRow.name);
      assert.deepEqual(await delivery.claim([later], 'node-b', 30_000), [later]);
      const planB = await delivery.planBatch([later]);
      assert.equal(planB[0]?.topic?.desiredVersion, 3);
      const recordedB = await delivery.recordAndRelease(deliveriesOf(planB), 'node-b');
      assert.deepEqual(recordedB.released, [later]);
    } finally {
      await blocker.query('ROLLBACK');
      blocker.release();
    }
    await batch;
    const laterRow = await h.store.read.clients.byId(later);
    assert.ok(laterRow);
    const laterTopic = `e4/${Buffer.from(laterRow.e4Id).toString('hex')}`;
    assert.equal(
      publisher.sent.filter((t) => t === laterTopic).length,
      0,
      'nothing sent to the device node-b brought to v3',
    );
    assert.equal(publisher.sent.length, 1, 'v3 to the other device');
  });

  /**
   * node-a claims and plans v1, then stalls past its claim TTL at its `stallAt`-th key opening,
   * without renewing (as a paused process or one cut off from PostgreSQL does); node-b takes the
   * device and sends v2. When node-a goes on, its planned v1 would reach the device after v2: the
   * device would go back to the older key, and a stock device cannot tell.
   */
  async function lapsedClaims(options: {
    stallAt: number;
    failFirstPublish: boolean;
  }): Promise<{ sentByA: string[]; outcomeA: BatchOutcome; ids: string[] }> {
    const { ids, names } = await fleet(1, 1);
    let resume: () => void = () => undefined;
    const stalled = new Promise<void>((r) => {
      resume = r;
    });
    let reachedStall: () => void = () => undefined;
    const atStall = new Promise<void>((r) => {
      reachedStall = r;
    });
    const realSealer = h.service.deps.sealer;
    let opened = 0;
    const sentByA: string[] = [];
    let publishes = 0;
    const publisherA: CommandPublisher = {
      publish: (topic) => {
        if (options.failFirstPublish && publishes++ === 0)
          return Promise.reject(new Error('no PUBACK within 3000 ms'));
        sentByA.push(topic);
        return Promise.resolve();
      },
    };
    const depsA: BatchSyncDeps = {
      ...deps(publisherA, 'node-a'),
      claimTtlMs: 300,
      // Renewals fail: PostgreSQL is out of reach (a paused process would not even try).
      delivery: Object.assign(Object.create(delivery) as PgDelivery, {
        renew: () => Promise.reject(new Error('Connection terminated unexpectedly')),
      }),
      sealer: {
        seal: (plaintext, binding) => realSealer.seal(plaintext, binding),
        open: async (sealed, binding) => {
          if (opened++ === options.stallAt) {
            reachedStall();
            await stalled;
          }
          return realSealer.open(sealed, binding);
        },
      },
    };
    const batchA = syncBatch(depsA, ids);
    await atStall;
    const topic = (await h.service.getClient(names[0])).topics[0]?.topic;
    assert.ok(topic);
    await h.service.rotateTopicKey(ctx, topic); // v2
    // node-a's claim ends in PostgreSQL after its 300 ms; node-b then takes the device.
    let claimedByB: string[] = [];
    for (let i = 0; i < 100 && claimedByB.length === 0; i++) {
      await new Promise((r) => setTimeout(r, 50));
      claimedByB = await delivery.claim(ids, 'node-b', 30_000);
    }
    assert.deepEqual(claimedByB, ids, "node-b took the device once node-a's claim ended");
    const outcomeB = await syncBatch(deps(new CountingPublisher(), 'node-b'), ids);
    assert.equal(outcomeB.delivered, 1, 'node-b sent v2');
    resume();
    const outcomeA = await batchA;
    assert.equal((await owners(ids)).get(ids[0] ?? ''), null, 'no claim left behind');
    return { sentByA, outcomeA, ids };
  }

  void it('a batch whose claims lapsed (paused, cut off from PostgreSQL) publishes nothing it planned', async () => {
    // The stall: after the plan, while the round's keys are opened.
    const { sentByA, outcomeA, ids } = await lapsedClaims({ stallAt: 0, failFirstPublish: false });
    assert.deepEqual(sentByA, [], 'node-a sent nothing once its claims had lapsed');
    assert.equal(outcomeA.lapsed, true);
    assert.deepEqual(outcomeA.busy, ids, 'the device is left to be tried again');
  });

  void it('so does its per-device path: a retry planned before the lapse is not sent', async () => {
    // The batched publish fails (no PUBACK); the per-device retry plans (opening the topic key
    // and the device key again: the third opening) and stalls there.
    const { sentByA, outcomeA, ids } = await lapsedClaims({ stallAt: 2, failFirstPublish: true });
    assert.deepEqual(sentByA, [], 'node-a sent nothing once its claims had lapsed');
    assert.equal(outcomeA.lapsed, true);
    assert.deepEqual(outcomeA.busy, ids);
    assert.equal(outcomeA.perDevice.size, 0, 'no per-device outcome: left to the next claim');
  });

  /** Until a statement setting claims waits for a lock that backend `pid` holds. */
  async function waitUntilBlockedBy(pid: number): Promise<void> {
    for (let i = 0; i < 250; i++) {
      const waiting = await h.schema.pool.query(
        `SELECT 1 FROM pg_stat_activity WHERE $1 = ANY(pg_blocking_pids(pid))
           AND query LIKE '%UPDATE clients SET inflight_owner%'`,
        [pid],
      );
      if ((waiting.rowCount ?? 0) > 0) return;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    throw new Error('the claim never waited for the locked row');
  }

  void it('a record ends the claim only of devices with nothing else pending', async () => {
    const { ids: two } = await fleet(1, 2);
    const { ids: one } = await fleet(1, 1);
    const ids = [...two, ...one];
    assert.deepEqual((await delivery.claim(ids, 'node-a', 30_000)).sort(), [...ids].sort());
    const plan = await delivery.planBatch(ids);
    const result = await delivery.recordAndRelease(deliveriesOf(plan), 'node-a');
    assert.equal(result.recorded, 2);
    assert.deepEqual(result.released, one, 'the device with a second topic pending stays claimed');
    const held = await owners(ids);
    assert.equal(held.get(two[0] ?? ''), 'node-a');
    assert.equal(held.get(one[0] ?? ''), null);
    // The second topic: now nothing is left and the claim ends.
    const second = await delivery.recordAndRelease(
      deliveriesOf(await delivery.planBatch(two)),
      'node-a',
    );
    assert.deepEqual([second.recorded, second.released], [1, two]);
  });

  void it('a record neither ends another owner’s claim nor records a stale epoch', async () => {
    const { ids } = await fleet(2, 1);
    const [stale, taken] = ids;
    assert.ok(stale !== undefined && taken !== undefined);
    await delivery.claim(ids, 'node-a', 30_000);
    const plan = await delivery.planBatch(ids);
    // A reset moved one device's epoch; the other's claim expired and node-b took it.
    await h.schema.pool.query(
      'UPDATE clients SET delivery_epoch = delivery_epoch + 1 WHERE id = $1',
      [stale],
    );
    await h.schema.pool.query(
      `UPDATE clients SET inflight_owner = 'node-b', inflight_until = now() + interval '30 s'
       WHERE id = $1`,
      [taken],
    );
    const result = await delivery.recordAndRelease(deliveriesOf(plan), 'node-a');
    assert.equal(result.recorded, 1, 'only the current epoch is recorded');
    assert.deepEqual(result.released, [], 'neither claim ended');
    const held = await owners(ids);
    assert.equal(held.get(stale), 'node-a');
    assert.equal(held.get(taken), 'node-b');
    await delivery.release([stale], 'node-a');
    await delivery.release([taken], 'node-b');
  });

  void it('a plan counts the pending memberships of each device', async () => {
    const { ids } = await fleet(2, 2);
    await delivery.claim(ids, 'node-a', 30_000);
    const plan = await delivery.planBatch(ids);
    assert.deepEqual(
      plan.map((p) => p.pendingTopics),
      [2, 2],
    );
    for (const p of plan) assert.ok(p.topic && p.identity, 'the next topic and the identity key');
    await delivery.release(ids, 'node-a');
  });

  void it('a rotation committed after the plan keeps the claim of the device it concerns', async () => {
    const { ids } = await fleet(1, 1);
    const [id] = ids;
    assert.ok(id !== undefined);
    await delivery.claim(ids, 'node-a', 30_000);
    const plan = await delivery.planBatch(ids);
    const planned = plan[0]?.topic;
    assert.ok(planned?.topicId);
    // The topic rotates while its previous version is on its way to the device.
    const topic = await h.store.read.topics.byId(planned.topicId);
    assert.ok(topic);
    await h.service.rotateTopicKey(ctx, topic.name);
    const result = await delivery.recordAndRelease(deliveriesOf(plan), 'node-a');
    assert.deepEqual(
      [result.recorded, result.released],
      [1, []],
      'recorded, but the membership is pending again: the claim stays',
    );
    assert.equal((await owners(ids)).get(id), 'node-a');
    const next = await delivery.planBatch(ids);
    assert.equal(next[0]?.topic?.desiredVersion, planned.desiredVersion + 1);
    const last = await delivery.recordAndRelease(deliveriesOf(next), 'node-a');
    assert.deepEqual(last.released, ids, 'the new version recorded, the claim ends');
  });

  void it('a record that waited on a resync leaves the resync its work (the epoch is read under lock)', async () => {
    // node-a sent v1 and records it; meanwhile a resync of the device (sendEverythingAgain:
    // a new delivery epoch, then every membership undelivered) commits. The record's statement
    // started before that commit: read from its snapshot, the old epoch matched, and the record
    // then waited on the membership row and wrote v1 over the resync's reset, so the key was
    // never sent again (seen: a resync test timing out now and then).
    const { ids } = await fleet(1, 1);
    const [id] = ids;
    assert.ok(id !== undefined);
    assert.deepEqual(await delivery.claim([id], 'node-a', 30_000), [id]);
    const plan = await delivery.planBatch([id]);
    assert.equal(plan[0]?.topic?.desiredVersion, 1);
    let record: Promise<{ recorded: number; released: readonly string[] }> | undefined;
    await h.store.transaction(async (tx) => {
      await tx.clients.bumpDeliveryEpoch(id);
      await tx.memberships.resetDelivery(id);
      record = delivery.recordAndRelease(deliveriesOf(plan), 'node-a');
      for (let i = 0; ; i++) {
        const waiting = await h.schema.pool.query(
          `SELECT 1 FROM pg_stat_activity
            WHERE wait_event_type = 'Lock' AND query LIKE '%delivered AS%'`,
        );
        if ((waiting.rowCount ?? 0) > 0) break;
        if (i === 250) throw new Error('the record never waited for the resync');
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    });
    assert.ok(record);
    const { recorded, released } = await record;
    assert.equal(recorded, 0, 'a delivery of the epoch the resync ended is not recorded');
    assert.deepEqual(released, [], 'the claim stays: the resync left work pending');
    const topics = await h.schema.pool.query<{ delivered_version: number }>(
      'SELECT delivered_version FROM device_topics WHERE client_id = $1',
      [id],
    );
    assert.deepEqual(
      topics.rows.map((r) => r.delivered_version),
      [0],
      'the key is sent again',
    );
    const replan = await delivery.planBatch([id]);
    assert.equal(replan[0]?.topic?.desiredVersion, 1, 'the next round plans it');
  });

  void it('a renewal extends only claims its owner still holds', async () => {
    const { ids } = await fleet(2, 1);
    const [released, other] = ids;
    assert.ok(released !== undefined && other !== undefined);
    await delivery.claim(ids, 'node-a', 30_000);
    await delivery.release([released], 'node-a');
    await delivery.release([other], 'node-a');
    await delivery.claim([other], 'node-b', 30_000);
    await delivery.renew(ids, 'node-a', 30_000);
    const held = await owners(ids);
    assert.equal(held.get(released), null, 'a released device is not claimed again');
    assert.equal(held.get(other), 'node-b', 'another owner keeps its claim');
    await delivery.release([other], 'node-b');
  });
});
