// Property tests of message protection in both modes: round trips with injected clocks, the
// timestamp window edges (whole and sub-second clocks), and rejection of every single-bit flip.
import assert from 'node:assert/strict';
import type { KeyObject } from 'node:crypto';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import {
  AesSivKey,
  E4Error,
  E4ErrorCode,
  ed25519KeyFromSeed,
  ed25519PublicKey,
  ed25519PublicKeyObject,
  ed25519SigningKey,
  ed25519Verify,
  PK_OVERHEAD,
  protectPubKey,
  protectPubKeyAt,
  protectSymKey,
  protectSymKeyAt,
  readInt64LE,
  referenceMessages,
  SK_OVERHEAD,
  toHex,
  unprotectPubKey,
  unprotectSymKey,
  type Clock,
  type PkSigner,
  type PubKeyLookup,
} from '../index.ts';
import { assertBytes, fixedClock, flipBit, sequentialBytes, throwsE4 } from './support.ts';

const key32 = fc.uint8Array({ minLength: 32, maxLength: 32 }).filter((k) => k.some((b) => b !== 0));
/** Clock readings in milliseconds between 2001 and 2096, with arbitrary sub-second parts. */
const nowMs = fc.integer({ min: 1_000_000_000_000, max: 4_000_000_000_000 });
const payload = (min: number): fc.Arbitrary<Uint8Array> =>
  fc.uint8Array({ minLength: min, maxLength: 2048 });

interface Signer {
  readonly signer: PkSigner;
  readonly publicKey: KeyObject;
}

/** A few fixed Ed25519 identities (key generation is not what these properties exercise). */
const signers: readonly Signer[] = [1, 2, 3].map((n) => {
  const goKey = ed25519KeyFromSeed(new Uint8Array(32).fill(n));
  return {
    signer: { id: new Uint8Array(16).fill(0x10 + n), signingKey: ed25519SigningKey(goKey) },
    publicKey: ed25519PublicKeyObject(ed25519PublicKey(goKey)),
  };
});
const signerArb = fc.constantFrom(...signers);

function lookupOf(...known: readonly Signer[]): PubKeyLookup {
  const map = new Map(known.map((s) => [toHex(s.signer.id), s.publicKey]));
  return (idHex) => map.get(idHex);
}

const allSigners = lookupOf(...signers);

function seconds(ms: number): bigint {
  return BigInt(Math.floor(ms / 1000));
}

void describe('SK mode round trips', () => {
  void it('unprotect(protect(p)) = p for 1..2048 bytes, with a stamped clock second', () => {
    fc.assert(
      fc.property(payload(1), key32, nowMs, fc.boolean(), (p, key, now, prepared) => {
        const clock = fixedClock(now);
        const k = prepared ? new AesSivKey(key) : key;
        const message = protectSymKey(p, k, clock);
        assert.equal(message.length, p.length + SK_OVERHEAD);
        assert.equal(readInt64LE(message), seconds(now));
        assertBytes(unprotectSymKey(message, key, clock), p);
        assertBytes(unprotectSymKey(message, new AesSivKey(key), clock), p);
      }),
      { numRuns: 150 },
    );
  });

  void it('protectSymKeyAt and protectSymKey agree for the clock second', () => {
    fc.assert(
      fc.property(payload(0), key32, nowMs, (p, key, now) => {
        assertBytes(protectSymKey(p, key, fixedClock(now)), protectSymKeyAt(p, key, seconds(now)));
      }),
      { numRuns: 40 },
    );
  });

  void it('an empty payload protects to 24 bytes that unprotect refuses (as e4go)', () => {
    const key = new Uint8Array(32).fill(9);
    const clock = fixedClock(1_700_000_000_000);
    const message = protectSymKey(new Uint8Array(0), key, clock);
    assert.equal(message.length, SK_OVERHEAD);
    const err = throwsE4(
      () => unprotectSymKey(message, key, clock),
      E4ErrorCode.TooShortCiphertext,
    );
    assert.equal(err.message, referenceMessages.TooShortCiphertext);
  });

  void it('every length up to 24 bytes is TooShortCiphertext, before any timestamp check', () => {
    const key = new Uint8Array(32).fill(9);
    for (let length = 0; length <= SK_OVERHEAD; length++) {
      throwsE4(
        () => unprotectSymKey(new Uint8Array(length).fill(0xff), key, fixedClock(0)),
        E4ErrorCode.TooShortCiphertext,
      );
    }
  });

  void it('a wrong key is NotAuthentic', () => {
    fc.assert(
      fc.property(payload(1), key32, key32, nowMs, (p, k1, k2, now) => {
        fc.pre(toHex(k1) !== toHex(k2));
        const clock = fixedClock(now);
        throwsE4(() => unprotectSymKey(protectSymKey(p, k1, clock), k2, clock), 'NotAuthentic');
      }),
      { numRuns: 30 },
    );
  });

  void it('defaults to the system clock', () => {
    const key = new Uint8Array(32).fill(3);
    const message = protectSymKey(sequentialBytes(5), key);
    const stamped = readInt64LE(message);
    assert.ok(stamped <= seconds(Date.now()) && stamped >= seconds(Date.now()) - 5n);
    assertBytes(unprotectSymKey(message, key), sequentialBytes(5));
  });
});

void describe('all-zero keys', () => {
  const zeros = new Uint8Array(32);
  const clock = fixedClock(1_700_000_000_000);
  const fine = new Uint8Array(32).fill(9);

  void it('SK: protect refuses one; unprotect refuses one after the length and time checks', () => {
    throwsE4(() => protectSymKey(sequentialBytes(3), zeros, clock), E4ErrorCode.InvalidKey);
    throwsE4(() => protectSymKeyAt(sequentialBytes(3), zeros, 1n), E4ErrorCode.InvalidKey);
    const message = protectSymKey(sequentialBytes(3), fine, clock);
    const err = throwsE4(() => unprotectSymKey(message, zeros, clock), E4ErrorCode.InvalidKey);
    assert.equal(err.message, 'invalid symmetric key, all zeros');
    // e4go's order: the length and the timestamp window come before the key (Decrypt).
    throwsE4(() => unprotectSymKey(message.subarray(0, 24), zeros, clock), 'TooShortCiphertext');
    throwsE4(
      () => unprotectSymKey(message, zeros, fixedClock(1_700_000_000_000 + 601_000)),
      'TimestampTooOld',
    );
  });

  void it('PK: a topic key of all zeros is refused on both sides', () => {
    const [a] = signers;
    assert.ok(a !== undefined);
    throwsE4(() => protectPubKey(sequentialBytes(3), zeros, a.signer, clock), 'InvalidKey');
    const message = protectPubKey(sequentialBytes(3), fine, a.signer, clock);
    throwsE4(() => unprotectPubKey(message, zeros, lookupOf(a), clock), 'InvalidKey');
  });
});

void describe('PK mode round trips', () => {
  void it('unprotect(protect(p)) = p for 0..2048 bytes, signed by the sender', () => {
    fc.assert(
      fc.property(payload(0), key32, nowMs, signerArb, (p, key, now, s) => {
        const clock = fixedClock(now);
        const message = protectPubKey(p, key, s.signer, clock);
        assert.equal(message.length, p.length + PK_OVERHEAD);
        assert.equal(readInt64LE(message), seconds(now));
        assertBytes(message.subarray(8, 24), s.signer.id);
        const signed = message.subarray(0, message.length - 64);
        assert.ok(ed25519Verify(s.publicKey, signed, message.subarray(message.length - 64)));
        assertBytes(unprotectPubKey(message, key, allSigners, clock), p);
        assertBytes(unprotectPubKey(message, new AesSivKey(key), lookupOf(s), clock), p);
      }),
      { numRuns: 100 },
    );
  });

  void it('protectPubKeyAt and protectPubKey agree (Ed25519 is deterministic)', () => {
    const s = signers[0];
    assert.ok(s !== undefined);
    fc.assert(
      fc.property(payload(0), key32, nowMs, (p, key, now) => {
        assertBytes(
          protectPubKey(p, key, s.signer, fixedClock(now)),
          protectPubKeyAt(p, key, s.signer, seconds(now)),
        );
      }),
      { numRuns: 20 },
    );
  });

  void it('an unknown signer is PubKeyNotFound; a wrong public key is InvalidSignature', () => {
    const [a, b] = signers;
    assert.ok(a !== undefined && b !== undefined);
    const clock = fixedClock(1_700_000_000_500);
    const key = new Uint8Array(32).fill(4);
    const message = protectPubKey(sequentialBytes(10), key, a.signer, clock);
    throwsE4(() => unprotectPubKey(message, key, lookupOf(b), clock), 'PubKeyNotFound');
    const impostor: PubKeyLookup = () => b.publicKey;
    throwsE4(() => unprotectPubKey(message, key, impostor, clock), 'InvalidSignature');
    // The signature is checked before decryption: a wrong topic key with a good signature is
    // NotAuthentic, never InvalidSignature.
    throwsE4(
      () => unprotectPubKey(message, new Uint8Array(32).fill(5), lookupOf(a), clock),
      'NotAuthentic',
    );
  });

  void it('below 104 bytes is InvalidProtectedLen, whatever the content', () => {
    const key = new Uint8Array(32).fill(4);
    for (let length = 0; length < PK_OVERHEAD; length++) {
      throwsE4(
        () => unprotectPubKey(new Uint8Array(length), key, allSigners, fixedClock(0)),
        'InvalidProtectedLen',
      );
    }
  });

  void it('refuses a signer id that is not 16 bytes with InvalidID', () => {
    const s = signers[0];
    assert.ok(s !== undefined);
    for (const length of [0, 15, 17, 32]) {
      throwsE4(
        () =>
          protectPubKey(
            sequentialBytes(3),
            new Uint8Array(32).fill(1),
            { id: new Uint8Array(length), signingKey: s.signer.signingKey },
            fixedClock(0),
          ),
        'InvalidID',
      );
    }
  });
});

type Mode = 'sk' | 'pk';

function protectAt(mode: Mode, p: Uint8Array, key: Uint8Array, ts: bigint): Uint8Array {
  const s = signers[0];
  assert.ok(s !== undefined);
  return mode === 'sk' ? protectSymKeyAt(p, key, ts) : protectPubKeyAt(p, key, s.signer, ts);
}

function unprotectIn(mode: Mode, message: Uint8Array, key: Uint8Array, clock: Clock): Uint8Array {
  return mode === 'sk'
    ? unprotectSymKey(message, key, clock)
    : unprotectPubKey(message, key, allSigners, clock);
}

const modeArb = fc.constantFrom<Mode>('sk', 'pk');

void describe('timestamp window', () => {
  const key = new Uint8Array(32).fill(0x42);
  const p = sequentialBytes(7);

  void it('accepts now and now - 600 s; refuses now - 601 s and now + 1 s (whole seconds)', () => {
    fc.assert(
      fc.property(modeArb, fc.integer({ min: 1_000_000_000, max: 4_000_000_000 }), (mode, s) => {
        const clock = fixedClock(s * 1000);
        const now = BigInt(s);
        assertBytes(unprotectIn(mode, protectAt(mode, p, key, now), key, clock), p);
        assertBytes(unprotectIn(mode, protectAt(mode, p, key, now - 600n), key, clock), p);
        const old = throwsE4(
          () => unprotectIn(mode, protectAt(mode, p, key, now - 601n), key, clock),
          'TimestampTooOld',
        );
        assert.equal(old.message, referenceMessages.TimestampTooOld);
        const future = throwsE4(
          () => unprotectIn(mode, protectAt(mode, p, key, now + 1n), key, clock),
          'TimestampInFuture',
        );
        assert.equal(future.message, referenceMessages.TimestampInFuture);
      }),
      { numRuns: 30 },
    );
  });

  void it('with a sub-second clock, floor(now) - 600 is too old and floor(now) - 599 is not', () => {
    fc.assert(
      fc.property(
        modeArb,
        fc.integer({ min: 1_000_000_000, max: 4_000_000_000 }),
        fc.integer({ min: 1, max: 999 }),
        (mode, s, ms) => {
          const clock = fixedClock(s * 1000 + ms);
          const floor = BigInt(s);
          throwsE4(
            () => unprotectIn(mode, protectAt(mode, p, key, floor - 600n), key, clock),
            'TimestampTooOld',
          );
          assertBytes(unprotectIn(mode, protectAt(mode, p, key, floor - 599n), key, clock), p);
          assertBytes(unprotectIn(mode, protectAt(mode, p, key, floor), key, clock), p);
          throwsE4(
            () => unprotectIn(mode, protectAt(mode, p, key, floor + 1n), key, clock),
            'TimestampInFuture',
          );
        },
      ),
      { numRuns: 30 },
    );
  });

  void it('a timestamp at or above 2^63 reads as negative: too old; 2^63 - 1 is in the future', () => {
    const clock = fixedClock(1_700_000_000_000);
    for (const mode of ['sk', 'pk'] as const) {
      for (const ts of [1n << 63n, (1n << 64n) - 1n, (1n << 63n) + 12345n]) {
        throwsE4(
          () => unprotectIn(mode, protectAt(mode, p, key, ts), key, clock),
          'TimestampTooOld',
        );
      }
      throwsE4(
        () => unprotectIn(mode, protectAt(mode, p, key, (1n << 63n) - 1n), key, clock),
        'TimestampInFuture',
      );
      throwsE4(() => unprotectIn(mode, protectAt(mode, p, key, 0n), key, clock), 'TimestampTooOld');
    }
  });

  void it('checks the timestamp before authenticity and the signer', () => {
    const clock = fixedClock(1_700_000_000_000);
    const garbled = (mode: Mode, ts: bigint): Uint8Array => {
      const message = protectAt(mode, p, key, ts);
      message.fill(0xab, 8); // destroy id, tag, ciphertext and signature
      return message;
    };
    for (const mode of ['sk', 'pk'] as const) {
      throwsE4(
        () => unprotectIn(mode, garbled(mode, 1_699_999_000n), key, clock),
        'TimestampTooOld',
      );
      throwsE4(
        () => unprotectIn(mode, garbled(mode, 1_700_000_001n), key, clock),
        'TimestampInFuture',
      );
    }
    throwsE4(() => unprotectIn('sk', garbled('sk', 1_700_000_000n), key, clock), 'NotAuthentic');
    throwsE4(() => unprotectIn('pk', garbled('pk', 1_700_000_000n), key, clock), 'PubKeyNotFound');
  });
});

void describe('single-bit flips', () => {
  const timestampCodes = new Set<string>(['TimestampInFuture', 'TimestampTooOld']);

  void it('SK: any flipped bit is rejected; outside the timestamp always as NotAuthentic', () => {
    fc.assert(
      fc.property(payload(1), key32, nowMs, fc.nat(), (p, key, now, bitSeed) => {
        const clock = fixedClock(now);
        const message = protectSymKey(p, key, clock);
        const bit = bitSeed % (message.length * 8);
        const err = throwsE4(() => unprotectSymKey(flipBit(message, bit), key, clock));
        if (bit < 64) {
          assert.ok(timestampCodes.has(err.code) || err.code === 'NotAuthentic', err.code);
        } else {
          assert.equal(err.code, E4ErrorCode.NotAuthentic);
        }
      }),
      { numRuns: 300 },
    );
  });

  void it('PK: any flipped bit is rejected with the code of the region it hits', () => {
    fc.assert(
      fc.property(payload(0), key32, nowMs, signerArb, fc.nat(), (p, key, now, s, bitSeed) => {
        const clock = fixedClock(now);
        const message = protectPubKey(p, key, s.signer, clock);
        const bit = bitSeed % (message.length * 8);
        const err = throwsE4(() => unprotectPubKey(flipBit(message, bit), key, allSigners, clock));
        if (bit < 64) {
          assert.ok(timestampCodes.has(err.code) || err.code === 'InvalidSignature', err.code);
        } else if (bit < 24 * 8) {
          assert.equal(err.code, E4ErrorCode.PubKeyNotFound);
        } else {
          assert.equal(err.code, E4ErrorCode.InvalidSignature);
        }
      }),
      { numRuns: 300 },
    );
  });

  void it('exhaustively for one short message of each mode', () => {
    const clock = fixedClock(1_700_000_000_250);
    const key = new Uint8Array(32).fill(0x77);
    const s = signers[1];
    assert.ok(s !== undefined);
    const sk = protectSymKey(sequentialBytes(3), key, clock);
    const pk = protectPubKey(sequentialBytes(3), key, s.signer, clock);
    for (const [message, open] of [
      [sk, (m: Uint8Array) => unprotectSymKey(m, key, clock)],
      [pk, (m: Uint8Array) => unprotectPubKey(m, key, allSigners, clock)],
    ] as const) {
      for (let bit = 0; bit < message.length * 8; bit++) {
        assert.throws(() => open(flipBit(message, bit)), E4Error, `bit ${bit}`);
      }
      assertBytes(open(message), sequentialBytes(3));
    }
  });
});
