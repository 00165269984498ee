/** Key generation and password-based derivation (e4go `crypto/crypto.go`). */
import { randomBytes } from 'node:crypto';
import { argon2i } from './argon2i.ts';
import { requireBytes } from './arguments.ts';
import { isAllZero } from './bytes.ts';
import { ID_LEN, KEY_LEN, PASSWORD_MIN_BYTES } from './constants.ts';
import { ed25519KeyFromSeed, x25519PublicKey } from './curve.ts';
import { E4Error, E4ErrorCode } from './errors.ts';
import { decodeUtf8Strict } from './validate.ts';

/** e4go's Argon2i parameters: `argon2.Key(password, nil, 1, 64*1024, 4, 32)`. */
export const PASSWORD_KDF_PARAMS = {
  timeCost: 1,
  memoryKiB: 64 * 1024,
  parallelism: 4,
  outputLength: KEY_LEN,
} as const;

const utf8 = new TextEncoder();

/** Random bytes that are never all zeros (the reference rejects all-zero keys). */
function randomNonZero(length: number): Uint8Array {
  for (;;) {
    const bytes = new Uint8Array(randomBytes(length));
    if (!isAllZero(bytes)) return bytes;
  }
}

/** A random 32-byte symmetric key (client key or topic key). */
export function randomSymKey(): Uint8Array {
  return randomNonZero(KEY_LEN);
}

/** A random 16-byte client id (for clients created without a name). */
export function randomId(): Uint8Array {
  return randomNonZero(ID_LEN);
}

/** A random Ed25519 key in Go format `seed || public`. */
export function randomEd25519Key(): Uint8Array {
  return ed25519KeyFromSeed(randomNonZero(32));
}

/** A random C2 (Curve25519) key pair, private key unclamped as in the reference C2. */
export function randomCurve25519KeyPair(): { privateKey: Uint8Array; publicKey: Uint8Array } {
  const privateKey = randomNonZero(32);
  return { privateKey, publicKey: x25519PublicKey(privateKey) };
}

function passwordBytes(password: string | Uint8Array): Uint8Array {
  if (typeof password !== 'string') requireBytes(password, 'password');
  const valid =
    typeof password === 'string'
      ? password.isWellFormed()
      : decodeUtf8Strict(password) !== undefined;
  if (!valid) throw invalidPassword('password is not a valid UTF-8 string');
  const bytes = typeof password === 'string' ? utf8.encode(password) : password;
  // Go counts `len(password)`: bytes, not characters.
  if (bytes.length < PASSWORD_MIN_BYTES)
    throw invalidPassword('password must be at least 16 characters');
  return bytes;
}

function invalidPassword(reason: string): E4Error {
  return new E4Error(E4ErrorCode.InvalidPassword, `invalid password: ${reason}`);
}

/**
 * The symmetric key of a password: Argon2i v0x13, empty salt, t=1, 64 MiB, p=4, 32 bytes
 * (e4go `DeriveSymKey`). Takes about a second and 64 MiB of memory.
 * @throws E4Error `InvalidPassword` for fewer than 16 UTF-8 bytes or invalid UTF-8
 */
export function deriveSymKey(password: string | Uint8Array): Uint8Array {
  return argon2i(passwordBytes(password), new Uint8Array(0), PASSWORD_KDF_PARAMS);
}

/**
 * The Ed25519 key of a password, Go format `seed || public`, where the seed is
 * {@link deriveSymKey} of the password (e4go `Ed25519PrivateKeyFromPassword`).
 * @throws E4Error `InvalidPassword`
 */
export function ed25519KeyFromPassword(password: string | Uint8Array): Uint8Array {
  return ed25519KeyFromSeed(deriveSymKey(password));
}
