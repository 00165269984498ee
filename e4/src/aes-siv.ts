/**
 * AES-SIV (RFC 5297, AES-CMAC-SIV) as E4 uses it: a 512-bit SIV key made of the 32-byte E4 key
 * twice, so the S2V (CMAC) key and the CTR key are the same AES-256 key (e4go via miscreant
 * `NewAESCMACSIV(key || key)`, libe4 `aes_siv.c`). Output is `V (16) || C`.
 *
 * Built on node:crypto AES primitives. On this path the fixed cost of a node:crypto call (about
 * a microsecond) and of allocating an off-heap buffer dominate the AES work itself, so the per-key
 * context is arranged to make as few of both as possible per message:
 * - two long-lived OpenSSL cipher objects, so a message costs no key schedule and no cipher
 *   construction: an ECB cipher for single blocks and for the CTR keystream (see
 *   {@link AesSivKey.seal}), and a CBC cipher whose chaining value is cancelled at the start of
 *   each CMAC (see `#cmacScratch`);
 * - a reusable scratch buffer for the S2V input and the CTR counter blocks, wiped after it has
 *   held plaintext;
 * - the keystream buffer that OpenSSL returns becomes the output, so sealing allocates one
 *   message-sized buffer besides the CMAC's.
 */
import { createCipheriv, type Cipher } from 'node:crypto';
import { E4Error, E4ErrorCode, referenceError } from './errors.ts';

const BLOCK = 16;
const ZERO_BLOCK = new Uint8Array(BLOCK);

/** Doubling in GF(2^128) with the RFC 5297 polynomial (x^128 + x^7 + x^2 + x + 1). */
function dbl(block: Uint8Array): Uint8Array {
  const out = new Uint8Array(BLOCK);
  let carry = 0;
  for (let i = BLOCK - 1; i >= 0; i--) {
    const b = block[i] ?? 0;
    out[i] = ((b << 1) | carry) & 0xff;
    carry = b >>> 7;
  }
  if (carry !== 0) out[BLOCK - 1] = (out[BLOCK - 1] ?? 0) ^ 0x87;
  return out;
}

/** XORs the 16-byte `block` into `target` at `offset`. */
function xorBlockInto(target: Uint8Array, offset: number, block: Uint8Array): void {
  for (let i = 0; i < BLOCK; i++) {
    target[offset + i] = (target[offset + i] ?? 0) ^ (block[i] ?? 0);
  }
}

/**
 * XORs `src` into `dst` (same length). Word XOR is about four times faster than byte XOR in V8,
 * and the keystream XOR is a large part of CTR once no cipher is constructed per message, so it
 * is used whenever both arrays start 4-byte aligned in their buffers.
 */
function xorBytes(dst: Uint8Array, src: Uint8Array): void {
  const n = src.length;
  let i = 0;
  if (((dst.byteOffset | src.byteOffset) & 3) === 0) {
    const words = n >>> 2;
    const d32 = new Int32Array(dst.buffer, dst.byteOffset, words);
    const s32 = new Int32Array(src.buffer, src.byteOffset, words);
    let w = 0;
    // Unrolled by four: about a third faster than the plain loop in V8.
    for (; w + 4 <= words; w += 4) {
      d32[w] = (d32[w] ?? 0) ^ (s32[w] ?? 0);
      d32[w + 1] = (d32[w + 1] ?? 0) ^ (s32[w + 1] ?? 0);
      d32[w + 2] = (d32[w + 2] ?? 0) ^ (s32[w + 2] ?? 0);
      d32[w + 3] = (d32[w + 3] ?? 0) ^ (s32[w + 3] ?? 0);
    }
    for (; w < words; w++) d32[w] = (d32[w] ?? 0) ^ (s32[w] ?? 0);
    i = words << 2;
  }
  for (; i < n; i++) dst[i] = (dst[i] ?? 0) ^ (src[i] ?? 0);
}

/** Reads 4 bytes at `offset` as a big-endian unsigned integer. */
function readUint32BE(bytes: Uint8Array, offset: number): number {
  return (
    (((bytes[offset] ?? 0) << 24) |
      ((bytes[offset + 1] ?? 0) << 16) |
      ((bytes[offset + 2] ?? 0) << 8) |
      (bytes[offset + 3] ?? 0)) >>>
    0
  );
}

/** Constant-time equality of two 16-byte blocks (cheaper in JS than a native call). */
function blocksEqual(a: Uint8Array, b: Uint8Array): boolean {
  let diff = 0;
  for (let i = 0; i < BLOCK; i++) diff |= (a[i] ?? 0) ^ (b[i] ?? 0);
  return diff === 0;
}

/** Byte equality, not constant-time: for public data only. */
function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Views a Buffer returned by node:crypto as a plain Uint8Array, optionally shortened. */
function plainView(buf: Uint8Array, offset: number, length: number): Uint8Array {
  return new Uint8Array(buf.buffer, buf.byteOffset + offset, length);
}

/**
 * A 32-byte E4 key prepared for AES-SIV. Create one per key and reuse it: it caches the CMAC
 * subkeys, the cipher objects and a scratch buffer. Not safe to share across worker threads (none
 * is needed: every method is synchronous).
 */
export class AesSivKey {
  readonly #ecb: Cipher;
  readonly #cbc: Cipher;
  /** The CBC cipher's current chaining value (its last output block), updated in place. */
  readonly #chain = new Uint8Array(BLOCK);
  readonly #k1: Uint8Array;
  readonly #k2: Uint8Array;
  /** S2V's starting value `CMAC(K, 0^128)`, the same for every message under this key. */
  readonly #d0: Uint8Array;
  /**
   * The last single associated-data component of at most one block and the S2V value after it,
   * `dbl(d0) xor CMAC(ad)`. E4's only associated data is the 8-byte timestamp, which stays the
   * same for every message of a given second, so this saves a CMAC (a native call and its output
   * buffer) on nearly every message of a busy key. Timestamps are public, so a hit revealing
   * equality with the previous one leaks nothing.
   */
  #adCache: { readonly ad: Uint8Array; readonly d: Uint8Array } | undefined;
  /**
   * Work area reused across messages (a fresh off-heap buffer costs about as much as the AES
   * work on 1 KiB): the S2V input, then the CTR counter blocks. Grown on demand, always 4-byte
   * aligned (own ArrayBuffer), and zeroed after it has held plaintext.
   */
  #scratch = new Uint8Array(0);
  #scratchView = new DataView(this.#scratch.buffer);

  /**
   * @param key - the 32-byte E4 key (used as both halves of the 64-byte SIV key)
   * @throws E4Error `InvalidKey` when the key is not 32 bytes
   */
  constructor(key: Uint8Array) {
    if (key.length !== 32) {
      throw new E4Error(
        E4ErrorCode.InvalidKey,
        `invalid symmetric key length, got ${key.length}, expected 32`,
      );
    }
    this.#ecb = createCipheriv('aes-256-ecb', key, null).setAutoPadding(false);
    this.#cbc = createCipheriv('aes-256-cbc', key, ZERO_BLOCK).setAutoPadding(false);
    const l = this.#ecb.update(ZERO_BLOCK);
    this.#k1 = dbl(l);
    this.#k2 = dbl(this.#k1);
    l.fill(0);
    // CMAC of the complete block 0^128 is E(0^128 xor K1): one ECB block, which leaves the CBC
    // chain alone and allocates no scratch (a key used for a single message never needs it grown
    // twice).
    this.#d0 = new Uint8Array(this.#ecb.update(this.#k1));
  }

  /** The scratch buffer, grown to at least `length` bytes. */
  #scratchFor(length: number): Uint8Array {
    if (this.#scratch.length < length) {
      // Round up so that slowly growing messages do not reallocate every time.
      this.#scratch = new Uint8Array(Math.max(256, 2 ** Math.ceil(Math.log2(length))));
      this.#scratchView = new DataView(this.#scratch.buffer);
    }
    return this.#scratch;
  }

  /**
   * AES-CMAC (RFC 4493) of the `length`-byte message at the start of the scratch buffer, which
   * must have room for its padding; the scratch is wiped afterwards. The CBC-MAC runs on the
   * long-lived CBC cipher: XORing the current chaining value into the first block cancels it,
   * exactly as if the IV were zero. Returns a copy of the tag, so callers cannot disturb the chain.
   */
  #cmacScratch(length: number): Uint8Array {
    const complete = length > 0 && length % BLOCK === 0;
    const padded = complete ? length : length - (length % BLOCK) + BLOCK;
    const t = this.#scratch;
    if (!complete) {
      t[length] = 0x80;
      t.fill(0, length + 1, padded);
    }
    xorBlockInto(t, padded - BLOCK, complete ? this.#k1 : this.#k2);
    const chain = this.#chain;
    xorBlockInto(t, 0, chain);
    const out = this.#cbc.update(t.subarray(0, padded));
    t.fill(0, 0, padded);
    const last = out.length - BLOCK;
    for (let i = 0; i < BLOCK; i++) chain[i] = out[last + i] ?? 0;
    return new Uint8Array(chain);
  }

  /** AES-CMAC (RFC 4493) of `message` under this key. */
  cmac(message: Uint8Array): Uint8Array {
    this.#scratchFor(message.length + BLOCK).set(message);
    return this.#cmacScratch(message.length);
  }

  /** S2V's running value after the associated-data components (served from the cache if it can). */
  #afterAssociatedData(associatedData: readonly Uint8Array[]): Uint8Array {
    const only = associatedData.length === 1 ? associatedData[0] : undefined;
    if (only !== undefined && only.length <= BLOCK) {
      const cached = this.#adCache;
      if (cached !== undefined && sameBytes(cached.ad, only)) {
        return cached.d;
      }
    }
    let d = this.#d0;
    for (const ad of associatedData) {
      d = dbl(d);
      xorBlockInto(d, 0, this.cmac(ad));
    }
    if (only !== undefined && only.length <= BLOCK) this.#adCache = { ad: new Uint8Array(only), d };
    return d;
  }

  /** S2V (RFC 5297 §2.4) over the associated-data components and the plaintext. */
  #s2v(associatedData: readonly Uint8Array[], plaintext: Uint8Array): Uint8Array {
    const d = this.#afterAssociatedData(associatedData);
    const n = plaintext.length;
    // T is built in the scratch buffer: it is plaintext-sized, and node:crypto would move a small
    // on-heap array off the heap anyway.
    const t = this.#scratchFor(n + BLOCK);
    t.set(plaintext);
    if (n >= BLOCK) {
      // T = plaintext xorend D.
      xorBlockInto(t, n - BLOCK, d);
      return this.#cmacScratch(n);
    }
    // T = dbl(D) xor pad(plaintext): one complete block, so its CMAC uses K1.
    t[n] = 0x80;
    t.fill(0, n + 1, BLOCK);
    xorBlockInto(t, 0, dbl(d));
    return this.#cmacScratch(BLOCK);
  }

  /**
   * AES-CTR keystream for `length` bytes from V (RFC 5297 §2.5), computed with the long-lived
   * ECB cipher over counter blocks, behind `lead` bytes (0 or 16) of don't-care output that the
   * caller overwrites at once (seal puts V there). Trailing keystream past `lead + length` is
   * zeroed, so the returned view's buffer holds nothing beyond the message.
   */
  #keystream(v: Uint8Array, length: number, lead: number): Uint8Array {
    const size = lead + Math.ceil(length / BLOCK) * BLOCK;
    const scratch = this.#scratchFor(size);
    const view = this.#scratchView;
    // Q = V with the 31st and 63rd bits (from the right) cleared, a 128-bit big-endian counter.
    let q0 = readUint32BE(v, 0);
    let q1 = readUint32BE(v, 4);
    let q2 = readUint32BE(v, 8) & 0x7fffffff;
    let q3 = readUint32BE(v, 12) & 0x7fffffff;
    for (let off = lead; off < size; off += BLOCK) {
      view.setUint32(off, q0);
      view.setUint32(off + 4, q1);
      view.setUint32(off + 8, q2);
      view.setUint32(off + 12, q3);
      // Increment modulo 2^128 (the carries cannot happen below 2^31 blocks; kept for fidelity).
      q3 = (q3 + 1) >>> 0;
      if (q3 === 0) {
        q2 = (q2 + 1) >>> 0;
        if (q2 === 0) {
          q1 = (q1 + 1) >>> 0;
          if (q1 === 0) q0 = (q0 + 1) >>> 0;
        }
      }
    }
    const encrypted = this.#ecb.update(scratch.subarray(0, size));
    if (encrypted.length !== size) throw new Error('AES-ECB returned an unexpected length');
    // A plain Uint8Array: Buffer's own fill() is much slower, and callers expect no Buffer.
    const out = plainView(encrypted, 0, size);
    out.fill(0, lead + length);
    return size === lead + length ? out : out.subarray(0, lead + length);
  }

  /**
   * XORs `input` into `dst` (a keystream region of the same length). An unaligned `input`
   * (typical of network buffers) is first copied into the aligned scratch buffer: a native copy
   * plus word XOR beats byte XOR.
   */
  #xorInput(dst: Uint8Array, input: Uint8Array): void {
    if ((input.byteOffset & 3) === 0 || (dst.byteOffset & 3) !== 0) {
      xorBytes(dst, input);
      return;
    }
    const copy = this.#scratchFor(input.length).subarray(0, input.length);
    copy.set(input);
    xorBytes(dst, copy);
    copy.fill(0);
  }

  /** Encrypts: returns `V (16) || ciphertext`. */
  seal(associatedData: readonly Uint8Array[], plaintext: Uint8Array): Uint8Array {
    const v = this.#s2v(associatedData, plaintext);
    // The keystream buffer has a 16-byte lead block for V, so it is the output as is.
    const out = this.#keystream(v, plaintext.length, BLOCK);
    out.set(v, 0);
    this.#xorInput(out.subarray(BLOCK), plaintext);
    return out;
  }

  /**
   * Decrypts `V || ciphertext`.
   * @throws E4Error `TooShortCiphertext` below 16 bytes, `NotAuthentic` when the tag is wrong
   */
  open(associatedData: readonly Uint8Array[], sealed: Uint8Array): Uint8Array {
    if (sealed.length < BLOCK) {
      throw new E4Error(E4ErrorCode.TooShortCiphertext, 'too short ciphertext');
    }
    const v = sealed.subarray(0, BLOCK);
    const ciphertext = sealed.subarray(BLOCK);
    const plaintext = this.#keystream(v, ciphertext.length, 0);
    this.#xorInput(plaintext, ciphertext);
    const expected = this.#s2v(associatedData, plaintext);
    if (!blocksEqual(expected, v)) {
      plaintext.fill(0);
      throw referenceError('NotAuthentic');
    }
    return plaintext;
  }
}

/** One-shot AES-SIV encryption with a 32-byte E4 key; prefer {@link AesSivKey} on hot paths. */
export function aesSivSeal(
  key: Uint8Array,
  associatedData: readonly Uint8Array[],
  plaintext: Uint8Array,
): Uint8Array {
  return new AesSivKey(key).seal(associatedData, plaintext);
}

/** One-shot AES-SIV decryption; throws like {@link AesSivKey.open}. */
export function aesSivOpen(
  key: Uint8Array,
  associatedData: readonly Uint8Array[],
  sealed: Uint8Array,
): Uint8Array {
  return new AesSivKey(key).open(associatedData, sealed);
}
