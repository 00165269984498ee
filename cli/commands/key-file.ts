/**
 * Device key files, read the same way by every verb that takes one (`client create --key`,
 * `client rotate --public-key`): the accepted forms, the checks and the error messages live here
 * only, so the verbs cannot drift apart.
 */
import {
  E4Error,
  ed25519PublicKey,
  ed25519SigningKey,
  validateEd25519PubKey,
  validateSymKey,
} from '../../e4/index.ts';
import { CliError } from '../errors.ts';

/** The bytes of an Ed25519 public key and of a Go-format private key (seed || public). */
const ED25519_PUBLIC = 32;
const ED25519_PRIVATE = 64;

/**
 * Runs an e4/ validation or derivation; its E4Error becomes a local input error (exit 2) whose
 * message starts with `what` once (the library's messages often start with the same words).
 * @throws CliError exit 2
 */
export function locally<T>(what: string, fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    if (err instanceof E4Error) {
      const message = err.message.startsWith(what) ? err.message : `${what}: ${err.message}`;
      throw CliError.input(message, { cause: err });
    }
    throw err;
  }
}

/**
 * Key bytes from a key file: raw bytes as the reference CLI reads them, or (our extension) the
 * same bytes written as hex text, with surrounding white space ignored. Hex text of an expected
 * length wins over raw bytes of another: 64 hex digits without a newline are also 64 bytes, a
 * private key's length in public-key mode (random key bytes are all hex digits with a
 * probability of about 2^-226).
 * @throws CliError exit 2 for text of a hex key's length that is not hex
 */
function keyBytes(file: Uint8Array, expectedLengths: readonly number[]): Uint8Array {
  const text = Buffer.from(file).toString('latin1').trim();
  const hex = /^(?:[0-9a-fA-F]{2})+$/.test(text);
  if (hex && expectedLengths.includes(text.length / 2))
    return new Uint8Array(Buffer.from(text, 'hex'));
  if (expectedLengths.includes(file.length)) return file;
  if (expectedLengths.includes(text.length / 2)) {
    // As long as a hex key, but not hex: "wrong length" would mislead.
    throw CliError.input(
      `the key file holds ${text.length} characters, as a key of ${text.length / 2} bytes in hex would, but not only hex digits`,
    );
  }
  return file;
}

/**
 * The symmetric key of a key file: 32 bytes, raw or as hex.
 * @throws CliError exit 2 (`invalid key: ...`)
 */
export function symKeyFromFile(file: Uint8Array): Uint8Array {
  const key = keyBytes(file, [32]);
  locally('invalid key', () => {
    validateSymKey(key);
  });
  return key;
}

/**
 * The Ed25519 public key of a public-key mode key file: the 32-byte public key, or a 64-byte
 * Go-format private key (checked for consistency; only its public half is returned), each raw
 * or as hex.
 * @throws CliError exit 2 (`invalid key: ...`)
 */
export function ed25519PublicKeyFromFile(file: Uint8Array): Uint8Array {
  const key = keyBytes(file, [ED25519_PUBLIC, ED25519_PRIVATE]);
  if (key.length !== ED25519_PUBLIC && key.length !== ED25519_PRIVATE) {
    // The library would say "expected 32" only, hiding the private key form.
    throw CliError.input(
      `invalid key: the key file holds ${key.length} bytes; a public-key mode key file holds ` +
        `the Ed25519 public key (${ED25519_PUBLIC} bytes) or a private key (${ED25519_PRIVATE} bytes), raw or as hex`,
    );
  }
  let publicKey = key;
  if (key.length === ED25519_PRIVATE) {
    // A Go-format private key: check it is consistent, then use only its public half.
    locally('invalid key', () => ed25519SigningKey(key));
    publicKey = ed25519PublicKey(key);
  }
  locally('invalid key', () => {
    validateEd25519PubKey(publicKey);
  });
  return publicKey;
}
