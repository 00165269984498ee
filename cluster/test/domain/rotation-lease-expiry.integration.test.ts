/**
 * R2 with real processes: a rotation whose Redlock lease runs out while it works (a long
 * transaction, and the lock instances stop answering so no extension is confirmed) commits
 * nothing, and says which lock was lost and why. The caller may retry with the same request id.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { RedlockService } from '../../coordination/index.ts';
import { C2Error } from '../../errors.ts';
import { RedisGroup } from '../coordination/redis-processes.ts';
import { eventRecorder } from '../coordination/support.ts';
import { startHarness, type C2Harness } from '../support/c2-harness.ts';
import { eventually } from '../support/eventually.ts';
import { TEST_DATABASE_URL } from '../support/postgres.ts';

const ctx = { actor: 'test' };

void describe('a rotation whose lock lease expires mid-transaction', () => {
  let group: RedisGroup;
  let h: C2Harness;
  const rec = eventRecorder();

  before(async () => {
    group = await RedisGroup.start(3);
    const locks = new RedlockService({
      clients: await group.connect(),
      commandTimeoutMs: 100,
      onEvent: rec.onEvent,
    });
    h = await startHarness({ start: false, locks });
  });
  after(async () => {
    group.resumeAll();
    await h.close();
    await group.stop();
  });

  /** A count from the harness schema. */
  async function count(sql: string, params: unknown[]): Promise<number> {
    const { rows } = await h.schema.pool.query<{ n: number }>(sql, params);
    return rows[0]?.n ?? -1;
  }

  void it('commits nothing, names the lock, and a retry with the same request id rotates once', async () => {
    const topic = `lease-${randomBytes(4).toString('hex')}`;
    await h.service.newTopic(ctx, topic);
    await h.service.newClient(ctx, `${topic}-dev`, new Uint8Array(32).fill(3));
    await h.service.newTopicClient(ctx, `${topic}-dev`, topic);
    const before = {
      version: (await h.service.getTopic(topic)).keyVersion,
      outbox: await count('SELECT last_value::int AS n FROM outbox_id_seq', []),
      audit: await count(`SELECT count(*)::int AS n FROM audit_log WHERE subject = $1`, [topic]),
    };

    // The transaction waits on the audit table (a long operation) while the lock instances hang.
    const blocker = new pg.Client({ connectionString: TEST_DATABASE_URL });
    await blocker.connect();
    let rotation: Promise<unknown> | undefined;
    try {
      await blocker.query('BEGIN');
      await blocker.query(`LOCK TABLE ${h.schema.schema}.audit_log IN SHARE ROW EXCLUSIVE MODE`);
      rotation = h.service.rotateTopicKey({ ...ctx, requestId: `${topic}-r1` }, topic);
      rotation.catch(() => undefined); // awaited below
      await eventually(() => {
        assert.equal(rec.of(`topic:${topic}`, 'acquired').length, 2, 'the rotation holds the lock');
      });
      group.servers[1]?.pause();
      group.servers[2]?.pause();
      await eventually(() => {
        assert.equal(rec.of(`topic:${topic}`, 'lost').length, 1, 'the lease ran out');
      });
    } finally {
      await blocker.query('COMMIT');
      await blocker.end();
    }
    const err = await rotation.then(
      () => assert.fail('the rotation committed after its lease was lost'),
      (e: unknown) => e,
    );
    assert.ok(err instanceof C2Error);
    assert.equal(err.code, 'C2_UNAVAILABLE');
    assert.equal(
      err.message,
      `lock lease lost on resource "topic:${topic}": it expired before an extension was confirmed (lock instances unreachable or slow, or this process stalled)`,
    );
    assert.equal((await h.service.getTopic(topic)).keyVersion, before.version, 'no new version');
    assert.equal(
      await count(`SELECT count(*)::int AS n FROM audit_log WHERE subject = $1`, [topic]),
      before.audit,
      'no audit record',
    );
    assert.equal(
      await count(`SELECT count(*)::int AS n FROM outbox WHERE id > $1 AND topic_id IS NOT NULL`, [
        before.outbox,
      ]),
      0,
      'no outbox row',
    );

    group.resumeAll();
    const retried = await h.service.rotateTopicKey({ ...ctx, requestId: `${topic}-r1` }, topic);
    assert.equal(retried.keyVersion, before.version + 1);
    const again = await h.service.rotateTopicKey({ ...ctx, requestId: `${topic}-r1` }, topic);
    assert.equal(again.keyVersion, before.version + 1, 'the retry is idempotent');
  });
});
