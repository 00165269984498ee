/**
 * A reconciliation on a database never restored rotates every topic key and moves the event
 * stream a million positions for nothing: the CLI refused it, but a call to the API itself
 * (`POST /v1/admin/reconcile-restore`, gRPC `ReconcileAfterRestore`) ran it. The server refuses
 * it, changing nothing, unless `force`; on the real PostgreSQL.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { C2Error } from '../../errors.ts';
import { startHarness, type C2Harness } from '../support/c2-harness.ts';

const ctx = { actor: 'test' };

void describe('restore-reconcile on a database never restored', () => {
  let h: C2Harness;
  before(async () => {
    h = await startHarness({ start: false });
  });
  after(async () => {
    await h.close();
  });

  void it('is refused with C2_FAILED_PRECONDITION and changes nothing, unless force', async () => {
    await h.service.newTopic(ctx, 'plant/line-1');
    const seq = await h.service.latestEventSeq();
    await assert.rejects(
      h.service.reconcileAfterRestore(ctx, { versionMargin: 10 }),
      (err: unknown) =>
        err instanceof C2Error &&
        err.code === 'C2_FAILED_PRECONDITION' &&
        /not marked as restored/.test(err.message),
    );
    assert.equal((await h.service.getTopic('plant/line-1')).keyVersion, 1, 'no key jumped');
    assert.equal(await h.service.latestEventSeq(), seq, 'the event stream did not move');

    const forced = await h.service.reconcileAfterRestore(ctx, { versionMargin: 10, force: true });
    assert.equal(forced.topicsRotated, 1);
    assert.equal((await h.service.getTopic('plant/line-1')).keyVersion, 11);
    // Kept by that run: a run again is the same restore's, no longer refused.
    await h.service.reconcileAfterRestore(ctx, { versionMargin: 10 });
    assert.equal((await h.service.getTopic('plant/line-1')).keyVersion, 21);
  });
});
