/**
 * NewClient is an upsert: concurrent calls for one name, as a fleet's provisioning scripts or a
 * retrying client make them, all succeed (a unique violation of the second insert was a 500).
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { startHarness, type C2Harness } from '../support/c2-harness.ts';

const ctx = { actor: 'test' };

void describe('concurrent NewClient of one name', () => {
  let h: C2Harness;
  before(async () => {
    h = await startHarness({ start: false });
  });
  after(async () => {
    await h.close();
  });

  /** How many rows of `table` belong to the client named `name`. */
  async function rowsOf(table: 'clients' | 'client_keys', name: string): Promise<number> {
    const where =
      table === 'clients'
        ? 'SELECT count(*)::int AS n FROM clients WHERE name = $1'
        : 'SELECT count(*)::int AS n FROM client_keys k JOIN clients c ON c.id = k.client_id WHERE c.name = $1';
    const result = await h.schema.pool.query<{ n: number }>(where, [name]);
    return result.rows[0]?.n ?? -1;
  }

  void it('with one key: every call succeeds, one registers, the rest change nothing', async () => {
    const name = `same-key-${randomBytes(4).toString('hex')}`;
    const key = new Uint8Array(randomBytes(32));
    const results = await Promise.allSettled(
      Array.from({ length: 20 }, () => h.service.newClient(ctx, name, key)),
    );
    const failures = results.filter((r) => r.status === 'rejected');
    assert.deepEqual(failures, [], 'no call failed');
    const values = results.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
    assert.equal(values.filter((v) => v.created).length, 1, 'exactly one call registered it');
    assert.deepEqual(new Set(values.map((v) => v.keyVersion)), new Set([1]));
    assert.equal(await rowsOf('clients', name), 1);
    assert.equal(await rowsOf('client_keys', name), 1, 'one key version stored');
  });

  void it('with different keys: every call succeeds, each key a version of its own', async () => {
    const name = `other-keys-${randomBytes(4).toString('hex')}`;
    const calls = 8;
    const results = await Promise.allSettled(
      Array.from({ length: calls }, () =>
        h.service.newClient(ctx, name, new Uint8Array(randomBytes(32))),
      ),
    );
    assert.deepEqual(
      results.filter((r) => r.status === 'rejected'),
      [],
      'no call failed',
    );
    const versions = results
      .flatMap((r) => (r.status === 'fulfilled' ? [r.value.keyVersion] : []))
      .sort((a, b) => a - b);
    assert.deepEqual(
      versions,
      Array.from({ length: calls }, (_, i) => i + 1),
      'versions 1..N, no gap and no repeat',
    );
    assert.equal((await h.service.getClient(name)).keyVersion, calls);
    assert.equal(await rowsOf('client_keys', name), calls);
  });
});
