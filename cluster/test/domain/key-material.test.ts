// The device public keys a client may be registered with in public-key mode: a valid curve point
// of large order. A low-order point gives no X25519 shared secret, so no command could ever reach
// the device (and, stored, it made delivery retry for ever).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ed25519KeyFromSeed, fromHex } from '../../../e4/index.ts';
import { checkClientKey } from '../../domain/key-material.ts';
import { C2Error } from '../../errors.ts';

/** The small-order Ed25519 encodings (orders 1, 2, 4, 8; libsodium's list). */
const LOW_ORDER_ED25519 = [
  '0100000000000000000000000000000000000000000000000000000000000000',
  'ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
  '0000000000000000000000000000000000000000000000000000000000000080',
  'c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a',
  'c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa',
  '26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05',
  '26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85',
];

void describe('checkClientKey, public-key mode', () => {
  void it('refuses every low-order point', () => {
    for (const hex of LOW_ORDER_ED25519) {
      assert.throws(
        () => checkClientKey('pubkey', fromHex(hex)),
        (err: unknown) => {
          assert.ok(C2Error.is(err, 'C2_VALIDATION'), `${hex}: ${String(err)}`);
          assert.match(err.message, /^invalid key: /, hex);
          return true;
        },
      );
    }
  });

  void it("accepts a device's real public key", () => {
    const pub = ed25519KeyFromSeed(new Uint8Array(32).fill(7)).slice(32);
    assert.equal(checkClientKey('pubkey', pub), pub);
  });
});
