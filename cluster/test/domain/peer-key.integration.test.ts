// SendClientPubKey refuses a source whose public key is of low order, with the error registration
// gives (checkClientKey). Registration refuses such keys, but an earlier release stored them, and
// SendClientPubKey queued one for the target: with the identity point as a peer key, one public
// signature verifies for every message, so the target would take anyone's message as the source's.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { ed25519KeyFromSeed } from '../../../e4/index.ts';
import { C2Error } from '../../errors.ts';
import { startHarness, type C2Harness } from '../support/c2-harness.ts';

const ctx = { actor: 'test' };
/** Low-order Ed25519 encodings: the identity (order 1) and y = -1 (order 2). */
const LOW_ORDER = [
  '0100000000000000000000000000000000000000000000000000000000000000',
  'ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
];

void describe('SendClientPubKey: the peer key a device is sent', () => {
  let h: C2Harness;
  const name = (what: string): string => `${what}-${randomBytes(4).toString('hex')}`;
  const register = async (client: string): Promise<string> => {
    await h.service.newClient(
      ctx,
      client,
      ed25519KeyFromSeed(new Uint8Array(randomBytes(32))).slice(32),
    );
    const row = await h.store.read.clients.byName(client);
    assert.ok(row);
    return row.id;
  };
  const pendingPeerKey = (targetId: string) => h.store.read.peers.nextPendingPubKey(targetId);

  before(async () => {
    h = await startHarness({ start: false, mode: 'pubkey' });
  });
  after(async () => {
    await h.close();
  });

  for (const hex of LOW_ORDER) {
    void it(`refuses a source stored with a low-order key (${hex.slice(0, 8)}…), as registration does`, async () => {
      const source = name('src');
      const target = name('dst');
      const sourceId = await register(source);
      const targetId = await register(target);
      // As an earlier release stored it (registration refuses it now).
      await h.schema.pool.query('UPDATE client_keys SET public_key = $2 WHERE client_id = $1', [
        sourceId,
        Buffer.from(hex, 'hex'),
      ]);
      await assert.rejects(h.service.sendClientPubKey(ctx, source, target), (err: unknown) => {
        assert.ok(C2Error.is(err, 'C2_VALIDATION'), String(err));
        assert.match(err.message, /^invalid key: /);
        assert.equal(err.details?.['field'], 'sourceClient.name');
        return true;
      });
      assert.equal(await pendingPeerKey(targetId), undefined, 'nothing queued for the target');
      // The same key is refused at registration with the same code and message prefix.
      await assert.rejects(
        h.service.newClient(ctx, name('direct'), Buffer.from(hex, 'hex')),
        (err: unknown) => C2Error.is(err, 'C2_VALIDATION') && /^invalid key: /.test(err.message),
      );
    });
  }

  void it("queues a source's valid key", async () => {
    const source = name('src');
    const target = name('dst');
    await register(source);
    const targetId = await register(target);
    await h.service.sendClientPubKey(ctx, source, target);
    assert.ok(await pendingPeerKey(targetId));
  });
});
