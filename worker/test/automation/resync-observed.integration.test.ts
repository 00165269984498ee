/**
 * A delivery the broker accepted but the device never applied (R9) is found by traffic
 * monitoring in public-key mode: the device keeps signing messages under the older key well
 * after the delivery. GetClient shows it per topic, and the `resync-lagging` action resyncs such
 * a client as it does one whose delivery failed. Real PostgreSQL and broker, real delivery.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { clientIdFromName, ed25519KeyFromSeed } from '../../../e4/index.ts';
import type { FiringRow } from '../../../cluster/storage/index.ts';
import { startHarness, type C2Harness } from '../../../cluster/test/support/c2-harness.ts';
import { eventually } from '../../../cluster/test/support/eventually.ts';
import { runFiring, type FiringContext } from '../../automation/firing-runner.ts';

const ctx = { actor: 'test' };
const suffix = (): string => randomBytes(4).toString('hex');

function resyncFiring(clients: readonly string[]): FiringRow {
  return {
    id: '1',
    ruleId: '1',
    dueAt: new Date(),
    subject: '',
    triggerId: 't1',
    ruleVersion: 1,
    snapshot: {
      action: 'resync-lagging',
      targets: clients.map((expr, i) => ({ id: `c${i}`, kind: 'client', match: 'exact', expr })),
      rollout: {},
    },
    coalesced: 0,
    status: 'pending',
    plannedEpoch: '1',
    finishedEpoch: null,
    attempts: 0,
    result: {},
    plannedAt: new Date(),
    startedAt: null,
    finishedAt: null,
  };
}

void describe('observed key use: GetClient and resync-lagging', () => {
  let h: C2Harness;
  before(async () => {
    h = await startHarness({ mode: 'pubkey' });
  });
  after(async () => {
    await h.close();
  });

  void it('a device seen under an older key well after its delivery is shown behind and resynced', async () => {
    const topic = `e4c2/observed/${suffix()}`;
    const names = ['lost', 'fine', 'quiet'].map((role) => `obs-${role}-${suffix()}`);
    await h.service.newTopic(ctx, topic);
    for (const name of names) {
      const publicKey = ed25519KeyFromSeed(randomBytes(32)).subarray(32);
      await h.service.newClient(ctx, name, publicKey);
      await h.service.newTopicClient(ctx, name, topic);
    }
    await h.service.rotateTopicKey(ctx, topic);
    const [lost, fine, quiet] = names as [string, string, string];
    // Every device got version 2 as far as the broker is concerned.
    await eventually(async () => {
      for (const name of names) {
        const c = await h.service.getClient(name);
        assert.equal(c.topics[0]?.deliveredVersion, 2, name);
      }
    }, 15_000);
    const { topicId } = (await h.service.monitoringKeys(topic, 1)) ?? assert.fail('topic');
    const use = (name: string, keyVersion: number, at = new Date()) => ({
      topicId,
      e4Id: clientIdFromName(name),
      keyVersion,
      at,
    });

    // Seen under version 1 right after the delivery: a message in flight, not proof of a loss.
    await h.service.recordTraffic([], [use(lost, 1), use(fine, 2)]);
    let shown = await h.service.getClient(lost);
    assert.deepEqual(
      { ...shown.topics[0]?.observed, at: undefined },
      { keyVersion: 1, behind: false, at: undefined },
    );
    assert.equal((await h.service.getClient(quiet)).topics[0]?.observed, null, 'never seen');

    // The delivery was two minutes ago; the device still signs under version 1 now.
    await h.schema.pool.query(`UPDATE device_topics SET updated_at = now() - interval '2 minutes'`);
    await h.service.recordTraffic([], [use(lost, 1, new Date(Date.now() + 1000))]);
    shown = await h.service.getClient(lost);
    assert.equal(shown.delivery.state, 'idle', 'the delivery itself did not fail');
    assert.equal(shown.topics[0]?.observed?.behind, true);
    assert.equal((await h.service.getClient(fine)).topics[0]?.observed?.behind, false);

    const ids = new Map<string, string>();
    for (const name of names) {
      const r = await h.schema.pool.query<{ id: string }>(
        'SELECT id FROM clients WHERE name = $1',
        [name],
      );
      ids.set(name, r.rows[0]?.id ?? assert.fail(name));
    }
    const sentTo = (name: string): number =>
      h.attempts.filter((a) => a.outcome === 'acked' && a.clientId === ids.get(name)).length;
    const before = new Map(names.map((n) => [n, sentTo(n)]));
    const firingCtx: FiringContext = {
      c2: h.service,
      clock: Date.now,
      sleep: (ms) => new Promise((r) => setTimeout(r, ms)),
      signal: new AbortController().signal,
      shouldYield: () => Promise.resolve(false),
    };
    const outcome = await runFiring(resyncFiring(names), firingCtx);
    assert.equal(outcome.status, 'succeeded');
    assert.deepEqual(
      { done: outcome.result.done, skipped: outcome.result.skipped },
      { done: 1, skipped: 2 },
      'only the device seen behind is resynced',
    );
    // The resync sends the device its keys again (level-triggered: the current version); the
    // others are left alone.
    await eventually(() => {
      assert.ok(sentTo(lost) > (before.get(lost) ?? 0), 'a command was sent again');
    }, 15_000);
    assert.equal(sentTo(fine), before.get(fine));
    assert.equal(sentTo(quiet), before.get(quiet));
    // Once it is seen under the delivered version, it is no longer behind.
    await h.service.recordTraffic([], [use(lost, 2, new Date(Date.now() + 2000))]);
    assert.equal((await h.service.getClient(lost)).topics[0]?.observed?.behind, false);
  });
});

void describe('observed key use with a longer grace (E4C2_MONITORING_LAG_GRACE_S)', () => {
  let h: C2Harness;
  before(async () => {
    h = await startHarness({ mode: 'pubkey', observedLagGraceSeconds: 600 });
  });
  after(async () => {
    await h.close();
  });

  void it('a device seen under an older key counts as behind only past the configured grace', async () => {
    const topic = `e4c2/observed-grace/${suffix()}`;
    const name = `obs-grace-${suffix()}`;
    await h.service.newTopic(ctx, topic);
    await h.service.newClient(ctx, name, ed25519KeyFromSeed(randomBytes(32)).subarray(32));
    await h.service.newTopicClient(ctx, name, topic);
    await h.service.rotateTopicKey(ctx, topic);
    await eventually(async () => {
      assert.equal((await h.service.getClient(name)).topics[0]?.deliveredVersion, 2);
    }, 15_000);
    const { topicId } = (await h.service.monitoringKeys(topic, 1)) ?? assert.fail('topic');
    let sightings = 0;
    const seen = async (minutesAgo: number): Promise<boolean | undefined> => {
      await h.schema.pool.query(
        `UPDATE device_topics SET updated_at = now() - make_interval(mins => $1)`,
        [minutesAgo],
      );
      // Each sighting later than the one before (the record only moves forward in time).
      const at = new Date(Date.now() + ++sightings * 1000);
      await h.service.recordTraffic(
        [],
        [{ topicId, e4Id: clientIdFromName(name), keyVersion: 1, at }],
      );
      return (await h.service.getClient(name)).topics[0]?.observed?.behind;
    };
    // Two minutes after the delivery is behind with the default 60 s, not with 600 s.
    assert.equal(await seen(2), false);
    assert.equal(await seen(11), true);
  });
});
