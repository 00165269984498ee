// Ed25519 / X25519 helpers: RFC vectors, the Ed25519 -> Curve25519 conversions behind the PK
// command key, point and low-order validation, and the Go-format private key check.
import assert from 'node:assert/strict';
import { generateKeyPairSync, sign as nodeSign, verify as nodeVerify } from 'node:crypto';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import {
  commandKeyForClient,
  commandKeyFromClient,
  E4Error,
  E4ErrorCode,
  ed25519KeyFromKeyObject,
  ed25519KeyFromSeed,
  ed25519PrivateToCurve25519,
  ed25519PublicKey,
  ed25519PublicKeyObject,
  ed25519PublicToCurve25519,
  ed25519Sign,
  ed25519SigningKey,
  ed25519Verify,
  fromHex,
  sha3256,
  toHex,
  x25519,
  x25519PublicKey,
} from '../index.ts';
import { assertBytes, throwsE4 } from './support.ts';

const P = (1n << 255n) - 19n;
const seedArb = fc.uint8Array({ minLength: 32, maxLength: 32 });

/** Little-endian 32-byte encoding of `value` (with the top bit as given). */
function le32(value: bigint): Uint8Array {
  const out = new Uint8Array(32);
  let v = value;
  for (let i = 0; i < 32; i++) {
    out[i] = Number(v & 0xffn);
    v >>= 8n;
  }
  return out;
}

void describe('RFC vectors', () => {
  void it('RFC 8032 §7.1 test 1: public key and signature of the empty message', () => {
    const seed = fromHex('9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60');
    const goKey = ed25519KeyFromSeed(seed);
    assert.equal(
      toHex(ed25519PublicKey(goKey)),
      'd75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a',
    );
    const signature = ed25519Sign(ed25519SigningKey(goKey), new Uint8Array(0));
    assert.equal(
      toHex(signature),
      'e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b',
    );
    const pub = ed25519PublicKeyObject(ed25519PublicKey(goKey));
    assert.equal(ed25519Verify(pub, new Uint8Array(0), signature), true);
    assert.equal(ed25519Verify(pub, new Uint8Array(1), signature), false);
    assert.equal(ed25519Verify(pub, new Uint8Array(0), signature.subarray(1)), false);
    assert.equal(ed25519Verify(pub, new Uint8Array(0), new Uint8Array(64)), false);
  });

  void it('RFC 7748 §6.1: X25519 key pairs and shared secret', () => {
    const alice = fromHex('77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a');
    const bob = fromHex('5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb');
    const alicePub = x25519PublicKey(alice);
    const bobPub = x25519PublicKey(bob);
    assert.equal(
      toHex(alicePub),
      '8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a',
    );
    assert.equal(toHex(bobPub), 'de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f');
    const shared = '4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742';
    assert.equal(toHex(x25519(alice, bobPub)), shared);
    assert.equal(toHex(x25519(bob, alicePub)), shared);
  });
});

void describe('Ed25519 -> Curve25519', () => {
  void it('public conversion equals the X25519 public key of the private conversion', () => {
    fc.assert(
      fc.property(seedArb, (seed) => {
        const goKey = ed25519KeyFromSeed(seed);
        const viaPublic = ed25519PublicToCurve25519(ed25519PublicKey(goKey));
        const viaPrivate = x25519PublicKey(ed25519PrivateToCurve25519(goKey));
        assertBytes(viaPublic, viaPrivate);
        // The private conversion reads the seed only, and clamps.
        assertBytes(ed25519PrivateToCurve25519(seed), ed25519PrivateToCurve25519(goKey));
        const scalar = ed25519PrivateToCurve25519(goKey);
        assert.equal((scalar[0] ?? 0) & 7, 0);
        assert.equal((scalar[31] ?? 0) & 0xc0, 0x40);
      }),
      { numRuns: 60 },
    );
  });

  void it('the u coordinate is (1 + y) / (1 - y) for small y on the curve', () => {
    // y = 3 and y = 4 are valid points: u = -2 and u = 5 / -3 (mod p).
    assert.equal(toHex(ed25519PublicToCurve25519(le32(3n))), toHex(le32(P - 2n)));
    assert.equal(
      toHex(ed25519PublicToCurve25519(le32(4n))),
      toHex(le32((5n * (P - 1n) * modInverse(3n)) % P)),
    );
    // The sign bit of x does not change u.
    assertBytes(ed25519PublicToCurve25519(le32(3n | (1n << 255n))), le32(P - 2n));
  });

  void it('refuses y values that are not on the curve with InvalidKey', () => {
    // (y^2 - 1) / (d y^2 + 1) is not a square for y = 2, 7, 8, 11, 12, 13, 17, 20, 22.
    for (const y of [2n, 7n, 8n, 11n, 12n, 13n, 17n, 20n, 22n]) {
      throwsE4(() => ed25519PublicToCurve25519(le32(y)), E4ErrorCode.InvalidKey, `y = ${y}`);
      throwsE4(() => ed25519PublicToCurve25519(le32(y | (1n << 255n))), E4ErrorCode.InvalidKey);
    }
  });

  void it('reads a non-canonical y (p <= y < 2^255) modulo p, like extra25519', () => {
    // y = p + 3 is y = 3; y = p + 2 is the invalid y = 2.
    assertBytes(ed25519PublicToCurve25519(le32(P + 3n)), le32(P - 2n));
    assertBytes(ed25519PublicToCurve25519(le32(P + 4n)), ed25519PublicToCurve25519(le32(4n)));
    throwsE4(() => ed25519PublicToCurve25519(le32(P + 2n)), E4ErrorCode.InvalidKey);
  });

  void it('either converts or throws InvalidKey for any 32 bytes; output is canonical', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 32, maxLength: 32 }), (bytes) => {
        let u: Uint8Array;
        try {
          u = ed25519PublicToCurve25519(bytes);
        } catch (err) {
          assert.ok(err instanceof E4Error, 'only E4Errors');
          assert.equal(err.code, E4ErrorCode.InvalidKey);
          return;
        }
        let value = 0n;
        for (let i = 31; i >= 0; i--) value = (value << 8n) | BigInt(u[i] ?? 0);
        assert.ok(value < P, 'u must be reduced modulo p');
      }),
      { numRuns: 200 },
    );
  });

  void it('refuses other lengths with InvalidKey', () => {
    for (const length of [0, 31, 33, 64]) {
      throwsE4(
        () => ed25519PublicToCurve25519(new Uint8Array(length).fill(9)),
        E4ErrorCode.InvalidKey,
      );
    }
  });
});

function modInverse(a: bigint): bigint {
  let result = 1n;
  let base = a % P;
  let e = P - 2n;
  while (e > 0n) {
    if (e & 1n) result = (result * base) % P;
    base = (base * base) % P;
    e >>= 1n;
  }
  return result;
}

void describe('X25519', () => {
  const scalar = fromHex('77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a');

  void it('refuses the all-zero public key and other low-order points with InvalidKey', () => {
    const lowOrder = [
      0n,
      1n,
      P - 1n,
      325606250916557431795983626356110631294008115727848805560023387167927233504n,
      39382357235489614581723060781553021112529911719440698176882885853963445705823n,
    ];
    for (const u of lowOrder) {
      throwsE4(() => x25519(scalar, le32(u)), E4ErrorCode.InvalidKey, `u = ${u}`);
    }
  });

  void it('refuses keys of the wrong length with InvalidKey', () => {
    const pub = x25519PublicKey(scalar);
    throwsE4(() => x25519(scalar, pub.subarray(1)), E4ErrorCode.InvalidKey);
    throwsE4(() => x25519(scalar.subarray(1), pub), E4ErrorCode.InvalidKey);
    throwsE4(() => x25519PublicKey(new Uint8Array(33)), E4ErrorCode.InvalidKey);
  });

  void it('is symmetric: x25519(a, B) = x25519(b, A)', () => {
    fc.assert(
      fc.property(seedArb, seedArb, (a, b) => {
        assertBytes(x25519(a, x25519PublicKey(b)), x25519(b, x25519PublicKey(a)));
      }),
      { numRuns: 40 },
    );
  });
});

void describe('PK command key', () => {
  void it('the C2 and the client derive the same key', () => {
    fc.assert(
      fc.property(seedArb, seedArb, (clientSeed, c2Private) => {
        const goKey = ed25519KeyFromSeed(clientSeed);
        const c2Public = x25519PublicKey(c2Private);
        const fromC2 = commandKeyForClient(c2Private, ed25519PublicKey(goKey));
        assertBytes(fromC2, commandKeyFromClient(goKey, c2Public));
        assertBytes(fromC2, sha3256(x25519(ed25519PrivateToCurve25519(goKey), c2Public)));
        assert.equal(fromC2.length, 32);
      }),
      { numRuns: 40 },
    );
  });

  void it('refuses an invalid client point and a low-order C2 key', () => {
    const c2Private = new Uint8Array(32).fill(5);
    throwsE4(() => commandKeyForClient(c2Private, le32(2n)), E4ErrorCode.InvalidKey);
    const goKey = ed25519KeyFromSeed(new Uint8Array(32).fill(6));
    throwsE4(() => commandKeyFromClient(goKey, new Uint8Array(32)), E4ErrorCode.InvalidKey);
  });
});

void describe('ed25519SigningKey', () => {
  void it('accepts a Go-format key and signs verifiably', () => {
    fc.assert(
      fc.property(seedArb, fc.uint8Array({ maxLength: 100 }), (seed, message) => {
        const goKey = ed25519KeyFromSeed(seed);
        assertBytes(goKey.subarray(0, 32), seed);
        const signature = ed25519Sign(ed25519SigningKey(goKey), message);
        assert.equal(signature.length, 64);
        const pub = ed25519PublicKeyObject(ed25519PublicKey(goKey));
        assert.ok(ed25519Verify(pub, message, signature));
      }),
      { numRuns: 30 },
    );
  });

  void it('refuses a 64-byte key whose public half does not match its seed', () => {
    fc.assert(
      fc.property(
        seedArb,
        fc.integer({ min: 32, max: 63 }),
        fc.integer({ min: 1, max: 255 }),
        (seed, at, mask) => {
          const goKey = ed25519KeyFromSeed(seed);
          goKey[at] = (goKey[at] ?? 0) ^ mask;
          throwsE4(() => ed25519SigningKey(goKey), E4ErrorCode.InvalidKey);
        },
      ),
      { numRuns: 40 },
    );
    // Another key's public half.
    const a = ed25519KeyFromSeed(new Uint8Array(32).fill(1));
    const b = ed25519KeyFromSeed(new Uint8Array(32).fill(2));
    const mixed = new Uint8Array([...a.subarray(0, 32), ...b.subarray(32)]);
    throwsE4(() => ed25519SigningKey(mixed), E4ErrorCode.InvalidKey);
  });

  void it('refuses other lengths and all zeros', () => {
    for (const length of [0, 32, 63, 65]) {
      throwsE4(() => ed25519SigningKey(new Uint8Array(length).fill(1)), E4ErrorCode.InvalidKey);
    }
    throwsE4(() => ed25519SigningKey(new Uint8Array(64)), E4ErrorCode.InvalidKey);
    throwsE4(() => ed25519KeyFromSeed(new Uint8Array(31)), E4ErrorCode.InvalidKey);
    throwsE4(() => ed25519PublicKeyObject(new Uint8Array(31)), E4ErrorCode.InvalidKey);
  });
});

void describe("a device's own Ed25519 key pair", () => {
  void it('ed25519KeyFromKeyObject: the Go-format key of a node:crypto key pair', () => {
    const pair = generateKeyPairSync('ed25519');
    const goKey = ed25519KeyFromKeyObject(pair.privateKey);
    const nodePublic = pair.publicKey.export({ format: 'der', type: 'spki' }).subarray(-32);
    assertBytes(ed25519PublicKey(goKey), nodePublic);
    // Both sides sign the same bytes (Ed25519 is deterministic) and verify each other.
    const message = new TextEncoder().encode('21.5');
    const ours = ed25519Sign(ed25519SigningKey(goKey), message);
    assertBytes(ours, nodeSign(null, message, pair.privateKey));
    assert.ok(nodeVerify(null, message, pair.publicKey, ours));
  });

  void it('ed25519KeyFromKeyObject wipes the PKCS#8 export that held the seed', () => {
    const { privateKey } = generateKeyPairSync('ed25519');
    const exported: Buffer[] = [];
    const realExport = privateKey.export.bind(privateKey);
    privateKey.export = ((options: Parameters<typeof realExport>[0]) => {
      const der = realExport(options);
      if (Buffer.isBuffer(der)) exported.push(der);
      return der;
    }) as typeof privateKey.export;
    const goKey = ed25519KeyFromKeyObject(privateKey);
    assert.equal(exported.length, 1);
    assert.ok(
      exported[0]?.every((b) => b === 0),
      'the export is zeroed',
    );
    assert.ok(
      goKey.subarray(0, 32).some((b) => b !== 0),
      'the key itself is intact',
    );
  });

  void it('ed25519KeyFromKeyObject refuses other keys and other values', () => {
    throwsE4(() => ed25519KeyFromKeyObject(generateKeyPairSync('ed25519').publicKey), 'InvalidKey');
    throwsE4(() => ed25519KeyFromKeyObject(generateKeyPairSync('x25519').privateKey), 'InvalidKey');
    const notAKey = new Uint8Array(32) as unknown as Parameters<typeof ed25519KeyFromKeyObject>[0];
    throwsE4(() => ed25519KeyFromKeyObject(notAKey), 'InvalidArgument');
  });

  void it('ed25519PublicKey of a seed is InvalidKey, not an empty array', () => {
    const seed = new Uint8Array(32).fill(7);
    const err = throwsE4(() => ed25519PublicKey(seed), 'InvalidKey');
    assert.equal(err.message, 'invalid private key length, got 32, expected 64');
    assert.equal(ed25519PublicKey(ed25519KeyFromSeed(seed)).length, 32);
  });

  void it('ed25519PrivateToCurve25519 takes a seed or a Go key, nothing else', () => {
    const goKey = ed25519KeyFromSeed(new Uint8Array(32).fill(7));
    assertBytes(
      ed25519PrivateToCurve25519(goKey),
      ed25519PrivateToCurve25519(goKey.subarray(0, 32)),
    );
    for (const length of [0, 16, 31, 33, 63, 65]) {
      throwsE4(() => ed25519PrivateToCurve25519(new Uint8Array(length).fill(1)), 'InvalidKey');
    }
  });
});
