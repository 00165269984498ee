/** Derivation of a KEK from an operator passphrase. */
import { randomBytes, scrypt, type ScryptOptions } from 'node:crypto';
import { C2Error } from '../errors.ts';

/** Shortest passphrase accepted, in UTF-8 bytes (the floor E4 uses for passwords). */
export const MIN_PASSPHRASE_BYTES = 16;
/** Shortest salt accepted; {@link newSalt} makes this many. */
export const SALT_BYTES = 16;

/**
 * scrypt N=2^15, r=8, p=1: the interactive-login cost of the scrypt paper's successors (about
 * 32 MiB and 0.1 s), paid once per process start. maxmem is raised because Node's default
 * (32 MiB) is exactly the 128·N·r this needs, with no headroom.
 */
const SCRYPT: ScryptOptions = { N: 2 ** 15, r: 8, p: 1, maxmem: 64 * 1024 * 1024 };

/** 16 random bytes, to store (for example in the database) and pass to {@link deriveKek}. */
export function newSalt(): Uint8Array {
  return new Uint8Array(randomBytes(SALT_BYTES));
}

/**
 * A 32-byte KEK from `passphrase` and `salt` via scrypt. The salt makes two deployments with the
 * same passphrase get different KEKs and defeats precomputed tables.
 * @throws C2Error `C2_KEY_VAULT` for a passphrase under 16 bytes or a salt under 16 bytes
 */
export async function deriveKek(
  passphrase: string | Uint8Array,
  salt: Uint8Array,
): Promise<Uint8Array> {
  const secret = typeof passphrase === 'string' ? Buffer.from(passphrase, 'utf8') : passphrase;
  if (secret.length < MIN_PASSPHRASE_BYTES) {
    throw new C2Error(
      'C2_KEY_VAULT',
      `KEK passphrase must be at least ${MIN_PASSPHRASE_BYTES} bytes`,
    );
  }
  if (salt.length < SALT_BYTES) {
    throw new C2Error('C2_KEY_VAULT', `KEK salt must be at least ${SALT_BYTES} bytes`);
  }
  return new Promise((resolve, reject) => {
    scrypt(secret, salt, 32, SCRYPT, (err, key) => {
      if (err === null) resolve(new Uint8Array(key));
      else reject(new C2Error('C2_KEY_VAULT', 'KEK derivation failed', { cause: err }));
    });
  });
}
