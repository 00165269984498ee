/**
 * Rotations take the per-topic / per-client lock (R2) and refuse to commit once the lease is
 * lost; correctness without any lock rests on the version compare-and-set (R1).
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import type { Lease, LockService } from '../../coordination/index.ts';
import { C2Error } from '../../errors.ts';
import { lockResourceOf } from '../../domain/mutation.ts';
import { startHarness } from '../support/c2-harness.ts';

const ctx = { actor: 'test' };

/** A lock service of our own port that records resources and can simulate a lost lease. */
class ScriptedLocks implements LockService {
  readonly resources: string[] = [];
  loseLease = false;
  async withLock<T>(
    resource: string,
    _ttlMs: number,
    work: (lease: Lease) => Promise<T>,
  ): Promise<T> {
    this.resources.push(resource);
    const controller = new AbortController();
    const lease: Lease = {
      resource,
      signal: controller.signal,
      remainingMs: () => (this.loseLease ? 0 : 10_000),
      assertHeld: () => {
        if (this.loseLease) throw new C2Error('C2_CONFLICT', 'lock lease lost');
      },
    };
    return await work(lease);
  }
}

void describe('rotation locks', () => {
  void it('a topic name of the longest allowed size is locked by its digest, and works', async () => {
    const h = await startHarness({ start: false });
    try {
      // 512 bytes: the name limit; with the `topic:` prefix it is longer than a lock resource.
      const topic = `long-${randomBytes(4).toString('hex')}-`.padEnd(512, 'T');
      assert.equal(Buffer.byteLength(topic), 512);
      await h.service.newTopic(ctx, topic);
      await h.service.rotateTopicKey(ctx, topic);
      assert.equal((await h.service.getTopic(topic)).keyVersion, 2);
      await h.service.removeTopic(ctx, topic);
    } finally {
      await h.close();
    }
    assert.equal(lockResourceOf('topic', 'a/b'), 'topic:a/b');
    const long = lockResourceOf('topic', 'x'.repeat(512));
    assert.match(long, /^topic:sha256:[0-9a-f]{64}$/);
    assert.equal(long, lockResourceOf('topic', 'x'.repeat(512)));
    assert.notEqual(long, lockResourceOf('topic', 'y'.repeat(512)));
  });

  void it('lock the topic or client being rotated, and a lost lease commits nothing', async () => {
    const locks = new ScriptedLocks();
    const h = await startHarness({ start: false, locks });
    try {
      const topic = `locked-${randomBytes(4).toString('hex')}`;
      await h.service.newTopic(ctx, topic);
      await h.service.rotateTopicKey(ctx, topic);
      await h.service.newClient(ctx, `${topic}-c`, new Uint8Array(32).fill(7));
      await h.service.rotateClientKey(ctx, `${topic}-c`);
      assert.deepEqual(locks.resources, [`topic:${topic}`, `topic:${topic}`, `client:${topic}-c`]);

      locks.loseLease = true;
      await assert.rejects(h.service.rotateTopicKey(ctx, topic), { code: 'C2_CONFLICT' });
      await assert.rejects(h.service.rotateClientKey(ctx, `${topic}-c`), { code: 'C2_CONFLICT' });
      assert.equal(
        (await h.service.getTopic(topic)).keyVersion,
        2,
        'the lost-lease rotation rolled back',
      );
      assert.equal((await h.service.getClient(`${topic}-c`)).keyVersion, 2);
      const audit = await h.schema.pool.query(
        `SELECT count(*)::int AS n FROM audit_log WHERE subject = $1 AND operation = 'RotateTopicKey'`,
        [topic],
      );
      assert.equal(
        (audit.rows[0] as { n: number }).n,
        1,
        'no audit record for the rolled-back rotation',
      );
    } finally {
      await h.close();
    }
  });

  void it('concurrent rotations stay linear even without any lock (the compare-and-set fences)', async () => {
    const noLocks: LockService = {
      withLock: (_r, _t, work) =>
        work({
          resource: '',
          signal: new AbortController().signal,
          remainingMs: () => 1,
          assertHeld: () => undefined,
        }),
    };
    const h = await startHarness({ start: false, locks: noLocks });
    try {
      const topic = `unlocked-${randomBytes(4).toString('hex')}`;
      await h.service.newTopic(ctx, topic);
      const results = await Promise.allSettled(
        Array.from({ length: 8 }, () => h.service.rotateTopicKey(ctx, topic)),
      );
      const versions = results.flatMap((r) =>
        r.status === 'fulfilled' ? [r.value.keyVersion] : [],
      );
      for (const r of results)
        if (r.status === 'rejected') assert.equal((r.reason as C2Error).code, 'C2_CONFLICT');
      const details = await h.service.getTopic(topic);
      assert.equal(details.keyVersion, 1 + versions.length);
      assert.deepEqual(
        details.keys.map((k) => k.version).sort((a, b) => a - b),
        Array.from({ length: details.keyVersion }, (_, i) => i + 1),
      );
    } finally {
      await h.close();
    }
  });
});
