/**
 * A backup can hold events that were committed but not yet positioned (the sequencer runs a
 * moment after each commit), so restore.sh's mark, the last positioned event, is a little
 * behind what the backup holds: the archive's first positions after it may be the backup's own
 * events. On the real PostgreSQL: a client created in that moment is not reported as "created
 * again after the backup" (unreachable, re-provision), while a real re-creation still is.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { randomSymKey } from '../../../e4/index.ts';
import type { IssuedSubject } from '../../domain/index.ts';
import { startHarness, type C2Harness } from '../support/c2-harness.ts';

const ctx = { actor: 'test' };

void describe('restore-reconcile, a backup that holds events not yet positioned', () => {
  let h: C2Harness;
  before(async () => {
    h = await startHarness({ start: false });
  });
  after(async () => {
    await h.close();
  });

  void it('reports a client created again after the backup, not one whose creation the backup holds unpositioned', async () => {
    const early = `early-${randomBytes(4).toString('hex')}`;
    const late = `late-${randomBytes(4).toString('hex')}`;
    await h.service.newClient(ctx, early, randomSymKey());
    const restoredAt = BigInt(await h.service.latestEventSeq()); // positions early's creation
    // Committed just before the dump's snapshot; the sequencer had not positioned it yet.
    await h.service.newClient(ctx, late, randomSymKey());
    // restore.sh's mark (its SQL): the last positioned event.
    await h.schema.pool.query(
      `INSERT INTO c2_settings (name, value)
         SELECT 'restore_pending', coalesce((SELECT max(last_seq) FROM event_stream), 0)::text
       ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value`,
    );
    assert.equal((await h.service.restoreStatus()).restoredPosition, restoredAt.toString());

    // The lost database positioned late's creation right after the backup's position; then
    // early was removed and created again (another device's key) after the backup.
    const clients = new Map<string, IssuedSubject>([
      [late, { version: 1, removed: false, createdSeq: restoredAt + 1n }],
      [early, { version: 1, removed: false, createdSeq: restoredAt + 3n }],
    ]);
    const result = await h.service.reconcileAfterRestore(ctx, {
      issued: { topics: new Map(), clients, lastEventSeq: restoredAt + 3n },
    });
    assert.deepEqual(result.unreachableClients, [early]);
    assert.equal((await h.service.getClient(late)).delivery.state, 'idle');
    const marked = await h.service.getClient(early);
    assert.equal(marked.delivery.state, 'unreachable');
    assert.match(marked.delivery.error ?? '', /removed and created again after the backup/);
  });
});
