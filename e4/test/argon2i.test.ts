// Tests of the pure-TypeScript Argon2i: the RFC 9106 vector, E4's empty-salt keys, a differential
// check against @noble/hashes (which only accepts salts of 8 bytes or more), and validation.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { argon2i as nobleArgon2i } from '@noble/hashes/argon2.js';
import { argon2i, type Argon2Params } from '../src/argon2i.ts';

/** The fields of `password_keys.json` these tests use. */
interface PasswordKeysFile {
  vectors: { description: string; password_hex: string; ok: boolean; symmetric_key?: string }[];
}

/** e4go's DeriveSymKey parameters: argon2.Key(password, nil, 1, 64*1024, 4, 32). */
const E4_PARAMS: Argon2Params = {
  timeCost: 1,
  memoryKiB: 65536,
  parallelism: 4,
  outputLength: 32,
};

const hex = (bytes: Uint8Array): string => Buffer.from(bytes).toString('hex');
const fromHex = (text: string): Uint8Array => new Uint8Array(Buffer.from(text, 'hex'));
const filled = (length: number, value: number): Uint8Array => new Uint8Array(length).fill(value);

// node:test's describe and it return promises that the runner itself tracks, hence the `void`.
void describe('argon2i', () => {
  void it('matches the RFC 9106 §5.2 Argon2i test vector', () => {
    const tag = argon2i(filled(32, 0x01), filled(16, 0x02), {
      timeCost: 3,
      memoryKiB: 32,
      parallelism: 4,
      outputLength: 32,
      secret: filled(8, 0x03),
      associatedData: filled(12, 0x04),
    });
    assert.equal(hex(tag), 'c814d9d1dc7f37aa13f0d77f2494bda1c8de6b016dd388d29952a4c4672b6ce8');
  });

  void it('derives the E4 conformance keys (empty salt, t=1, m=64 MiB, p=4)', () => {
    const file = JSON.parse(
      readFileSync(new URL('../conformance/vectors/password_keys.json', import.meta.url), 'utf8'),
    ) as PasswordKeysFile;
    // Each derivation fills 64 MiB, so only the first two accepted passwords are checked here.
    const accepted = file.vectors.filter((v) => v.ok).slice(0, 2);
    assert.equal(accepted.length, 2);
    for (const vector of accepted) {
      const key = argon2i(fromHex(vector.password_hex), new Uint8Array(0), E4_PARAMS);
      assert.equal(hex(key), vector.symmetric_key, vector.description);
    }
  });

  void it('derives the e4go test key for "testRandomPassword"', () => {
    const key = argon2i(
      new TextEncoder().encode('testRandomPassword'),
      new Uint8Array(0),
      E4_PARAMS,
    );
    assert.equal(hex(key), 'ae153aa9dad7a10b0aed6d5bcfb407c77066acfbb2eaa702a6a88b6cf1b88c33');
  });

  void it('agrees with @noble/hashes on salts it accepts', () => {
    // Covers several passes (XOR into existing blocks), memory not a multiple of 4p, one and odd
    // lane counts, more than 128 blocks per segment (several address blocks) and tags longer
    // than 64 bytes (the chained H').
    const cases: Argon2Params[] = [
      { timeCost: 1, memoryKiB: 8, parallelism: 1, outputLength: 4 },
      { timeCost: 2, memoryKiB: 37, parallelism: 3, outputLength: 64 },
      { timeCost: 3, memoryKiB: 1030, parallelism: 1, outputLength: 65 },
      { timeCost: 2, memoryKiB: 2100, parallelism: 2, outputLength: 129 },
      {
        timeCost: 4,
        memoryKiB: 64,
        parallelism: 4,
        outputLength: 100,
        secret: filled(5, 0xaa),
        associatedData: filled(3, 0xbb),
      },
    ];
    const password = new TextEncoder().encode('password');
    const salt = new TextEncoder().encode('somesaltsalt');
    for (const params of cases) {
      const expected = nobleArgon2i(password, salt, {
        t: params.timeCost,
        m: params.memoryKiB,
        p: params.parallelism,
        dkLen: params.outputLength,
        ...(params.secret === undefined ? {} : { key: params.secret }),
        ...(params.associatedData === undefined ? {} : { personalization: params.associatedData }),
      });
      assert.equal(hex(argon2i(password, salt, params)), hex(expected), JSON.stringify(params));
    }
  });

  void it('accepts an empty salt and distinguishes it from other short salts', () => {
    const params: Argon2Params = { timeCost: 1, memoryKiB: 8, parallelism: 1, outputLength: 32 };
    const password = new TextEncoder().encode('password');
    const empty = argon2i(password, new Uint8Array(0), params);
    assert.equal(empty.length, 32);
    assert.deepEqual(argon2i(password, new Uint8Array(0), params), empty);
    // The salt length is hashed too, so a single zero byte must give another tag.
    assert.notDeepEqual(argon2i(password, new Uint8Array(1), params), empty);
    assert.equal(argon2i(password, filled(3, 7), params).length, 32);
  });

  void it('rejects invalid parameters with a RangeError', () => {
    const valid: Argon2Params = { timeCost: 1, memoryKiB: 32, parallelism: 4, outputLength: 32 };
    const invalid: [string, Partial<Argon2Params>][] = [
      ['timeCost', { timeCost: 0 }],
      ['timeCost', { timeCost: 1.5 }],
      ['timeCost', { timeCost: Number.NaN }],
      ['memoryKiB', { memoryKiB: 31 }],
      ['memoryKiB', { memoryKiB: 8, parallelism: 2 }],
      ['memoryKiB', { memoryKiB: 2 ** 32 }],
      ['parallelism', { parallelism: 0 }],
      ['parallelism', { parallelism: -1 }],
      ['parallelism', { parallelism: 2 ** 24 }],
      ['outputLength', { outputLength: 3 }],
      ['outputLength', { outputLength: 32.5 }],
      ['outputLength', { outputLength: Number.POSITIVE_INFINITY }],
    ];
    for (const [name, change] of invalid) {
      assert.throws(
        () => argon2i(new Uint8Array(16), new Uint8Array(0), { ...valid, ...change }),
        (error: unknown) => error instanceof RangeError && error.message.includes(name),
        `${name}: ${JSON.stringify(change)}`,
      );
    }
  });
});
