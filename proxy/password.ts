/** Downstream device passwords: scrypt hashes in the configuration, never the passwords. */
import { randomBytes, scrypt, scryptSync, timingSafeEqual } from 'node:crypto';

const KEY_LEN = 32;

/** Hashes a password as `scrypt$<salt hex>$<hash hex>` (for `devices[].passwordHash`). */
export function hashPassword(password: string): string {
  const salt = randomBytes(16);
  return `scrypt$${salt.toString('hex')}$${scryptSync(password, salt, KEY_LEN).toString('hex')}`;
}

/**
 * Checks a password against a hash of {@link hashPassword}, in constant time and off the event
 * loop (scrypt takes tens of milliseconds on purpose).
 */
export async function verifyPassword(
  password: Uint8Array | string,
  encoded: string,
): Promise<boolean> {
  const [scheme, saltHex, hashHex] = encoded.split('$');
  if (scheme !== 'scrypt' || saltHex === undefined || hashHex === undefined) return false;
  const expected = Buffer.from(hashHex, 'hex');
  if (expected.length !== KEY_LEN) return false;
  const actual = await new Promise<Buffer>((resolve, reject) => {
    scrypt(password, Buffer.from(saltHex, 'hex'), KEY_LEN, (err, key) => {
      if (err === null) resolve(key);
      else reject(err);
    });
  });
  return timingSafeEqual(actual, expected);
}
