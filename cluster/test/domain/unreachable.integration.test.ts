/**
 * Unreachable devices (restore-reconcile: the device holds an identity key the C2 does not have)
 * on the real PostgreSQL: nothing is planned for them on the per-device path either, no delivery
 * write turns the state back, and each way out (NewClient with a new key or the C2's own key,
 * RotateClientKey with the device's own public key, an authentic receipt) sends everything again.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ed25519KeyFromSeed, randomSymKey } from '../../../e4/index.ts';
import { syncDevice, type CommandPublisher, type DeviceSyncDeps } from '../../delivery/index.ts';
import { MIGRATIONS_DIR } from '../../storage/migrate.ts';
import { PgDelivery } from '../../storage/index.ts';
import { startHarness, type C2Harness } from '../support/c2-harness.ts';

const ctx = { actor: 'test' };
const REASON = 'identity key v2 was issued after the backup; re-provision the device';

/** A device (a member of one topic, its key delivered) that a reconciliation marked unreachable. */
async function unreachableDevice(
  h: C2Harness,
  key: Uint8Array,
): Promise<{ id: string; name: string }> {
  const name = `unreach-${randomBytes(4).toString('hex')}`;
  await h.service.newClient(ctx, name, key);
  await h.service.newTopic(ctx, `${name}-t`);
  await h.service.newTopicClient(ctx, name, `${name}-t`);
  const row = await h.store.read.clients.byName(name);
  assert.ok(row);
  await h.schema.pool.query(
    'UPDATE device_topics SET delivered_version = desired_version WHERE client_id = $1',
    [row.id],
  );
  await h.service.rotateTopicKey(ctx, `${name}-t`); // the reconciliation's jump: work for it
  await h.store.read.clients.setSync(row.id, { state: 'unreachable', attempts: 0, error: REASON });
  return { id: row.id, name };
}

function recording(): { publisher: CommandPublisher; sent: string[] } {
  const sent: string[] = [];
  return {
    sent,
    publisher: {
      publish: (topic) => {
        sent.push(topic);
        return Promise.resolve();
      },
    },
  };
}

void describe('unreachable devices, symmetric-key mode', () => {
  let h: C2Harness;
  before(async () => {
    h = await startHarness({ start: false });
  });
  after(async () => {
    await h.close();
  });

  const deps = (publisher: CommandPublisher): DeviceSyncDeps => ({
    store: h.store,
    sealer: h.service.deps.sealer,
    mode: 'symkey',
    publisher,
    clock: Date.now,
    sleep: () => Promise.resolve(),
    policy: { maxAttempts: 3, initialBackoffMs: 1, maxBackoffMs: 1, deadlineMs: 60_000 },
  });

  void it('the per-device path sends nothing, even after a failed attempt, and keeps the state', async () => {
    const device = await unreachableDevice(h, randomSymKey());
    const { publisher, sent } = recording();
    // priorFailures 1: a batched attempt failed before (its idle write would end the state).
    assert.equal(await syncDevice(deps(publisher), device.id, () => false, 1), 'idle');
    assert.deepEqual(sent, []);
    const { delivery } = await h.service.getClient(device.name);
    assert.deepEqual([delivery.state, delivery.error], ['unreachable', REASON]);
  });

  void it("NewClient with the C2's own key, or with a new one, re-provisions it", async () => {
    for (const sameKey of [true, false]) {
      const key = randomSymKey();
      const device = await unreachableDevice(h, key);
      await h.service.newClient(ctx, device.name, sameKey ? key : randomSymKey());
      const details = await h.service.getClient(device.name);
      assert.equal(details.delivery.state, 'idle', `same key: ${String(sameKey)}`);
      assert.ok(
        details.topics.every((t) => t.deliveredVersion === 0),
        'everything sent again',
      );
      const { publisher, sent } = recording();
      assert.equal(await syncDevice(deps(publisher), device.id), 'idle');
      assert.equal(sent.length, 1, 'its topic key went out');
    }
  });

  void it("migration 0011 turns an earlier reconciliation's failed mark into the state", async () => {
    // What restore-reconcile wrote before the state existed: failed, with this reason.
    const earlier = await unreachableDevice(h, randomSymKey());
    const reason =
      'identity key v3 was issued after the backup; the database has v1: re-provision the device';
    await h.store.read.clients.setSync(earlier.id, { state: 'failed', attempts: 0, error: reason });
    const ordinary = await unreachableDevice(h, randomSymKey());
    await h.store.read.clients.setSync(ordinary.id, {
      state: 'failed',
      attempts: 8,
      error: 'SetTopicKey: no PUBACK within 5000 ms',
    });
    const migration = await readFile(join(MIGRATIONS_DIR, '0011_unreachable.sql'), 'utf8');
    const update = migration.slice(migration.indexOf('UPDATE clients'));
    await h.schema.pool.query(update);
    assert.equal((await h.service.getClient(earlier.name)).delivery.state, 'unreachable');
    assert.equal((await h.service.getClient(ordinary.name)).delivery.state, 'failed');
  });

  void it('an authentic receipt ends it, and clears its reason', async () => {
    const device = await unreachableDevice(h, randomSymKey());
    assert.equal(await new PgDelivery(h.schema.pool).markSeen(device.id), true, 'to be retried');
    const { delivery } = await h.service.getClient(device.name);
    assert.deepEqual([delivery.state, delivery.error, delivery.failedAt], ['idle', null, null]);
  });
});

void describe('unreachable devices, public-key mode', () => {
  let h: C2Harness;
  before(async () => {
    h = await startHarness({ start: false, mode: 'pubkey' });
  });
  after(async () => {
    await h.close();
  });

  const publicKey = (): Uint8Array => ed25519KeyFromSeed(randomBytes(32)).subarray(32);

  void it('RotateClientKey with the public key the device made re-provisions it', async () => {
    const device = await unreachableDevice(h, publicKey());
    await h.service.rotateClientKey(ctx, device.name, publicKey());
    const details = await h.service.getClient(device.name);
    assert.equal(details.delivery.state, 'idle');
    assert.ok(
      details.topics.every((t) => t.deliveredVersion === 0),
      'everything sent again',
    );
  });
});
