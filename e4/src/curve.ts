/**
 * Ed25519 and X25519 on node:crypto, and the Ed25519 -> Curve25519 conversions e4go takes from
 * `extra25519` (used for the PK-mode command key).
 */
import {
  createHash,
  createPrivateKey,
  createPublicKey,
  diffieHellman,
  KeyObject,
  sign,
  verify,
} from 'node:crypto';
import { requireBytes } from './arguments.ts';
import { bytesEqual, concatBytes } from './bytes.ts';
import { ED25519_PRIV_LEN, ED25519_PUB_LEN, ED25519_SIG_LEN } from './constants.ts';
import { E4Error, E4ErrorCode } from './errors.ts';
import { sha3256 } from './hash.ts';
import { validateEd25519PrivKey } from './validate.ts';

// DER prefixes that wrap raw 32-byte keys as PKCS#8 (private) and SPKI (public).
const ED25519_PKCS8 = Buffer.from('302e020100300506032b657004220420', 'hex');
const ED25519_SPKI = Buffer.from('302a300506032b6570032100', 'hex');
const X25519_PKCS8 = Buffer.from('302e020100300506032b656e04220420', 'hex');
const X25519_SPKI = Buffer.from('302a300506032b656e032100', 'hex');

const P = (1n << 255n) - 19n;
/** The Edwards curve constant d = -121665 / 121666 mod p. */
const ED25519_D = 37095705934669439343138083508754565189542113879843219016388785533085940283555n;

function rawPublicKey(key: KeyObject): Uint8Array {
  const publicKey = key.type === 'private' ? createPublicKey(key) : key;
  const der = publicKey.export({ format: 'der', type: 'spki' });
  return new Uint8Array(der.subarray(der.length - 32));
}

/** Node key object for an Ed25519 seed. */
export function ed25519PrivateKeyObject(seed: Uint8Array): KeyObject {
  return createPrivateKey({
    key: Buffer.concat([ED25519_PKCS8, seed]),
    format: 'der',
    type: 'pkcs8',
  });
}

/**
 * Node key object for an Ed25519 public key. node:crypto checks the length only, not that the
 * bytes decode to a curve point: verification with a bad point simply fails. Use
 * {@link ed25519PublicToCurve25519} to validate a point.
 * @throws E4Error `InvalidKey` when the key is not 32 bytes
 */
export function ed25519PublicKeyObject(pub: Uint8Array): KeyObject {
  requireBytes(pub, 'Ed25519 public key');
  if (pub.length !== ED25519_PUB_LEN) {
    throw new E4Error(E4ErrorCode.InvalidKey, 'invalid Ed25519 public key length');
  }
  try {
    return createPublicKey({
      key: Buffer.concat([ED25519_SPKI, pub]),
      format: 'der',
      type: 'spki',
    });
  } catch (cause) {
    throw new E4Error(E4ErrorCode.InvalidKey, 'invalid Ed25519 public key', { cause });
  }
}

/**
 * The Go-format 64-byte private key `seed || public` for a 32-byte seed (RFC 8032's private
 * key), as every PK-mode API of this library takes it.
 * @throws E4Error `InvalidKey` when the seed is not 32 bytes, `InvalidArgument` when it is not a
 *   `Uint8Array` (never a TypeError that would quote it)
 */
export function ed25519KeyFromSeed(seed: Uint8Array): Uint8Array {
  requireBytes(seed, 'Ed25519 seed');
  if (seed.length !== 32) throw new E4Error(E4ErrorCode.InvalidKey, 'invalid Ed25519 seed length');
  return concatBytes(seed, rawPublicKey(ed25519PrivateKeyObject(seed)));
}

/**
 * The Ed25519 key in Go format of a device's own key pair made by node:crypto
 * (`generateKeyPairSync('ed25519').privateKey`, or a key imported from PEM).
 * @throws E4Error `InvalidKey` when `key` is not an Ed25519 private key, `InvalidArgument` when
 *   it is not a `KeyObject`
 */
export function ed25519KeyFromKeyObject(key: KeyObject): Uint8Array {
  requireKeyObject(key, 'key');
  if (key.type !== 'private' || key.asymmetricKeyType !== 'ed25519') {
    throw new E4Error(E4ErrorCode.InvalidKey, 'key is not an Ed25519 private key');
  }
  // PKCS#8 of an Ed25519 key is a fixed 16-byte prefix and the 32-byte seed (RFC 8410).
  const der = key.export({ format: 'der', type: 'pkcs8' });
  try {
    return ed25519KeyFromSeed(der.subarray(ED25519_PKCS8.length));
  } finally {
    der.fill(0); // it holds the seed: not left for the garbage collector to find
  }
}

/**
 * The public half of a Go-format Ed25519 private key.
 * @throws E4Error `InvalidKey` when the key is not 64 bytes (a 32-byte seed has no public half:
 *   make the Go-format key with {@link ed25519KeyFromSeed} first)
 */
export function ed25519PublicKey(privateKey: Uint8Array): Uint8Array {
  requireBytes(privateKey, 'Ed25519 private key');
  if (privateKey.length !== ED25519_PRIV_LEN) {
    throw new E4Error(
      E4ErrorCode.InvalidKey,
      `invalid private key length, got ${privateKey.length}, expected ${ED25519_PRIV_LEN}`,
    );
  }
  return privateKey.slice(32, ED25519_PRIV_LEN);
}

/**
 * Checks a Go-format private key and returns the Node key object for signing.
 *
 * Stricter than e4go on purpose: the public half must be the one the seed produces. Go signs
 * with the embedded public half, so a mismatching key would make signatures nobody can verify.
 * @throws E4Error `InvalidKey`
 */
export function ed25519SigningKey(privateKey: Uint8Array): KeyObject {
  validateEd25519PrivKey(privateKey);
  const keyObject = ed25519PrivateKeyObject(privateKey.subarray(0, 32));
  if (!bytesEqual(rawPublicKey(keyObject), privateKey.subarray(32))) {
    throw new E4Error(
      E4ErrorCode.InvalidKey,
      'invalid private key, public half does not match the seed',
    );
  }
  return keyObject;
}

/**
 * @throws E4Error `InvalidArgument` unless `key` is a node:crypto `KeyObject` (plain JavaScript
 *   can pass the raw key bytes)
 */
function requireKeyObject(key: unknown, what: string): asserts key is KeyObject {
  if (!(key instanceof KeyObject)) {
    throw new E4Error(E4ErrorCode.InvalidArgument, `${what} must be a node:crypto KeyObject`);
  }
}

/**
 * Pure Ed25519 (RFC 8032) signature.
 * @throws E4Error `InvalidArgument` when `key` is not a `KeyObject` or `message` not a
 *   `Uint8Array` (a string was signed as its UTF-8 bytes)
 */
export function ed25519Sign(key: KeyObject, message: Uint8Array): Uint8Array {
  requireKeyObject(key, 'key');
  requireBytes(message, 'message');
  return new Uint8Array(sign(null, message, key));
}

/**
 * Verifies a pure Ed25519 signature; false (never a throw) for a malformed signature.
 * @throws E4Error `InvalidArgument` when `key` is not a `KeyObject` or `message` or `signature`
 *   not a `Uint8Array`: such a misuse was `false` too, as if the signature were wrong
 */
export function ed25519Verify(key: KeyObject, message: Uint8Array, signature: Uint8Array): boolean {
  requireKeyObject(key, 'key');
  requireBytes(message, 'message');
  requireBytes(signature, 'signature');
  if (signature.length !== ED25519_SIG_LEN) return false;
  try {
    return verify(null, message, key, signature);
  } catch {
    return false;
  }
}

/**
 * Curve25519 private scalar of an Ed25519 key: clamp(SHA-512(seed)[0:32])
 * (extra25519 `PrivateKeyToCurve25519`). Accepts the seed or the 64-byte Go key.
 * @throws E4Error `InvalidKey` for any other length (it would hash whatever it was given)
 */
export function ed25519PrivateToCurve25519(privateKey: Uint8Array): Uint8Array {
  requireBytes(privateKey, 'Ed25519 private key');
  if (privateKey.length !== 32 && privateKey.length !== ED25519_PRIV_LEN) {
    throw new E4Error(
      E4ErrorCode.InvalidKey,
      `invalid private key length, got ${privateKey.length}, expected 32 or ${ED25519_PRIV_LEN}`,
    );
  }
  const h = new Uint8Array(createHash('sha512').update(privateKey.subarray(0, 32)).digest());
  const out = h.slice(0, 32);
  out[0] = (out[0] ?? 0) & 248;
  out[31] = ((out[31] ?? 0) & 127) | 64;
  return out;
}

function modPow(base: bigint, exp: bigint): bigint {
  let result = 1n;
  let b = base % P;
  let e = exp;
  while (e > 0n) {
    if (e & 1n) result = (result * b) % P;
    b = (b * b) % P;
    e >>= 1n;
  }
  return result;
}

/**
 * Curve25519 (Montgomery u) public key of an Ed25519 public key: u = (1 + y) / (1 - y) mod p
 * (extra25519 `PublicKeyToCurve25519`). The point must decode, as in e4go.
 * @throws E4Error `InvalidKey` when the bytes are not a valid Ed25519 point
 */
export function ed25519PublicToCurve25519(pub: Uint8Array): Uint8Array {
  ed25519PublicKeyObject(pub); // checks the length only: node:crypto does not decode the point
  let y = 0n;
  for (let i = 31; i >= 0; i--) y = (y << 8n) | BigInt(pub[i] ?? 0);
  y &= (1n << 255n) - 1n; // drop the sign bit of x
  y %= P; // a non-canonical y (p <= y < 2^255) is read modulo p, as extra25519 does
  // The point decodes only when x^2 = (y^2 - 1) / (d y^2 + 1) is a square (extra25519 FromBytes).
  const y2 = (y * y) % P;
  const x2 = (((y2 - 1n + P) % P) * modPow((ED25519_D * y2 + 1n) % P, P - 2n)) % P;
  if (x2 !== 0n && modPow(x2, (P - 1n) / 2n) !== 1n) {
    throw new E4Error(E4ErrorCode.InvalidKey, 'invalid Ed25519 public key, not a curve point');
  }
  const denominator = (1n - y + P) % P;
  if (denominator === 0n) throw new E4Error(E4ErrorCode.InvalidKey, 'invalid Ed25519 public key');
  let u = ((1n + y) * modPow(denominator, P - 2n)) % P;
  const out = new Uint8Array(32);
  for (let i = 0; i < 32; i++) {
    out[i] = Number(u & 0xffn);
    u >>= 8n;
  }
  return out;
}

/**
 * X25519 public key of a (clamped internally) 32-byte private scalar.
 * @throws E4Error `InvalidKey` when the key is not 32 bytes, `InvalidArgument` when it is not a
 *   `Uint8Array`
 */
export function x25519PublicKey(privateKey: Uint8Array): Uint8Array {
  return rawPublicKey(x25519PrivateKeyObject(privateKey));
}

function x25519PrivateKeyObject(privateKey: Uint8Array): KeyObject {
  requireBytes(privateKey, 'Curve25519 private key');
  if (privateKey.length !== 32) {
    throw new E4Error(E4ErrorCode.InvalidKey, 'invalid Curve25519 private key length');
  }
  return createPrivateKey({
    key: Buffer.concat([X25519_PKCS8, privateKey]),
    format: 'der',
    type: 'pkcs8',
  });
}

/**
 * X25519 shared secret.
 * @throws E4Error `InvalidKey` for a malformed key or a low-order point (all-zero output),
 *   `InvalidArgument` for a key that is not a `Uint8Array`
 */
export function x25519(privateKey: Uint8Array, publicKey: Uint8Array): Uint8Array {
  requireBytes(publicKey, 'Curve25519 public key');
  // Outside the try below: its cause would be node's TypeError, which quotes a string argument.
  const privateKeyObject = x25519PrivateKeyObject(privateKey);
  if (publicKey.length !== 32) {
    throw new E4Error(E4ErrorCode.InvalidKey, 'invalid Curve25519 public key length');
  }
  try {
    const pub = createPublicKey({
      key: Buffer.concat([X25519_SPKI, publicKey]),
      format: 'der',
      type: 'spki',
    });
    return new Uint8Array(diffieHellman({ privateKey: privateKeyObject, publicKey: pub }));
  } catch (cause) {
    if (E4Error.is(cause)) throw cause;
    throw new E4Error(E4ErrorCode.InvalidKey, 'X25519 failed: low-order or invalid public key', {
      cause,
    });
  }
}

/**
 * The PK-mode command key, seen from the C2:
 * `SHA3-256(X25519(c2Private, ed25519PublicToCurve25519(clientEdPublic)))`.
 * @throws E4Error `InvalidKey` when the device key is not an Ed25519 point, a key has the wrong
 *   length, or the X25519 output is all zeros (a low-order point)
 */
export function commandKeyForClient(
  c2PrivateKey: Uint8Array,
  clientEdPublic: Uint8Array,
): Uint8Array {
  return sha3256(x25519(c2PrivateKey, ed25519PublicToCurve25519(clientEdPublic)));
}

/**
 * The PK-mode command key, seen from the client:
 * `SHA3-256(X25519(ed25519PrivateToCurve25519(clientEdPrivate), c2Public))`.
 * @throws E4Error `InvalidKey` when a key has the wrong length or the C2 key is a low-order point
 */
export function commandKeyFromClient(
  clientEdPrivate: Uint8Array,
  c2PublicKey: Uint8Array,
): Uint8Array {
  return sha3256(x25519(ed25519PrivateToCurve25519(clientEdPrivate), c2PublicKey));
}
