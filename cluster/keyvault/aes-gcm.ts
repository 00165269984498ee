/** AES-256-GCM with a random 96-bit IV, the one cipher of the key vault. */
import { createCipheriv, createDecipheriv, randomBytes, type KeyObject } from 'node:crypto';

/** IV length: 96 bits, the size GCM is designed for. */
export const GCM_IV_BYTES = 12;
/** Tag length: the full 128 bits. */
export const GCM_TAG_BYTES = 16;

/**
 * Encrypts `plaintext` under `key` (32 bytes) with `aad` authenticated; returns iv || ct || tag.
 * A random IV is safe here: each key seals far fewer than the 2^32 messages where random 96-bit
 * IVs start to risk a collision, and data keys are rotated.
 */
export function gcmSeal(key: KeyObject, plaintext: Uint8Array, aad: Uint8Array): Uint8Array {
  const iv = randomBytes(GCM_IV_BYTES);
  const cipher = createCipheriv('aes-256-gcm', key, iv, { authTagLength: GCM_TAG_BYTES });
  cipher.setAAD(aad);
  const body = Buffer.concat([cipher.update(plaintext), cipher.final()]);
  return new Uint8Array(Buffer.concat([iv, body, cipher.getAuthTag()]));
}

/**
 * Decrypts iv || ct || tag. Returns `undefined` when the bytes are too short or do not
 * authenticate (wrong key, wrong `aad`, tampering): callers turn that into their own error, whose
 * message names the context and never the key.
 */
export function gcmOpen(
  key: KeyObject,
  sealed: Uint8Array,
  aad: Uint8Array,
): Uint8Array | undefined {
  if (sealed.length < GCM_IV_BYTES + GCM_TAG_BYTES) return undefined;
  const iv = sealed.subarray(0, GCM_IV_BYTES);
  const tag = sealed.subarray(sealed.length - GCM_TAG_BYTES);
  const body = sealed.subarray(GCM_IV_BYTES, sealed.length - GCM_TAG_BYTES);
  let plaintext: Buffer | undefined;
  try {
    const decipher = createDecipheriv('aes-256-gcm', key, iv, { authTagLength: GCM_TAG_BYTES });
    decipher.setAAD(aad);
    decipher.setAuthTag(tag);
    plaintext = decipher.update(body);
    // GCM returns everything from update(); final() only checks the tag (and throws if wrong).
    decipher.final();
    return new Uint8Array(plaintext.buffer, plaintext.byteOffset, plaintext.length);
  } catch {
    // Unauthenticated plaintext is never handed out, nor left behind.
    plaintext?.fill(0);
    return undefined;
  }
}
