// AES-SIV as E4 uses it (K1 = K2 = the 32-byte E4 key): known answers, a differential check
// against a naive RFC 5297 implementation written here (validated on the RFC's own vectors),
// reuse of one AesSivKey across arbitrary interleavings, tampering and key validation.
import assert from 'node:assert/strict';
import { createCipheriv } from 'node:crypto';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import {
  AesSivKey,
  aesSivOpen,
  aesSivSeal,
  concatBytes,
  E4ErrorCode,
  fromHex,
  referenceMessages,
  toHex,
} from '../index.ts';
import { assertBytes, sequentialBytes, throwsE4 } from './support.ts';

// ---------------------------------------------------------------------------------------------
// A deliberately naive RFC 5297 / RFC 4493 implementation: one fresh ECB cipher per block, no
// caching, separate MAC and CTR keys. It shares no code with e4/src/aes-siv.ts.

function aesBlock(key: Uint8Array, block: Uint8Array): Uint8Array {
  const cipher = createCipheriv(`aes-${key.length * 8}-ecb`, key, null).setAutoPadding(false);
  return new Uint8Array(cipher.update(block));
}

function xor(a: Uint8Array, b: Uint8Array): Uint8Array {
  return Uint8Array.from(a, (v, i) => v ^ (b[i] ?? 0));
}

function double(block: Uint8Array): Uint8Array {
  let value = 0n;
  for (const b of block) value = (value << 8n) | BigInt(b);
  const carry = value >> 127n;
  value = (value << 1n) & ((1n << 128n) - 1n);
  if (carry === 1n) value ^= 0x87n;
  const out = new Uint8Array(16);
  for (let i = 15; i >= 0; i--) {
    out[i] = Number(value & 0xffn);
    value >>= 8n;
  }
  return out;
}

function refCmac(key: Uint8Array, message: Uint8Array): Uint8Array {
  const k1 = double(aesBlock(key, new Uint8Array(16)));
  const k2 = double(k1);
  const blocks = Math.max(1, Math.ceil(message.length / 16));
  const complete = message.length > 0 && message.length % 16 === 0;
  let x: Uint8Array = new Uint8Array(16);
  for (let i = 0; i < blocks; i++) {
    let block: Uint8Array = new Uint8Array(16);
    const chunk = message.subarray(i * 16, i * 16 + 16);
    block.set(chunk);
    if (i === blocks - 1) {
      if (complete) block = xor(block, k1);
      else {
        block[chunk.length] = 0x80;
        block = xor(block, k2);
      }
    }
    x = aesBlock(key, xor(x, block));
  }
  return x;
}

function refS2v(key: Uint8Array, components: readonly Uint8Array[], last: Uint8Array): Uint8Array {
  let d = refCmac(key, new Uint8Array(16));
  for (const c of components) d = xor(double(d), refCmac(key, c));
  if (last.length >= 16) {
    const t = new Uint8Array(last);
    t.set(xor(t.subarray(t.length - 16), d), t.length - 16);
    return refCmac(key, t);
  }
  const padded = new Uint8Array(16);
  padded.set(last);
  padded[last.length] = 0x80;
  return refCmac(key, xor(double(d), padded));
}

function refSeal(
  macKey: Uint8Array,
  ctrKey: Uint8Array,
  components: readonly Uint8Array[],
  plaintext: Uint8Array,
): Uint8Array {
  const v = refS2v(macKey, components, plaintext);
  const q = new Uint8Array(v);
  q[8] = (q[8] ?? 0) & 0x7f;
  q[12] = (q[12] ?? 0) & 0x7f;
  const ctr = createCipheriv(`aes-${ctrKey.length * 8}-ctr`, ctrKey, q);
  const c = concatBytes(ctr.update(plaintext), ctr.final());
  return concatBytes(v, c);
}

// ---------------------------------------------------------------------------------------------

const KEY_A = sequentialBytes(32);
const KEY_B = fromHex('000102030405060708090a0b0c0d0e0f0f0e0d0c0b0a09080706050403020100');

const bytes = (max: number): fc.Arbitrary<Uint8Array> => fc.uint8Array({ maxLength: max });
// All zeros is not an E4 key (AesSivKey refuses it, as e4go does).
const key32 = fc.uint8Array({ minLength: 32, maxLength: 32 }).filter((k) => k.some((b) => b !== 0));
const components = fc.array(bytes(70), { maxLength: 4 });

void describe('AES-SIV known answers (K1 = K2)', () => {
  void it('seals key 0..31, AD 0001020304050607, plaintext 0..63', () => {
    const sealed = aesSivSeal(KEY_A, [fromHex('0001020304050607')], sequentialBytes(64));
    assert.equal(
      toHex(sealed),
      'a3aa7116fa4df9d24e1ca02ded5da4c845b190581922cb00de091fc8fb7f065b91e691bb559ad69a8298624aa31df4bb8a3a8cfe556becf5d4e996bb93ac1416b14c4b8939f96ec5daae22d0ebe4af53',
    );
    assertBytes(aesSivOpen(KEY_A, [fromHex('0001020304050607')], sealed), sequentialBytes(64));
  });

  void it('seals the RFC 5297 A.1 inputs under a symmetric 32-byte key', () => {
    const ad = fromHex('101112131415161718191a1b1c1d1e1f2021222324252627');
    const pt = fromHex('112233445566778899aabbccddee');
    const sealed = new AesSivKey(KEY_B).seal([ad], pt);
    assert.equal(toHex(sealed), 'c4f1f84564d0cd1488d3c70ab582a427bbc935b2d28d10d19b08963820ba');
    assertBytes(new AesSivKey(KEY_B).open([ad], sealed), pt);
  });

  void it('computes the NIST SP 800-38B AES-256 CMAC examples', () => {
    const key = new AesSivKey(
      fromHex('603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4'),
    );
    const m = fromHex(
      '6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e5130c81c46a35ce411e5fbc1191a0a52eff69f2445df4f9b17ad2b417be66c3710',
    );
    assert.equal(toHex(key.cmac(m.subarray(0, 0))), '028962f61b7bf89efc6b551f4667d983');
    assert.equal(toHex(key.cmac(m.subarray(0, 16))), '28a7023f452e8f82bd4bf28d8c37c35c');
    assert.equal(toHex(key.cmac(m.subarray(0, 40))), 'aaf3d8f1de5640c232f5b169b9c911e6');
    assert.equal(toHex(key.cmac(m)), 'e1992190549f6ed5696a2c056c315410');
  });
});

void describe('AES-SIV against a naive RFC 5297 implementation', () => {
  void it('the naive implementation reproduces RFC 5297 A.1 and A.2', () => {
    const a1Key = fromHex('fffefdfcfbfaf9f8f7f6f5f4f3f2f1f0f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff');
    const a1 = refSeal(
      a1Key.subarray(0, 16),
      a1Key.subarray(16),
      [fromHex('101112131415161718191a1b1c1d1e1f2021222324252627')],
      fromHex('112233445566778899aabbccddee'),
    );
    assert.equal(toHex(a1), '85632d07c6e8f37f950acd320a2ecc9340c02b9690c4dc04daef7f6afe5c');

    const a2Key = fromHex('7f7e7d7c7b7a79787776757473727170404142434445464748494a4b4c4d4e4f');
    const a2 = refSeal(
      a2Key.subarray(0, 16),
      a2Key.subarray(16),
      [
        fromHex('00112233445566778899aabbccddeeffdeaddadadeaddadaffeeddccbbaa99887766554433221100'),
        fromHex('102030405060708090a0'),
        fromHex('09f911029d74e35bd84156c5635688c0'),
      ],
      fromHex(
        '7468697320697320736f6d6520706c61696e7465787420746f20656e6372797074207573696e67205349562d414553',
      ),
    );
    assert.equal(
      toHex(a2),
      '7bdb6e3b432667eb06f4d14bff2fbd0fcb900f2fddbe404326601965c889bf17dba77ceb094fa663b7a3f748ba8af829ea64ad544a272e9c485b62a3fd5c0d',
    );
  });

  void it('seal equals the naive implementation with K1 = K2 for random inputs', () => {
    fc.assert(
      fc.property(key32, components, bytes(200), (key, ads, pt) => {
        const expected = refSeal(key, key, ads, pt);
        assertBytes(aesSivSeal(key, ads, pt), expected);
        assertBytes(aesSivOpen(key, ads, expected), pt);
      }),
      { numRuns: 150 },
    );
  });

  void it('cmac equals the naive CMAC for every length around block boundaries', () => {
    const key = new AesSivKey(KEY_A);
    for (let length = 0; length <= 80; length++) {
      const message = sequentialBytes(length).map((b) => b ^ 0x5a);
      assertBytes(key.cmac(message), refCmac(KEY_A, message), `length ${length}`);
    }
  });
});

/** One operation on a shared key; the expected result is recomputed with a fresh key. */
type Op =
  | { readonly kind: 'seal'; readonly ads: Uint8Array[]; readonly pt: Uint8Array }
  | { readonly kind: 'open'; readonly ads: Uint8Array[]; readonly pt: Uint8Array }
  | { readonly kind: 'openTampered'; readonly ads: Uint8Array[]; readonly pt: Uint8Array }
  | { readonly kind: 'cmac'; readonly message: Uint8Array };

/** Sizes on both sides of the block and of any internal buffer growth. */
const sizedBytes = fc.oneof(
  bytes(40),
  bytes(300),
  fc.uint8Array({ minLength: 250, maxLength: 1100 }),
);

const opArb: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ kind: fc.constant('seal' as const), ads: components, pt: sizedBytes }),
  fc.record({ kind: fc.constant('open' as const), ads: components, pt: sizedBytes }),
  fc.record({ kind: fc.constant('openTampered' as const), ads: components, pt: sizedBytes }),
  fc.record({ kind: fc.constant('cmac' as const), message: sizedBytes }),
);

/** `bytes` copied into a larger buffer at `offset`, as network buffers often are. */
function atOffset(bytes: Uint8Array, offset: number): Uint8Array {
  const backing = new Uint8Array(offset + bytes.length + 3).fill(0xa5);
  backing.set(bytes, offset);
  return backing.subarray(offset, offset + bytes.length);
}

void describe('AesSivKey reuse', () => {
  void it('any sequence of seal/open/cmac on one key matches fresh keys', () => {
    fc.assert(
      fc.property(
        key32,
        fc.array(fc.tuple(opArb, fc.nat(7)), { minLength: 1, maxLength: 20 }),
        (key, ops) => {
          const shared = new AesSivKey(key);
          // Every output handed out, with its expected content: later calls must not alter it.
          const outputs: [Uint8Array, string][] = [];
          for (const [op, offset] of ops) {
            switch (op.kind) {
              case 'seal': {
                const expected = toHex(refSeal(key, key, op.ads, op.pt));
                const sealed = shared.seal(op.ads, atOffset(op.pt, offset));
                assert.equal(toHex(sealed), expected);
                outputs.push([sealed, expected]);
                break;
              }
              case 'open': {
                const sealed = new AesSivKey(key).seal(op.ads, op.pt);
                const opened = shared.open(op.ads, atOffset(sealed, offset));
                assertBytes(opened, op.pt);
                outputs.push([opened, toHex(op.pt)]);
                break;
              }
              case 'openTampered': {
                const sealed = new AesSivKey(key).seal(op.ads, op.pt);
                const at = offset % sealed.length;
                sealed[at] = (sealed[at] ?? 0) ^ 0x40;
                throwsE4(() => shared.open(op.ads, sealed), E4ErrorCode.NotAuthentic);
                break;
              }
              case 'cmac': {
                const mac = shared.cmac(atOffset(op.message, offset));
                const expected = toHex(refCmac(key, op.message));
                assert.equal(toHex(mac), expected);
                assertBytes(mac, new AesSivKey(key).cmac(op.message));
                outputs.push([mac, expected]);
                break;
              }
            }
          }
          for (const [output, expected] of outputs) assert.equal(toHex(output), expected);
        },
      ),
      { numRuns: 120 },
    );
  });

  void it('outputs overwritten by the caller do not affect later calls', () => {
    const siv = new AesSivKey(KEY_A);
    for (const length of [0, 5, 16, 17, 64, 300, 1000]) {
      const pt = sequentialBytes(length);
      const ad = [sequentialBytes(length % 40)];
      const sealed = siv.seal(ad, pt);
      const expected = toHex(refSeal(KEY_A, KEY_A, ad, pt));
      assert.equal(toHex(sealed), expected);
      const opened = siv.open(ad, sealed);
      assertBytes(opened, pt);
      siv.cmac(pt).fill(0xff);
      sealed.fill(0xff);
      opened.fill(0xff);
      assert.equal(toHex(siv.seal(ad, pt)), expected);
      assertBytes(siv.cmac(pt), refCmac(KEY_A, pt));
    }
  });

  void it('large messages match the naive implementation', () => {
    const siv = new AesSivKey(KEY_B);
    for (const length of [4095, 4096, 65537]) {
      const pt = sequentialBytes(length).map((b, i) => b ^ (i >> 8));
      const sealed = siv.seal([fromHex('01')], pt);
      assertBytes(sealed, refSeal(KEY_B, KEY_B, [fromHex('01')], pt), `length ${length}`);
      assertBytes(siv.open([fromHex('01')], sealed), pt);
    }
  });

  void it('two keys used alternately do not disturb each other', () => {
    const a = new AesSivKey(KEY_A);
    const b = new AesSivKey(KEY_B);
    for (let length = 0; length < 70; length += 7) {
      const pt = sequentialBytes(length);
      assertBytes(a.seal([pt], pt), refSeal(KEY_A, KEY_A, [pt], pt));
      assertBytes(b.seal([], pt), refSeal(KEY_B, KEY_B, [], pt));
    }
  });

  void it('does not modify its inputs and accepts views at odd offsets', () => {
    fc.assert(
      fc.property(key32, bytes(40), bytes(100), fc.nat(7), (key, ad, pt, offset) => {
        const adCopy = new Uint8Array(ad);
        const ptCopy = new Uint8Array(pt);
        const siv = new AesSivKey(key);
        const sealed = siv.seal([ad], pt);
        assertBytes(ad, adCopy);
        assertBytes(pt, ptCopy);
        assertBytes(sealed, refSeal(key, key, [ad], pt));

        // The same bytes as views into larger buffers.
        const backing = new Uint8Array(offset + sealed.length + 3).fill(0xee);
        backing.set(sealed, offset);
        const view = backing.subarray(offset, offset + sealed.length);
        const adBacking = new Uint8Array(offset + ad.length + 5).fill(0xdd);
        adBacking.set(ad, offset);
        const adView = adBacking.subarray(offset, offset + ad.length);
        assertBytes(siv.open([adView], view), pt);
        assertBytes(view, sealed);
      }),
      { numRuns: 60 },
    );
  });

  void it('several keys used in any interleaving, each first used any way, match fresh keys', () => {
    // The keys share one work area and compute CMAC(0) on first use, with the first single
    // short associated data or on its own: neither may leak from one key into another.
    const firstAd = fc.oneof(
      fc.uint8Array({ minLength: 0, maxLength: 16 }).map((ad) => [ad]),
      components,
    );
    fc.assert(
      fc.property(
        fc.array(key32, { minLength: 2, maxLength: 4 }),
        fc.array(fc.tuple(fc.nat(3), firstAd, sizedBytes, fc.nat(16)), {
          minLength: 1,
          maxLength: 16,
        }),
        (keys, ops) => {
          const prepared = keys.map((k) => new AesSivKey(k));
          for (const [which, ads, pt, prefixLength] of ops) {
            const index = which % keys.length;
            const key = keys[index] ?? KEY_A;
            const siv = prepared[index] ?? new AesSivKey(key);
            const expected = refSeal(key, key, ads, pt);
            const prefix = sequentialBytes(prefixLength);
            assertBytes(siv.sealWithPrefix(prefix, ads, pt), concatBytes(prefix, expected));
            assertBytes(siv.open(ads, expected), pt);
          }
        },
      ),
      { numRuns: 100 },
    );
  });

  void it('a message too large to keep a work area for does not disturb smaller ones', () => {
    const a = new AesSivKey(KEY_A);
    const b = new AesSivKey(KEY_B);
    const small = sequentialBytes(100);
    const large = sequentialBytes(70_000).map((x, i) => x ^ (i >> 9));
    for (const pt of [small, large, small, large, small]) {
      assertBytes(
        a.seal([small.subarray(0, 8)], pt),
        refSeal(KEY_A, KEY_A, [small.subarray(0, 8)], pt),
      );
      assertBytes(b.open([], refSeal(KEY_B, KEY_B, [], pt)), pt);
    }
  });

  void it('sealWithPrefix is prefix || seal, in a buffer holding nothing else', () => {
    const siv = new AesSivKey(KEY_B);
    for (let prefixLength = 0; prefixLength <= 16; prefixLength++) {
      for (const length of [0, 1, 15, 16, 17, 49, 300]) {
        const prefix = sequentialBytes(prefixLength).map((x) => x ^ 0xc3);
        const pt = sequentialBytes(length);
        const ad = [prefix];
        const out = siv.sealWithPrefix(prefix, ad, pt);
        assertBytes(out, concatBytes(prefix, refSeal(KEY_B, KEY_B, ad, pt)));
        // No keystream (the lead block's is E(K, counter), and E(K, 0) derives the CMAC
        // subkeys) may stay in the buffer around the view.
        const before = new Uint8Array(out.buffer, 0, out.byteOffset);
        const afterStart = out.byteOffset + out.length;
        const after = new Uint8Array(out.buffer, afterStart, out.buffer.byteLength - afterStart);
        assert.ok(
          before.every((x) => x === 0),
          `prefix ${prefixLength}, length ${length}`,
        );
        assert.ok(
          after.every((x) => x === 0),
          `prefix ${prefixLength}, length ${length}`,
        );
      }
    }
  });

  void it('sealWithPrefix refuses a prefix longer than one block (InvalidArgument)', () => {
    throwsE4(
      () => new AesSivKey(KEY_A).sealWithPrefix(new Uint8Array(17), [], new Uint8Array(3)),
      E4ErrorCode.InvalidArgument,
    );
  });

  void it('the key bytes given to the constructor can be wiped afterwards', () => {
    const key = new Uint8Array(KEY_B);
    const siv = new AesSivKey(key);
    key.fill(0);
    const pt = fromHex('112233445566778899aabbccddee');
    assertBytes(siv.seal([], pt), refSeal(KEY_B, KEY_B, [], pt));
  });
});

void describe('AES-SIV authentication', () => {
  void it('any tampered byte of V || C is NotAuthentic', () => {
    fc.assert(
      fc.property(
        key32,
        components,
        bytes(64),
        fc.nat(),
        fc.integer({ min: 1, max: 255 }),
        (key, ads, pt, at, mask) => {
          const sealed = aesSivSeal(key, ads, pt);
          const tampered = new Uint8Array(sealed);
          const index = at % tampered.length;
          tampered[index] = (tampered[index] ?? 0) ^ mask;
          const err = throwsE4(() => aesSivOpen(key, ads, tampered), E4ErrorCode.NotAuthentic);
          assert.equal(err.message, referenceMessages.NotAuthentic);
        },
      ),
      { numRuns: 200 },
    );
  });

  void it('every single-byte change of a 30-byte message is NotAuthentic', () => {
    const siv = new AesSivKey(KEY_B);
    const ad = [fromHex('0102')];
    const sealed = siv.seal(ad, sequentialBytes(30));
    for (let i = 0; i < sealed.length; i++) {
      for (const mask of [0x01, 0x80, 0xff]) {
        const tampered = new Uint8Array(sealed);
        tampered[i] = (tampered[i] ?? 0) ^ mask;
        throwsE4(() => siv.open(ad, tampered), E4ErrorCode.NotAuthentic, `byte ${i}`);
      }
    }
    assertBytes(siv.open(ad, sealed), sequentialBytes(30));
  });

  void it('changed, added, removed or re-split associated data is NotAuthentic', () => {
    const siv = new AesSivKey(KEY_A);
    const a = fromHex('00010203');
    const b = fromHex('0405');
    const sealed = siv.seal([a, b], sequentialBytes(20));
    assertBytes(siv.open([a, b], sealed), sequentialBytes(20));
    for (const ads of [[a], [b, a], [a, b, b], [concatBytes(a, b)], [], [a, fromHex('0406')]]) {
      throwsE4(() => siv.open(ads, sealed), E4ErrorCode.NotAuthentic);
    }
  });

  void it('a wrong key is NotAuthentic', () => {
    const sealed = aesSivSeal(KEY_A, [], sequentialBytes(10));
    throwsE4(() => aesSivOpen(KEY_B, [], sealed), E4ErrorCode.NotAuthentic);
  });

  void it('below 16 bytes is TooShortCiphertext; exactly 16 is an empty plaintext', () => {
    const siv = new AesSivKey(KEY_A);
    for (let length = 0; length < 16; length++) {
      throwsE4(() => siv.open([], new Uint8Array(length)), E4ErrorCode.TooShortCiphertext);
    }
    const empty = siv.seal([fromHex('aa')], new Uint8Array(0));
    assert.equal(empty.length, 16);
    assertBytes(siv.open([fromHex('aa')], empty), new Uint8Array(0));
    throwsE4(() => siv.open([], empty), E4ErrorCode.NotAuthentic);
  });

  void it('the ciphertext length is the plaintext length plus 16 and is deterministic', () => {
    fc.assert(
      fc.property(key32, components, bytes(300), (key, ads, pt) => {
        const sealed = aesSivSeal(key, ads, pt);
        assert.equal(sealed.length, pt.length + 16);
        assertBytes(aesSivSeal(key, ads, pt), sealed);
      }),
      { numRuns: 50 },
    );
  });
});

void describe('AES-SIV key validation', () => {
  void it('refuses every key length but 32 with InvalidKey', () => {
    for (const length of [0, 1, 16, 24, 31, 33, 48, 64]) {
      const key = new Uint8Array(length).fill(7);
      throwsE4(() => new AesSivKey(key), E4ErrorCode.InvalidKey, `length ${length}`);
      throwsE4(() => aesSivSeal(key, [], new Uint8Array(1)), E4ErrorCode.InvalidKey);
      throwsE4(() => aesSivOpen(key, [], new Uint8Array(17)), E4ErrorCode.InvalidKey);
    }
  });

  void it("refuses an all-zero key with InvalidKey and e4go's message (its Encrypt and Decrypt do)", () => {
    const zeros = new Uint8Array(32);
    const err = throwsE4(() => new AesSivKey(zeros), E4ErrorCode.InvalidKey);
    assert.equal(err.message, 'invalid symmetric key, all zeros');
    throwsE4(() => aesSivSeal(zeros, [], new Uint8Array(1)), E4ErrorCode.InvalidKey);
    throwsE4(() => aesSivOpen(zeros, [], new Uint8Array(17)), E4ErrorCode.InvalidKey);
    // One bit set is a key like any other.
    const oneBit = new Uint8Array(32);
    oneBit[31] = 1;
    const sealed = aesSivSeal(oneBit, [], Uint8Array.of(5));
    assertBytes(aesSivOpen(oneBit, [], sealed), Uint8Array.of(5));
  });
});
