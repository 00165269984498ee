/**
 * Argon2i (RFC 9106, version 0x13) in pure TypeScript.
 *
 * Why this exists: E4 derives keys from passwords with golang.org/x/crypto/argon2.Key, i.e.
 * Argon2i with an EMPTY salt (e4go `DeriveSymKey`: t = 1, m = 65536 KiB, p = 4, 32 bytes). RFC 9106
 * asks for a salt of at least 8 bytes and every npm Argon2 library we looked at enforces that, so
 * none of them can reproduce E4 keys. This implementation accepts a salt of any length, including 0.
 *
 * Lanes are computed one after the other on the calling thread. That gives the same result as a
 * parallel run: within one slice a lane only reads blocks of other lanes from finished slices.
 *
 * Blocks are 1024 bytes and are kept as 256 little-endian 32-bit words in one `Uint32Array`; each
 * 64-bit word of the specification is the pair (low = word 2k, high = word 2k + 1). Working on
 * 32-bit halves keeps the hot loop free of BigInt, which would be orders of magnitude slower.
 */
import { blake2b } from '@noble/hashes/blake2.js';

/** Argon2 cost parameters and optional inputs (RFC 9106 §3.1). */
export interface Argon2Params {
  /** Number of passes over memory, `t` (≥ 1). */
  timeCost: number;
  /** Memory size in KiB, `m` (≥ 8 × parallelism). It is rounded down to a multiple of 4 × parallelism. */
  memoryKiB: number;
  /** Number of lanes, `p` (1 .. 2^24 − 1). Lanes are computed sequentially; this is not a thread count. */
  parallelism: number;
  /** Tag length in bytes, `T` (≥ 4). */
  outputLength: number;
  /** Optional secret value `K` (a pepper). */
  secret?: Uint8Array;
  /** Optional associated data `X`. */
  associatedData?: Uint8Array;
}

/** Argon2 version 0x13 (decimal 19), the only version RFC 9106 specifies. */
const VERSION = 0x13;
/** Argon2 type code `y` for Argon2i. */
const TYPE_ARGON2I = 1;
/** Number of slices (segments) per lane; lanes synchronise at each slice boundary. */
const SYNC_POINTS = 4;
/** 32-bit words per 1024-byte block. */
const BLOCK_WORDS = 256;
/** 64-bit pseudo-random values carried by one Argon2i address block. */
const ADDRESSES_PER_BLOCK = 128;
const UINT32_MAX = 0xffffffff;
/** 2^-32, to take the high 32 bits of an exact integer held in a float. */
const TWO_POW_MINUS_32 = 1 / 4294967296;

/**
 * Computes Argon2i (RFC 9106, version 0x13) of `password` with `salt`.
 *
 * Unlike RFC 9106 §3.1, a salt of any length (including empty) is accepted, because E4 derives its
 * keys with an empty salt. Memory is allocated in one piece (`memoryKiB` KiB, rounded down to a
 * multiple of 4 × parallelism) and zeroed before returning, even on error. Lanes are computed
 * sequentially on the calling thread, which blocks it (about 0.7 s for E4's 64 MiB, p = 4, t = 1).
 *
 * @param password - The password `P`.
 * @param salt - The salt `S`, of any length.
 * @param params - Cost parameters, tag length and the optional secret and associated data.
 * @returns The `params.outputLength`-byte tag.
 * @throws RangeError when a parameter is not an integer or is out of range (the typed-array
 *   constructor also throws a RangeError when the memory cannot be allocated).
 */
export function argon2i(password: Uint8Array, salt: Uint8Array, params: Argon2Params): Uint8Array {
  const { timeCost, memoryKiB, parallelism, outputLength } = params;
  const secret = params.secret ?? new Uint8Array(0);
  const associatedData = params.associatedData ?? new Uint8Array(0);
  validate(params, password, salt, secret, associatedData);

  // RFC 9106 §3.2 step 1: H0 = H^(64)(p || T || m || t || v || y || len(P) || P || len(S) || S ||
  // len(K) || K || len(X) || X), every number as a 32-bit little-endian integer.
  const h0Hash = blake2b.create({ dkLen: 64 });
  h0Hash.update(le32s(parallelism, outputLength, memoryKiB, timeCost, VERSION, TYPE_ARGON2I));
  for (const field of [password, salt, secret, associatedData]) {
    h0Hash.update(le32s(field.length));
    h0Hash.update(field);
  }
  // H0 is followed by two 32-bit slots (block index, lane) filled in below for the first blocks.
  const h0 = new Uint8Array(72);
  const h0Digest = h0Hash.digest();
  h0.set(h0Digest);
  h0Digest.fill(0);

  // Step 2: m' = 4p * floor(m / 4p) blocks, arranged as p lanes of q = m' / p columns.
  const segmentLength = Math.floor(memoryKiB / (SYNC_POINTS * parallelism));
  const laneLength = segmentLength * SYNC_POINTS;
  const blockCount = laneLength * parallelism;
  const scratch = new Scratch();
  let memory: Uint32Array | undefined;
  try {
    memory = new Uint32Array(blockCount * BLOCK_WORDS);
    // Steps 3 and 4: B[i][0] = H'^(1024)(H0 || LE32(0) || LE32(i)), B[i][1] likewise with 1.
    for (let lane = 0; lane < parallelism; lane++) {
      for (let column = 0; column < 2; column++) {
        writeLe32(h0, 64, column);
        writeLe32(h0, 68, lane);
        const block = hPrime(h0, 1024);
        bytesToWords(block, memory, (lane * laneLength + column) * BLOCK_WORDS);
        block.fill(0);
      }
    }

    const geometry: Geometry = {
      memory,
      scratch,
      blockCount,
      laneLength,
      segmentLength,
      lanes: parallelism,
      passes: timeCost,
    };
    // Steps 5 and 6: fill memory slice by slice; all lanes finish a slice before the next starts.
    for (let pass = 0; pass < timeCost; pass++) {
      for (let slice = 0; slice < SYNC_POINTS; slice++) {
        for (let lane = 0; lane < parallelism; lane++) {
          fillSegment(geometry, pass, slice, lane);
        }
      }
    }

    // Step 7: C = XOR of the last block of every lane; step 8: tag = H'^(T)(C).
    const final = scratch.r;
    final.set(memory.subarray((laneLength - 1) * BLOCK_WORDS, laneLength * BLOCK_WORDS));
    for (let lane = 1; lane < parallelism; lane++) {
      const offset = (lane * laneLength + laneLength - 1) * BLOCK_WORDS;
      for (let k = 0; k < BLOCK_WORDS; k++) {
        final[k] = (final[k] as number) ^ (memory[offset + k] as number);
      }
    }
    const finalBytes = wordsToBytes(final);
    const tag = hPrime(finalBytes, outputLength);
    finalBytes.fill(0);
    return tag;
  } finally {
    // The memory and the scratch blocks hold password-derived material.
    memory?.fill(0);
    scratch.wipe();
    h0.fill(0);
  }
}

/** Throws a RangeError unless every parameter is within RFC 9106 §3.1 (salt length excepted). */
function validate(
  params: Argon2Params,
  password: Uint8Array,
  salt: Uint8Array,
  secret: Uint8Array,
  associatedData: Uint8Array,
): void {
  const { timeCost, memoryKiB, parallelism, outputLength } = params;
  requireUint32('timeCost', timeCost, 1);
  requireUint32('parallelism', parallelism, 1);
  if (parallelism > 0xffffff) {
    throw new RangeError(`argon2i: parallelism must be at most 16777215, got ${parallelism}`);
  }
  requireUint32('memoryKiB', memoryKiB, 8 * parallelism);
  requireUint32('outputLength', outputLength, 4);
  // Lengths are hashed as 32-bit integers, so longer inputs could not be encoded.
  const inputs: [string, Uint8Array][] = [
    ['password', password],
    ['salt', salt],
    ['secret', secret],
    ['associatedData', associatedData],
  ];
  for (const [name, bytes] of inputs) {
    if (bytes.length > UINT32_MAX) {
      throw new RangeError(`argon2i: ${name} must be at most 2^32 - 1 bytes long`);
    }
  }
}

/** Throws a RangeError unless `value` is an integer in [min, 2^32 − 1]. */
function requireUint32(name: string, value: number, min: number): void {
  if (!Number.isInteger(value) || value < min || value > UINT32_MAX) {
    throw new RangeError(
      `argon2i: ${name} must be an integer between ${min} and ${UINT32_MAX}, got ${String(value)}`,
    );
  }
}

/** Work buffers allocated once per call so that the block loop allocates nothing. */
class Scratch {
  /** R = X xor Y, permuted in place by P. */
  readonly r = new Uint32Array(BLOCK_WORDS);
  /** R (xor the old block on later passes), kept aside for the final feed-forward. */
  readonly z = new Uint32Array(BLOCK_WORDS);
  /** The all-zero block, first input of both G calls that make an address block. */
  readonly zero = new Uint32Array(BLOCK_WORDS);
  /** Argon2i input block: pass, lane, slice, m', t, y, counter, then zeros. */
  readonly input = new Uint32Array(BLOCK_WORDS);
  /** Current address block: 128 pseudo-random 64-bit values (J1 = low half, J2 = high half). */
  readonly address = new Uint32Array(BLOCK_WORDS);

  /** Zeroes every buffer. */
  wipe(): void {
    this.r.fill(0);
    this.z.fill(0);
    this.input.fill(0);
    this.address.fill(0);
  }
}

/** Memory layout and cost parameters shared by every segment of one computation. */
interface Geometry {
  readonly memory: Uint32Array;
  readonly scratch: Scratch;
  readonly blockCount: number;
  readonly laneLength: number;
  readonly segmentLength: number;
  readonly lanes: number;
  readonly passes: number;
}

/** Computes the blocks of one segment (RFC 9106 §3.2 steps 5 and 6, §3.4 for Argon2i). */
function fillSegment(g: Geometry, pass: number, slice: number, lane: number): void {
  const { memory, scratch, laneLength, segmentLength, lanes } = g;
  const { input, address, zero } = scratch;

  // §3.4.1.2: the input block Z = (r, l, sl, m', t, y, counter, 0...) as 64-bit words. Every value
  // but the counter fits in 32 bits, so only the low halves are set.
  input.fill(0);
  input[0] = pass;
  input[2] = lane;
  input[4] = slice;
  input[6] = g.blockCount;
  input[8] = g.passes;
  input[10] = TYPE_ARGON2I;

  // The first two blocks of each lane already exist on the first pass.
  const startIndex = pass === 0 && slice === 0 ? 2 : 0;
  if (startIndex !== 0) {
    // The address block is normally refreshed at indices that are multiples of 128; the first
    // segment starts at 2, so it needs its first address block before the loop.
    nextAddresses(input, address, zero, scratch);
  }

  const laneStart = lane * laneLength;
  let current = laneStart + slice * segmentLength + startIndex;
  for (let index = startIndex; index < segmentLength; index++, current++) {
    if (index % ADDRESSES_PER_BLOCK === 0) {
      nextAddresses(input, address, zero, scratch);
    }
    const slot = (index % ADDRESSES_PER_BLOCK) * 2;
    const j1 = address[slot] as number;
    const j2 = address[slot + 1] as number;

    // §3.4.1.1 and §3.4.2: J2 picks the lane, except in the very first slice, where other lanes
    // have nothing to offer yet.
    const refLane = pass === 0 && slice === 0 ? lane : j2 % lanes;
    const refColumn = referenceColumn(g, pass, slice, index, j1, refLane === lane);

    // The previous block is the last block of the lane when `current` is the lane's first column.
    const previous = current === laneStart ? laneStart + laneLength - 1 : current - 1;
    fillBlock(
      memory,
      previous * BLOCK_WORDS,
      memory,
      (refLane * laneLength + refColumn) * BLOCK_WORDS,
      memory,
      current * BLOCK_WORDS,
      // Version 0x13: passes after the first XOR the new block into the existing one.
      pass !== 0,
      scratch,
    );
  }
}

/** Increments the counter of `input` and sets `address` = G(0, G(0, input)) (§3.4.1.2). */
function nextAddresses(
  input: Uint32Array,
  address: Uint32Array,
  zero: Uint32Array,
  scratch: Scratch,
): void {
  // The counter is the seventh 64-bit word; it stays far below 2^32 (at most m' / 128 per segment).
  input[12] = (input[12] as number) + 1;
  fillBlock(zero, 0, input, 0, address, 0, false, scratch);
  fillBlock(zero, 0, address, 0, address, 0, false, scratch);
}

/**
 * Maps J1 to a column of the reference lane (RFC 9106 §3.4.2): a non-uniform distribution over the
 * blocks that are already computed and not in the current segment of another lane.
 */
function referenceColumn(
  g: Geometry,
  pass: number,
  slice: number,
  index: number,
  j1: number,
  sameLane: boolean,
): number {
  const { laneLength, segmentLength } = g;
  // |W|: the size of the reference set.
  let areaSize: number;
  if (pass === 0) {
    // First pass: only the finished slices (and, in our own lane, this segment so far).
    areaSize = slice * segmentLength + (sameLane ? index - 1 : index === 0 ? -1 : 0);
  } else {
    // Later passes: everything but the current segment, whose older content is being replaced.
    areaSize = laneLength - segmentLength + (sameLane ? index - 1 : index === 0 ? -1 : 0);
  }
  // x = J1^2 / 2^32, y = |W| * x / 2^32, zz = |W| - 1 - y (integer divisions).
  const x = mulHigh32(j1, j1);
  const y = mulHigh32(areaSize, x);
  const relative = areaSize - 1 - y;
  // On later passes the set starts right after the current segment and wraps around the lane.
  const start = pass === 0 || slice === SYNC_POINTS - 1 ? 0 : (slice + 1) * segmentLength;
  return (start + relative) % laneLength;
}

/** floor(a * b / 2^32) for 32-bit unsigned a and b, exactly (a * b itself can exceed 2^53). */
function mulHigh32(a: number, b: number): number {
  const aLow = a & 0xffff;
  const aHigh = a >>> 16;
  const bLow = b & 0xffff;
  const bHigh = b >>> 16;
  // a * b = aHigh*bHigh*2^32 + (aHigh*bLow + aLow*bHigh)*2^16 + aLow*bLow, each term exact.
  const middle = aHigh * bLow + aLow * bHigh + ((aLow * bLow) >>> 16);
  return aHigh * bHigh + Math.floor(middle / 65536);
}

/**
 * The compression function G (RFC 9106 §3.5): R = X xor Y, Z = P(R) applied to rows then columns,
 * result = Z xor R. With `xorInto` (version 0x13, passes after the first) the result is XORed into
 * the existing destination block instead of replacing it. The destination may alias an input.
 */
function fillBlock(
  xs: Uint32Array,
  xOffset: number,
  ys: Uint32Array,
  yOffset: number,
  out: Uint32Array,
  outOffset: number,
  xorInto: boolean,
  scratch: Scratch,
): void {
  const { r, z } = scratch;
  for (let k = 0; k < BLOCK_WORDS; k++) {
    const v = (xs[xOffset + k] as number) ^ (ys[yOffset + k] as number);
    r[k] = v;
    z[k] = xorInto ? v ^ (out[outOffset + k] as number) : v;
  }
  // Rows: the 64-bit words 16i .. 16i + 15, i.e. 32-bit words 32i .. 32i + 31.
  for (let i = 0; i < 8; i++) {
    const o = 32 * i;
    // prettier-ignore
    permute(r, o, o + 2, o + 4, o + 6, o + 8, o + 10, o + 12, o + 14,
      o + 16, o + 18, o + 20, o + 22, o + 24, o + 26, o + 28, o + 30);
  }
  // Columns: the 64-bit words 2i, 2i + 1, 2i + 16, 2i + 17, ..., 2i + 112, 2i + 113.
  for (let i = 0; i < 8; i++) {
    const o = 4 * i;
    // prettier-ignore
    permute(r, o, o + 2, o + 32, o + 34, o + 64, o + 66, o + 96, o + 98,
      o + 128, o + 130, o + 160, o + 162, o + 192, o + 194, o + 224, o + 226);
  }
  for (let k = 0; k < BLOCK_WORDS; k++) {
    out[outOffset + k] = (z[k] as number) ^ (r[k] as number);
  }
}

/** The permutation P (RFC 9106 §3.6) on the 64-bit words at the given 32-bit word offsets of `v`. */
function permute(
  v: Uint32Array,
  v0: number,
  v1: number,
  v2: number,
  v3: number,
  v4: number,
  v5: number,
  v6: number,
  v7: number,
  v8: number,
  v9: number,
  v10: number,
  v11: number,
  v12: number,
  v13: number,
  v14: number,
  v15: number,
): void {
  mix(v, v0, v4, v8, v12);
  mix(v, v1, v5, v9, v13);
  mix(v, v2, v6, v10, v14);
  mix(v, v3, v7, v11, v15);
  mix(v, v0, v5, v10, v15);
  mix(v, v1, v6, v11, v12);
  mix(v, v2, v7, v8, v13);
  mix(v, v3, v4, v9, v14);
}

/**
 * GB (RFC 9106 §3.6): the BLAKE2b mixing function with each addition a + b replaced by
 * a + b + 2 * trunc(a) * trunc(b), on the 64-bit words at 32-bit offsets a, b, c, d of `v`.
 *
 * Every intermediate is kept as an unsigned 32-bit value (`>>> 0`) so that the float products below
 * see the right operands. The 64-bit product of two 32-bit halves can exceed 2^53, so it is split:
 * Math.imul gives its low 32 bits exactly, and the float product minus those bits, scaled by 2^-32,
 * is within 2^-20 of the high 32 bits (two roundings of at most 2^10 each), so Math.round recovers
 * them exactly. This is much cheaper than four 16-bit partial products.
 */
function mix(v: Uint32Array, a: number, b: number, c: number, d: number): void {
  let al = v[a] as number;
  let ah = v[a + 1] as number;
  let bl = v[b] as number;
  let bh = v[b + 1] as number;
  let cl = v[c] as number;
  let ch = v[c + 1] as number;
  let dl = v[d] as number;
  let dh = v[d + 1] as number;
  let productLow: number;
  let productHigh: number;
  let sum: number;
  let t: number;

  // a = a + b + 2 * aL * bL
  productLow = Math.imul(al, bl) >>> 0;
  productHigh = Math.round((al * bl - productLow) * TWO_POW_MINUS_32);
  sum = al + bl + ((productLow << 1) >>> 0);
  t = sum >>> 0;
  ah = (ah + bh + ((productHigh << 1) | (productLow >>> 31)) + (sum - t) * TWO_POW_MINUS_32) >>> 0;
  al = t;
  // d = (d xor a) >>> 32: swap the halves
  t = (dl ^ al) >>> 0;
  dl = (dh ^ ah) >>> 0;
  dh = t;
  // c = c + d + 2 * cL * dL
  productLow = Math.imul(cl, dl) >>> 0;
  productHigh = Math.round((cl * dl - productLow) * TWO_POW_MINUS_32);
  sum = cl + dl + ((productLow << 1) >>> 0);
  t = sum >>> 0;
  ch = (ch + dh + ((productHigh << 1) | (productLow >>> 31)) + (sum - t) * TWO_POW_MINUS_32) >>> 0;
  cl = t;
  // b = (b xor c) >>> 24
  t = bl ^ cl;
  bh ^= ch;
  bl = ((t >>> 24) | (bh << 8)) >>> 0;
  bh = ((bh >>> 24) | (t << 8)) >>> 0;
  // a = a + b + 2 * aL * bL
  productLow = Math.imul(al, bl) >>> 0;
  productHigh = Math.round((al * bl - productLow) * TWO_POW_MINUS_32);
  sum = al + bl + ((productLow << 1) >>> 0);
  t = sum >>> 0;
  ah = (ah + bh + ((productHigh << 1) | (productLow >>> 31)) + (sum - t) * TWO_POW_MINUS_32) >>> 0;
  al = t;
  // d = (d xor a) >>> 16
  t = dl ^ al;
  dh ^= ah;
  dl = ((t >>> 16) | (dh << 16)) >>> 0;
  dh = ((dh >>> 16) | (t << 16)) >>> 0;
  // c = c + d + 2 * cL * dL
  productLow = Math.imul(cl, dl) >>> 0;
  productHigh = Math.round((cl * dl - productLow) * TWO_POW_MINUS_32);
  sum = cl + dl + ((productLow << 1) >>> 0);
  t = sum >>> 0;
  ch = (ch + dh + ((productHigh << 1) | (productLow >>> 31)) + (sum - t) * TWO_POW_MINUS_32) >>> 0;
  cl = t;
  // b = (b xor c) >>> 63, i.e. rotate left by 1
  t = bl ^ cl;
  bh ^= ch;
  bl = (t << 1) | (bh >>> 31);
  bh = (bh << 1) | (t >>> 31);

  // Typed-array stores reduce the (possibly signed) results modulo 2^32.
  v[a] = al;
  v[a + 1] = ah;
  v[b] = bl;
  v[b + 1] = bh;
  v[c] = cl;
  v[c + 1] = ch;
  v[d] = dl;
  v[d + 1] = dh;
}

/**
 * H' (RFC 9106 §3.3): the variable-length hash built on BLAKE2b. For T ≤ 64 it is BLAKE2b-T of
 * LE32(T) || input; otherwise a chain of BLAKE2b-512 hashes contributes 32 bytes each and a final
 * BLAKE2b of the remaining length completes the output. BLAKE2b-n is BLAKE2b with digest length n,
 * not a truncation of BLAKE2b-512 (the digest length is part of the parameter block).
 */
function hPrime(input: Uint8Array, length: number): Uint8Array {
  const lengthPrefix = le32s(length);
  if (length <= 64) {
    return blake2b.create({ dkLen: length }).update(lengthPrefix).update(input).digest();
  }
  const out = new Uint8Array(length);
  const r = Math.ceil(length / 32) - 2;
  let v = blake2b.create({ dkLen: 64 }).update(lengthPrefix).update(input).digest();
  out.set(v.subarray(0, 32), 0);
  for (let i = 1; i < r; i++) {
    const next = blake2b(v, { dkLen: 64 });
    v.fill(0);
    v = next;
    out.set(v.subarray(0, 32), i * 32);
  }
  const last = blake2b(v, { dkLen: length - 32 * r });
  v.fill(0);
  out.set(last, 32 * r);
  last.fill(0);
  return out;
}

/** Encodes each value as a 32-bit little-endian integer. */
function le32s(...values: number[]): Uint8Array {
  const out = new Uint8Array(4 * values.length);
  values.forEach((value, i) => {
    writeLe32(out, 4 * i, value);
  });
  return out;
}

/** Writes `value` as a 32-bit little-endian integer at `offset`. */
function writeLe32(bytes: Uint8Array, offset: number, value: number): void {
  bytes[offset] = value & 0xff;
  bytes[offset + 1] = (value >>> 8) & 0xff;
  bytes[offset + 2] = (value >>> 16) & 0xff;
  bytes[offset + 3] = (value >>> 24) & 0xff;
}

/** Reads a 1024-byte block into 256 little-endian words (explicitly, to be host-endian-neutral). */
function bytesToWords(bytes: Uint8Array, words: Uint32Array, offset: number): void {
  for (let k = 0; k < BLOCK_WORDS; k++) {
    const i = 4 * k;
    words[offset + k] =
      ((bytes[i] as number) |
        ((bytes[i + 1] as number) << 8) |
        ((bytes[i + 2] as number) << 16) |
        ((bytes[i + 3] as number) << 24)) >>>
      0;
  }
}

/** Serialises a block of 256 words as 1024 little-endian bytes. */
function wordsToBytes(words: Uint32Array): Uint8Array {
  const bytes = new Uint8Array(4 * words.length);
  words.forEach((word, k) => {
    writeLe32(bytes, 4 * k, word);
  });
  return bytes;
}
