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
 * - one scratch buffer shared by every key of the thread for the S2V input and the CTR counter
 *   blocks, wiped after it has held plaintext;
 * - the keystream buffer that OpenSSL returns becomes the output, so sealing allocates one
 *   message-sized buffer besides the CMAC's.
 *
 * Many keys are used only once (the C2 protects each command under a device key it has just
 * unsealed, and a device prepares each new topic key), so the key itself is kept light too: no
 * off-heap memory of its own besides the two cipher objects, its subkeys packed in one small
 * array, and `CMAC(0)` computed in the same native call as the first associated data's CMAC.
 */
import { createCipheriv, type Cipher } from 'node:crypto';
import { requireBytes, requireBytesArray } from './arguments.ts';
import { E4Error, E4ErrorCode, referenceError } from './errors.ts';
import { validateSymKey } from './validate.ts';

const BLOCK = 16;
const ZERO_BLOCK = new Uint8Array(BLOCK);
const EMPTY = new Uint8Array(0);

/**
 * XORs the double of the block at `src[srcOffset]`, in GF(2^128) with the RFC 5297 polynomial
 * (x^128 + x^7 + x^2 + x + 1), into `target` at `offset` (`src` unchanged; into a zeroed block it
 * is plain doubling).
 */
function xorDoubledInto(
  target: Uint8Array,
  offset: number,
  src: Uint8Array,
  srcOffset: number,
): void {
  const msb = (src[srcOffset] ?? 0) >>> 7;
  let carry = 0;
  for (let i = BLOCK - 1; i >= 0; i--) {
    const b = src[srcOffset + i] ?? 0;
    target[offset + i] = (target[offset + i] ?? 0) ^ (((b << 1) | carry) & 0xff);
    carry = b >>> 7;
  }
  if (msb !== 0) target[offset + BLOCK - 1] = (target[offset + BLOCK - 1] ?? 0) ^ 0x87;
}

/** XORs the 16-byte block at `block[blockOffset]` into `target` at `offset`. */
function xorBlockInto(
  target: Uint8Array,
  offset: number,
  block: Uint8Array,
  blockOffset = 0,
): void {
  for (let i = 0; i < BLOCK; i++) {
    target[offset + i] = (target[offset + i] ?? 0) ^ (block[blockOffset + i] ?? 0);
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

/** Views a Buffer returned by node:crypto as a plain Uint8Array, optionally shortened. */
function plainView(buf: Uint8Array, offset: number, length: number): Uint8Array {
  return new Uint8Array(buf.buffer, buf.byteOffset + offset, length);
}

/** Above this size a message's work area is allocated for it alone instead of being kept. */
const SCRATCH_KEPT_MAX = 64 * 1024;

/**
 * The work area of every key of this thread (every method is synchronous, so no two uses
 * overlap): the S2V input, then the CTR counter blocks. A fresh off-heap buffer costs about as
 * much as the AES work on 1 KiB, and one per key would also cost every short-lived key its
 * allocation. Always 4-byte aligned (own ArrayBuffer), and zeroed after it has held plaintext.
 */
let sharedScratch = new Uint8Array(256);
let sharedScratchView = new DataView(sharedScratch.buffer);

/** A work area of at least `length` bytes: the shared one, grown if needed, or a one-off. */
function scratchFor(length: number): Uint8Array {
  if (sharedScratch.length >= length) return sharedScratch;
  // Round up so that slowly growing messages do not reallocate every time.
  const size = Math.max(256, 2 ** Math.ceil(Math.log2(length)));
  if (size > SCRATCH_KEPT_MAX) return new Uint8Array(size);
  sharedScratch = new Uint8Array(size);
  sharedScratchView = new DataView(sharedScratch.buffer);
  return sharedScratch;
}

/** A DataView over `scratch` (the shared one's is kept). */
function viewOf(scratch: Uint8Array): DataView {
  return scratch === sharedScratch ? sharedScratchView : new DataView(scratch.buffer);
}

/** Offsets into {@link AesSivKey}'s packed 64-byte state. */
const K1 = 0;
const K2 = 16;
const D0 = 32;
const CHAIN = 48;

/**
 * S2V's running value D, left here by `#afterAssociatedData` for `#s2v` (every method is
 * synchronous, so one for the thread is enough and no key allocates one per message).
 */
const D = new Uint8Array(BLOCK);

/**
 * A 32-byte E4 key prepared for AES-SIV. Create one per key and reuse it: it caches the CMAC
 * subkeys and the cipher objects. Not safe to share across worker threads (none is needed: every
 * method is synchronous).
 */
export class AesSivKey {
  readonly #ecb: Cipher;
  readonly #cbc: Cipher;
  /**
   * K1, K2, S2V's starting value `CMAC(K, 0^128)` (the same for every message under this key,
   * valid once `#d0Ready`) and the CBC cipher's current chaining value (its last output block,
   * updated in place), at the offsets K1, K2, D0 and CHAIN: one array of 64 bytes, the most V8
   * keeps on its own heap.
   */
  readonly #state = new Uint8Array(4 * BLOCK);
  #d0Ready = false;
  /**
   * The S2V value after the last single associated-data component of at most one block,
   * `dbl(d0) xor CMAC(ad)` (bytes 0..15, where D keeps it too), and that component (bytes 16..31,
   * its length in `#adLength`, -1 for none).
   * E4's only associated data is the 8-byte timestamp, which stays the same for every message of
   * a given second, so this saves a CMAC (a native call and its output buffer) on nearly every
   * message of a busy key. Timestamps are public, so a hit revealing equality with the previous
   * one leaks nothing.
   */
  readonly #adCache = new Uint8Array(2 * BLOCK);
  #adLength = -1;

  /**
   * @param key - the 32-byte E4 key (used as both halves of the 64-byte SIV key)
   * @throws E4Error `InvalidKey` when the key is not 32 bytes or is all zeros, `InvalidArgument`
   *   when it is not a `Uint8Array`
   */
  constructor(key: Uint8Array) {
    // A string would be taken by node:crypto as the UTF-8 bytes of a key, unchecked. An all-zero
    // key is refused as e4go's Encrypt and Decrypt refuse it (ValidateSymKey): every E4 message
    // and command goes through here, so none is sealed or opened under a key anyone can guess.
    validateSymKey(key);
    this.#ecb = createCipheriv('aes-256-ecb', key, null).setAutoPadding(false);
    this.#cbc = createCipheriv('aes-256-cbc', key, ZERO_BLOCK).setAutoPadding(false);
    const l = this.#ecb.update(ZERO_BLOCK);
    const state = this.#state;
    // The state is still all zeros: doubling into it.
    xorDoubledInto(state, K1, l, 0);
    xorDoubledInto(state, K2, state, K1);
    l.fill(0);
  }

  /**
   * AES-CMAC (RFC 4493) of the `length`-byte message at the start of `t` (a work area with room
   * for its padding), which is wiped afterwards. The CBC-MAC runs on the long-lived CBC cipher:
   * XORing the current chaining value into the first block cancels it, exactly as if the IV were
   * zero. Returns a copy of the tag, so callers cannot disturb the chain.
   */
  #cmacScratch(t: Uint8Array, length: number): Uint8Array {
    const complete = length > 0 && length % BLOCK === 0;
    const padded = complete ? length : length - (length % BLOCK) + BLOCK;
    if (!complete) {
      t[length] = 0x80;
      t.fill(0, length + 1, padded);
    }
    const state = this.#state;
    xorBlockInto(t, padded - BLOCK, state, complete ? K1 : K2);
    xorBlockInto(t, 0, state, CHAIN);
    const out = this.#cbc.update(t.subarray(0, padded));
    t.fill(0, 0, padded);
    const last = out.length - BLOCK;
    for (let i = 0; i < BLOCK; i++) state[CHAIN + i] = out[last + i] ?? 0;
    return state.slice(CHAIN, CHAIN + BLOCK);
  }

  /**
   * AES-CMAC (RFC 4493) of `message` under this key.
   * @throws E4Error `InvalidArgument` when `message` is not a `Uint8Array`
   */
  cmac(message: Uint8Array): Uint8Array {
    requireBytes(message, 'message');
    return this.#cmac(message);
  }

  /** {@link AesSivKey.cmac} of checked bytes (S2V's associated-data components). */
  #cmac(message: Uint8Array): Uint8Array {
    const t = scratchFor(message.length + BLOCK);
    t.set(message);
    return this.#cmacScratch(t, message.length);
  }

  /** Whether `ad` is the cached single associated-data component. */
  #isCachedAd(ad: Uint8Array): boolean {
    if (ad.length !== this.#adLength) return false;
    const cached = this.#adCache;
    for (let i = 0; i < ad.length; i++) if (cached[BLOCK + i] !== ad[i]) return false;
    return true;
  }

  /**
   * The CMAC of a single associated-data component `ad` of at most one block (its one padded
   * block, encrypted alone), into D; with `CMAC(0)` in the same native call while this key has
   * not computed it yet, which saves a key used for one message a call and a buffer.
   */
  #cmacOneBlockIntoD(ad: Uint8Array): void {
    const state = this.#state;
    const withD0 = !this.#d0Ready;
    const t = scratchFor(2 * BLOCK);
    const at = withD0 ? BLOCK : 0;
    if (withD0) for (let i = 0; i < BLOCK; i++) t[i] = state[K1 + i] ?? 0; // CMAC(0) = E(K1)
    t.set(ad, at);
    const complete = ad.length === BLOCK;
    if (!complete) {
      t[at + ad.length] = 0x80;
      t.fill(0, at + ad.length + 1, at + BLOCK);
    }
    xorBlockInto(t, at, state, complete ? K1 : K2);
    const out = this.#ecb.update(t.subarray(0, at + BLOCK));
    t.fill(0, 0, at + BLOCK);
    if (withD0) {
      for (let i = 0; i < BLOCK; i++) state[D0 + i] = out[i] ?? 0;
      this.#d0Ready = true;
    }
    for (let i = 0; i < BLOCK; i++) D[i] = out[at + i] ?? 0;
    out.fill(0);
  }

  /** `CMAC(0)`, computed on first use. */
  #ensureD0(): void {
    if (this.#d0Ready) return;
    const state = this.#state;
    const out = this.#ecb.update(state.subarray(K1, K1 + BLOCK));
    for (let i = 0; i < BLOCK; i++) state[D0 + i] = out[i] ?? 0;
    out.fill(0);
    this.#d0Ready = true;
  }

  /**
   * S2V's running value after the associated-data components: the returned array holds it in
   * bytes 0..15 (this key's cache, or D). Callers must not modify it.
   */
  #afterAssociatedData(associatedData: readonly Uint8Array[]): Uint8Array {
    const state = this.#state;
    const only = associatedData.length === 1 ? associatedData[0] : undefined;
    if (only !== undefined && only.length <= BLOCK) {
      const cache = this.#adCache;
      if (this.#isCachedAd(only)) return cache;
      this.#cmacOneBlockIntoD(only); // D = CMAC(ad)
      xorDoubledInto(D, 0, state, D0);
      cache.set(D, 0);
      cache.set(only, BLOCK);
      this.#adLength = only.length;
      return D;
    }
    this.#ensureD0();
    for (let i = 0; i < BLOCK; i++) D[i] = state[D0 + i] ?? 0;
    for (const ad of associatedData) {
      // D = dbl(D) xor CMAC(ad), built in the CMAC's own fresh copy.
      const mac = this.#cmac(ad);
      xorDoubledInto(mac, 0, D, 0);
      D.set(mac);
    }
    return D;
  }

  /** S2V (RFC 5297 §2.4) over the associated-data components and the plaintext. */
  #s2v(associatedData: readonly Uint8Array[], plaintext: Uint8Array): Uint8Array {
    const d = this.#afterAssociatedData(associatedData);
    const n = plaintext.length;
    // T is built in the work area: it is plaintext-sized, and node:crypto would move a small
    // on-heap array off the heap anyway.
    const t = scratchFor(n + BLOCK);
    t.set(plaintext);
    if (n >= BLOCK) {
      // T = plaintext xorend D.
      xorBlockInto(t, n - BLOCK, d);
      return this.#cmacScratch(t, n);
    }
    // T = dbl(D) xor pad(plaintext): one complete block, so its CMAC uses K1.
    t[n] = 0x80;
    t.fill(0, n + 1, BLOCK);
    xorDoubledInto(t, 0, d, 0);
    return this.#cmacScratch(t, BLOCK);
  }

  /**
   * AES-CTR keystream for `length` bytes from V (RFC 5297 §2.5), computed with the long-lived
   * ECB cipher over counter blocks, behind `lead` bytes (0, 16 or 32) of output that the caller
   * overwrites or zeroes at once (seal puts V there). Trailing keystream past `lead + length` is
   * zeroed, so the returned view's buffer holds nothing beyond the message.
   */
  #keystream(v: Uint8Array, length: number, lead: number): Uint8Array {
    const size = lead + Math.ceil(length / BLOCK) * BLOCK;
    const scratch = scratchFor(size);
    const view = viewOf(scratch);
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
   * (typical of network buffers) is first copied into the aligned work area: a native copy plus
   * word XOR beats byte XOR.
   */
  #xorInput(dst: Uint8Array, input: Uint8Array): void {
    if ((input.byteOffset & 3) === 0 || (dst.byteOffset & 3) !== 0) {
      xorBytes(dst, input);
      return;
    }
    const copy = scratchFor(input.length).subarray(0, input.length);
    copy.set(input);
    xorBytes(dst, copy);
    copy.fill(0);
  }

  /**
   * Encrypts: returns `V (16) || ciphertext`.
   * @throws E4Error `InvalidArgument` when `plaintext` is not a `Uint8Array` or
   *   `associatedData` not an array of them
   */
  seal(associatedData: readonly Uint8Array[], plaintext: Uint8Array): Uint8Array {
    return this.sealWithPrefix(EMPTY, associatedData, plaintext);
  }

  /**
   * Encrypts into one buffer that starts with `prefix`: returns `prefix || V (16) || ciphertext`
   * without copying the sealed bytes behind the prefix (E4 puts the timestamp there). The
   * result is a view; the bytes of its buffer before it are zero.
   * @throws E4Error `InvalidArgument` when the prefix is longer than 16 bytes, or an argument
   *   is not a `Uint8Array` (`associatedData`: an array of them). Plain JavaScript could pass a
   *   string: it was sealed as zero bytes of its length.
   */
  sealWithPrefix(
    prefix: Uint8Array,
    associatedData: readonly Uint8Array[],
    plaintext: Uint8Array,
  ): Uint8Array {
    requireBytes(prefix, 'prefix');
    requireBytesArray(associatedData, 'associatedData');
    requireBytes(plaintext, 'plaintext');
    if (prefix.length > BLOCK) {
      throw new E4Error(E4ErrorCode.InvalidArgument, 'an AES-SIV prefix is at most 16 bytes');
    }
    const v = this.#s2v(associatedData, plaintext);
    // The keystream buffer has one lead block for V, and one more for a prefix.
    const lead = prefix.length === 0 ? BLOCK : 2 * BLOCK;
    const region = this.#keystream(v, plaintext.length, lead);
    const start = lead - BLOCK - prefix.length;
    // The lead's keystream is unused: nothing of it may stay in the buffer.
    region.fill(0, 0, start);
    const out = start === 0 ? region : region.subarray(start);
    out.set(prefix, 0);
    out.set(v, prefix.length);
    this.#xorInput(out.subarray(prefix.length + BLOCK), plaintext);
    return out;
  }

  /**
   * Decrypts `V || ciphertext`.
   * @throws E4Error `TooShortCiphertext` below 16 bytes, `NotAuthentic` when the tag is wrong,
   *   `InvalidArgument` when `sealed` is not a `Uint8Array` or `associatedData` not an array of
   *   them
   */
  open(associatedData: readonly Uint8Array[], sealed: Uint8Array): Uint8Array {
    requireBytesArray(associatedData, 'associatedData');
    requireBytes(sealed, 'sealed');
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

/**
 * One-shot AES-SIV encryption with a 32-byte E4 key; prefer {@link AesSivKey} on hot paths.
 * @throws E4Error `InvalidKey` as {@link AesSivKey}'s constructor
 */
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
