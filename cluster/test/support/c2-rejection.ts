/** Awaiting a promise that must reject with a {@link C2Error}, for tests of error codes. */
import assert from 'node:assert/strict';
import { C2Error } from '../../errors.ts';

/** Awaits `promise` and returns the C2Error it rejects with; fails if it resolves or rejects otherwise. */
export async function c2Rejection(promise: Promise<unknown>): Promise<C2Error> {
  try {
    await promise;
  } catch (err) {
    assert.ok(C2Error.is(err), `expected a C2Error, got ${String(err)}`);
    return err;
  }
  assert.fail('expected a rejection');
}
