/**
 * AES-SIV (RFC 5297, AES-CMAC-SIV) as E4 uses it: a 512-bit SIV key made of the 32-byte E4 key
 * twice, so the S2V (CMAC) key and the CTR key are the same AES-256 key (e4go via miscreant
 * `NewAESCMACSIV(key || key)`, libe4 `aes_siv.c`). Output is `V (16) || C`.
 *
 * Built on node:crypto AES primitives. The per-key context keeps two long-lived OpenSSL cipher
 * objects so that a message costs no key schedule for its CMACs: an ECB cipher for single blocks
 * and a CBC cipher whose chaining value is cancelled at the start of each CMAC (see {@link cbcMac}).
 */
import { createCipheriv, timingSafeEqual, type Cipher } from 'node:crypto';
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

function xorInto(target: Uint8Array, offset: number, other: Uint8Array): void {
  for (let i = 0; i < other.length; i++) {
    target[offset + i] = (target[offset + i] ?? 0) ^ (other[i] ?? 0);
  }
}

/**
 * A 32-byte E4 key prepared for AES-SIV. Create one per key and reuse it: it caches the CMAC
 * subkeys and the cipher objects. Not safe to share across worker threads (none is needed:
 * every method is synchronous).
 */
export class AesSivKey {
  readonly #key: Buffer;
  readonly #ecb: Cipher;
  readonly #cbc: Cipher;
  /** The CBC cipher's current chaining value (its last output block). */
  #chain: Uint8Array = new Uint8Array(BLOCK);
  readonly #k1: Uint8Array;
  readonly #k2: Uint8Array;
  /** S2V's starting value `CMAC(K, 0^128)`, the same for every message under this key. */
  readonly #d0: Uint8Array;

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
    this.#key = Buffer.from(key);
    this.#ecb = createCipheriv('aes-256-ecb', this.#key, null).setAutoPadding(false);
    this.#cbc = createCipheriv('aes-256-cbc', this.#key, ZERO_BLOCK).setAutoPadding(false);
    const l = this.#encryptBlock(ZERO_BLOCK);
    this.#k1 = dbl(l);
    this.#k2 = dbl(this.#k1);
    this.#d0 = this.cmac(ZERO_BLOCK);
  }

  #encryptBlock(block: Uint8Array): Uint8Array {
    return this.#ecb.update(block);
  }

  /**
   * CBC-MAC of block-aligned `data` (modified in place) on the long-lived CBC cipher: XORing the
   * current chaining value into the first block cancels it, exactly as if the IV were zero.
   */
  #cbcMac(data: Uint8Array): Uint8Array {
    xorInto(data, 0, this.#chain);
    const out = this.#cbc.update(data);
    const mac = new Uint8Array(out.subarray(out.length - BLOCK));
    this.#chain = mac;
    return mac;
  }

  /** AES-CMAC (RFC 4493) of `message` under this key. */
  cmac(message: Uint8Array): Uint8Array {
    const complete = message.length > 0 && message.length % BLOCK === 0;
    const padded = complete ? message.length : (Math.floor(message.length / BLOCK) + 1) * BLOCK;
    const data = new Uint8Array(padded);
    data.set(message);
    if (!complete) data[message.length] = 0x80;
    xorInto(data, padded - BLOCK, complete ? this.#k1 : this.#k2);
    return this.#cbcMac(data);
  }

  /** S2V (RFC 5297 §2.4) over the associated-data components and the plaintext. */
  #s2v(associatedData: readonly Uint8Array[], plaintext: Uint8Array): Uint8Array {
    let d = this.#d0;
    for (const ad of associatedData) {
      d = dbl(d);
      xorInto(d, 0, this.cmac(ad));
    }
    if (plaintext.length >= BLOCK) {
      const t = new Uint8Array(plaintext);
      xorInto(t, t.length - BLOCK, d);
      return this.#cmacOwned(t);
    }
    const t = new Uint8Array(BLOCK);
    t.set(plaintext);
    t[plaintext.length] = 0x80;
    xorInto(t, 0, dbl(d));
    return this.#cmacOwned(t);
  }

  /** CMAC of a buffer the caller gives away (saves one copy for long plaintexts). */
  #cmacOwned(message: Uint8Array): Uint8Array {
    if (message.length > 0 && message.length % BLOCK === 0) {
      xorInto(message, message.length - BLOCK, this.#k1);
      return this.#cbcMac(message);
    }
    return this.cmac(message);
  }

  #ctr(v: Uint8Array, input: Uint8Array): Uint8Array {
    if (input.length === 0) return new Uint8Array(0);
    // RFC 5297 §2.5: clear the 31st and 63rd bits (from the right) of V to form the counter.
    const q = new Uint8Array(v);
    q[8] = (q[8] ?? 0) & 0x7f;
    q[12] = (q[12] ?? 0) & 0x7f;
    const ctr = createCipheriv('aes-256-ctr', this.#key, q);
    const head = ctr.update(input);
    const tail = ctr.final();
    return tail.length === 0 ? head : new Uint8Array(Buffer.concat([head, tail]));
  }

  /** Encrypts: returns `V (16) || ciphertext`. */
  seal(associatedData: readonly Uint8Array[], plaintext: Uint8Array): Uint8Array {
    const v = this.#s2v(associatedData, plaintext);
    const out = new Uint8Array(BLOCK + plaintext.length);
    out.set(v, 0);
    out.set(this.#ctr(v, plaintext), BLOCK);
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
    const plaintext = this.#ctr(v, sealed.subarray(BLOCK));
    const expected = this.#s2v(associatedData, plaintext);
    if (!timingSafeEqual(expected, v)) {
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
