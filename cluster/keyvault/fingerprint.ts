/** Public identifiers of keys. */
import { createHash } from 'node:crypto';

const FINGERPRINT_DOMAIN = Buffer.from('e4c2-fingerprint-v1', 'utf8');

/**
 * First 16 hex characters (64 bits) of SHA-256(`'e4c2-fingerprint-v1'` || key): names a key in
 * APIs, logs and the chaos checker without revealing anything about it. The domain prefix keeps
 * it unrelated to any other hash of the key (E4 ids, for one, are SHA-3 based).
 */
export function keyFingerprint(key: Uint8Array): string {
  return createHash('sha256').update(FINGERPRINT_DOMAIN).update(key).digest('hex').slice(0, 16);
}
