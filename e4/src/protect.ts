/**
 * Message protection in both modes (e4go `crypto/crypto.go`, `keys/publickey.go`).
 *
 * SK message (and every C2 command, in both modes): `ts(8, LE) || V(16) || C`, with
 * `V || C = AES-SIV(K || K, AD = [ts], plaintext)`.
 * PK message: `ts(8) || signerId(16) || V(16) || C || Ed25519 signature(64)` where the signature
 * covers every byte before it and the AES-SIV associated data is still only `[ts]`.
 */
import type { KeyObject } from 'node:crypto';
import { AesSivKey } from './aes-siv.ts';
import { requireBigInt, requireFunction, requireMessageBytes, requireObject } from './arguments.ts';
import { readInt64LE, toHex, writeUint64LE } from './bytes.ts';
import { systemClock, unixSeconds, validateTimestamp, type Clock } from './clock.ts';
import { ED25519_SIG_LEN, ID_LEN, PK_OVERHEAD, SK_OVERHEAD, TIMESTAMP_LEN } from './constants.ts';
import { ed25519Sign, ed25519Verify } from './curve.ts';
import { referenceError } from './errors.ts';
import { validateId } from './validate.ts';

/** A symmetric key as raw bytes or already prepared for AES-SIV (faster when reused). */
export type SymKey = Uint8Array | AesSivKey;

/** Prepares a key for AES-SIV, reusing an {@link AesSivKey} as is. */
export function sivKey(key: SymKey): AesSivKey {
  return key instanceof AesSivKey ? key : new AesSivKey(key);
}

/**
 * Protects `payload` with a symmetric key, stamped with the clock's current second.
 * An empty payload is allowed (as in e4go) even though e4go's own unprotect refuses the result.
 * @throws E4Error `InvalidKey` when the key is not 32 bytes or is all zeros (as e4go's
 *   `Encrypt`); `InvalidArgument` when the payload is not a `Uint8Array`, `PayloadTooLarge` past
 *   `MESSAGE_MAX_BYTES`
 */
export function protectSymKey(
  payload: Uint8Array,
  key: SymKey,
  clock: Clock = systemClock,
): Uint8Array {
  return protectSymKeyAt(payload, key, unixSeconds(clock));
}

/**
 * {@link protectSymKey} with an explicit timestamp in Unix seconds (any uint64; a `Clock` in
 * milliseconds cannot express every one).
 * @throws E4Error as {@link protectSymKey}; `InvalidArgument` when the timestamp is not a bigint
 */
export function protectSymKeyAt(
  payload: Uint8Array,
  key: SymKey,
  timestampSeconds: bigint,
): Uint8Array {
  requireMessageBytes(payload, 'payload');
  requireBigInt(timestampSeconds, 'timestampSeconds');
  const ts = writeUint64LE(timestampSeconds);
  // Sealed straight behind the timestamp: no second message-sized buffer and copy.
  return sivKey(key).sealWithPrefix(ts, [ts], payload);
}

/**
 * Unprotects an SK message, with e4go's checks in e4go's order: length (more than 24 bytes),
 * timestamp window (before any decryption), then the key and authenticity.
 * @throws E4Error `TooShortCiphertext`, `TimestampInFuture`, `TimestampTooOld`, `InvalidKey`
 *   (a key that is not 32 bytes or is all zeros), `NotAuthentic`
 */
export function unprotectSymKey(
  protectedMessage: Uint8Array,
  key: SymKey,
  clock: Clock = systemClock,
): Uint8Array {
  requireMessageBytes(protectedMessage, 'protected message');
  if (protectedMessage.length <= SK_OVERHEAD) throw referenceError('TooShortCiphertext');
  const ts = protectedMessage.subarray(0, TIMESTAMP_LEN);
  validateTimestamp(readInt64LE(ts), clock);
  return sivKey(key).open([ts], protectedMessage.subarray(TIMESTAMP_LEN));
}

/** What a PK-mode sender needs: its 16-byte id and its Ed25519 signing key. */
export interface PkSigner {
  readonly id: Uint8Array;
  readonly signingKey: KeyObject;
}

/**
 * Protects `payload` for a topic in PK mode: encrypts with the topic key and signs as `signer`.
 * @throws E4Error `InvalidID` when the signer id is not 16 bytes, `InvalidKey` for a topic key
 *   that is not 32 bytes or is all zeros; `InvalidArgument` when the payload is not a
 *   `Uint8Array`, the signer not an object or its signing key not a `KeyObject`
 */
export function protectPubKey(
  payload: Uint8Array,
  topicKey: SymKey,
  signer: PkSigner,
  clock: Clock = systemClock,
): Uint8Array {
  return protectPubKeyAt(payload, topicKey, signer, unixSeconds(clock));
}

/**
 * {@link protectPubKey} with an explicit timestamp in Unix seconds.
 * @throws E4Error as {@link protectPubKey}; `InvalidArgument` when the timestamp is not a bigint
 */
export function protectPubKeyAt(
  payload: Uint8Array,
  topicKey: SymKey,
  signer: PkSigner,
  timestampSeconds: bigint,
): Uint8Array {
  requireMessageBytes(payload, 'payload');
  requireObject(signer, 'signer');
  validateId(signer.id);
  requireBigInt(timestampSeconds, 'timestampSeconds');
  const ts = writeUint64LE(timestampSeconds);
  const sealed = sivKey(topicKey).seal([ts], payload);
  const signedLength = TIMESTAMP_LEN + ID_LEN + sealed.length;
  const out = new Uint8Array(signedLength + ED25519_SIG_LEN);
  out.set(ts, 0);
  out.set(signer.id, TIMESTAMP_LEN);
  out.set(sealed, TIMESTAMP_LEN + ID_LEN);
  out.set(ed25519Sign(signer.signingKey, out.subarray(0, signedLength)), signedLength);
  return out;
}

/** Finds a signer's Ed25519 public key by the lowercase hex of its id. */
export type PubKeyLookup = (signerIdHex: string) => KeyObject | undefined;

/**
 * Unprotects a PK-mode message, in e4go's order: length, timestamp window, signer lookup,
 * signature, then decryption. Lengths below 104 bytes are refused (e4go refuses only up to 72
 * and can panic between 73 and 87; we choose the safe bound).
 * @throws E4Error `InvalidProtectedLen`, `TimestampInFuture`, `TimestampTooOld`,
 *   `PubKeyNotFound`, `InvalidSignature`, `InvalidKey` (a topic key that is not 32 bytes or is all
 *   zeros), `NotAuthentic`; `InvalidArgument` when the message is not a `Uint8Array`, the lookup
 *   not a function, or what it finds not a `KeyObject`
 */
export function unprotectPubKey(
  protectedMessage: Uint8Array,
  topicKey: SymKey,
  lookupPubKey: PubKeyLookup,
  clock: Clock = systemClock,
): Uint8Array {
  requireMessageBytes(protectedMessage, 'protected message');
  requireFunction(lookupPubKey, 'lookupPubKey');
  if (protectedMessage.length < PK_OVERHEAD) throw referenceError('InvalidProtectedLen');
  const ts = protectedMessage.subarray(0, TIMESTAMP_LEN);
  validateTimestamp(readInt64LE(ts), clock);
  const signerId = protectedMessage.subarray(TIMESTAMP_LEN, TIMESTAMP_LEN + ID_LEN);
  const pubKey = lookupPubKey(toHex(signerId));
  if (pubKey === undefined) throw referenceError('PubKeyNotFound');
  const signedLength = protectedMessage.length - ED25519_SIG_LEN;
  const signed = protectedMessage.subarray(0, signedLength);
  if (!ed25519Verify(pubKey, signed, protectedMessage.subarray(signedLength))) {
    throw referenceError('InvalidSignature');
  }
  return sivKey(topicKey).open(
    [ts],
    protectedMessage.subarray(TIMESTAMP_LEN + ID_LEN, signedLength),
  );
}
