/** Identities and hashes: SHA3-256 truncated to 16 bytes (e4go `crypto/hash.go`). */
import { hash } from 'node:crypto';
import { requireBytes } from './arguments.ts';
import { toHex } from './bytes.ts';
import { CONTROL_TOPIC_PREFIX, HASH_LEN } from './constants.ts';
import { validateId } from './validate.ts';

const utf8 = new TextEncoder();

/**
 * Full 32-byte SHA3-256 (FIPS 202, not Keccak-256).
 * @throws E4Error `InvalidArgument` when `data` is not a `Uint8Array` (node:crypto would hash a
 *   string as its UTF-8 bytes, or throw a bare TypeError)
 */
export function sha3256(data: Uint8Array): Uint8Array {
  requireBytes(data, 'data');
  // The one-shot digest (no Hash object: about a third cheaper for a command id). Its output
  // has a buffer of its own, not a slice of Node's shared pool, so the view can be kept and
  // wiped like a copy.
  const digest = hash('sha3-256', data, 'buffer');
  return new Uint8Array(digest.buffer, digest.byteOffset, digest.byteLength);
}

function truncatedHash(data: Uint8Array): Uint8Array {
  return sha3256(data).subarray(0, HASH_LEN);
}

function asBytes(value: string | Uint8Array, what: string): Uint8Array {
  if (typeof value === 'string') return utf8.encode(value);
  // node:crypto would throw a bare TypeError, or hash a DataView or other view it accepts.
  requireBytes(value, what);
  return value;
}

/**
 * The 16-byte client id of a name: `SHA3-256(utf8(name))[0:16]` (e4go `HashIDAlias`).
 * Whether the name is acceptable is {@link validateName}'s job.
 * @throws E4Error `InvalidArgument` for a value that is neither a string nor a `Uint8Array`
 */
export function clientIdFromName(name: string | Uint8Array): Uint8Array {
  return truncatedHash(asBytes(name, 'name'));
}

/**
 * The 16-byte hash of a topic: `SHA3-256(utf8(topic))[0:16]` (e4go `HashTopic`).
 * @throws E4Error `InvalidArgument` for a value that is neither a string nor a `Uint8Array`
 */
export function topicHash(topic: string | Uint8Array): Uint8Array {
  return truncatedHash(asBytes(topic, 'topic'));
}

/**
 * Where e4go keeps the previous key of a topic after a key change: the hash of the raw
 * 16-byte topic hash (`HashTopic(string(topicHash))`).
 * @throws E4Error `InvalidArgument` when `hashOfTopic` is not a `Uint8Array`
 */
export function transitionSlotHash(hashOfTopic: Uint8Array): Uint8Array {
  return truncatedHash(hashOfTopic);
}

/**
 * The control topic on which the C2 sends commands to a client: `"e4/" + hex(id)`.
 * Ids are 16 bytes in both modes here (docs/protocol.md, decision 4): any other length would name
 * a topic no client of this library listens on. e4go's `TopicForID` takes any length.
 * @throws E4Error `InvalidID` when the id is not 16 bytes, `InvalidArgument` when it is not a
 *   `Uint8Array`
 */
export function controlTopic(clientId: Uint8Array): string {
  validateId(clientId);
  return CONTROL_TOPIC_PREFIX + toHex(clientId);
}
