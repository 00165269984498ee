/** Input validation with the reference's rules and messages (e4go `crypto/validators.go`). */
import { requireBytes, requireString } from './arguments.ts';
import { isAllZero } from './bytes.ts';
import {
  CURVE25519_LEN,
  ED25519_PRIV_LEN,
  ED25519_PUB_LEN,
  ID_LEN,
  KEY_LEN,
  NAME_MAX_BYTES,
  NAME_MIN_BYTES,
  TOPIC_MAX_BYTES,
} from './constants.ts';
import { E4Error, E4ErrorCode } from './errors.ts';

const strictUtf8 = new TextDecoder('utf-8', { fatal: true });
const utf8 = new TextEncoder();
const NOT_UTF8 = 'name is not a valid UTF-8 string';

function invalidKey(message: string): E4Error {
  return new E4Error(E4ErrorCode.InvalidKey, message);
}

/** A symmetric key: exactly 32 bytes, not all zeros. @throws E4Error `InvalidKey` */
export function validateSymKey(key: Uint8Array): void {
  requireBytes(key, 'key');
  if (key.length !== KEY_LEN) {
    throw invalidKey(`invalid symmetric key length, got ${key.length}, expected ${KEY_LEN}`);
  }
  if (isAllZero(key)) throw invalidKey('invalid symmetric key, all zeros');
}

/** An Ed25519 private key in Go format (seed || public), not all zeros. @throws E4Error `InvalidKey` */
export function validateEd25519PrivKey(key: Uint8Array): void {
  requireBytes(key, 'private key');
  if (key.length !== ED25519_PRIV_LEN) {
    throw invalidKey(`invalid private key length, got ${key.length}, expected ${ED25519_PRIV_LEN}`);
  }
  if (isAllZero(key)) throw invalidKey('invalid private key, all zeros');
}

/** An Ed25519 public key: 32 bytes, not all zeros. @throws E4Error `InvalidKey` */
export function validateEd25519PubKey(key: Uint8Array): void {
  requireBytes(key, 'public key');
  if (key.length !== ED25519_PUB_LEN) {
    throw invalidKey(`invalid public key length, got ${key.length}, expected ${ED25519_PUB_LEN}`);
  }
  if (isAllZero(key)) throw invalidKey('invalid public key, all zeros');
}

/** A Curve25519 public key (the C2 key): 32 bytes, not all zeros. @throws E4Error `InvalidKey` */
export function validateCurve25519PubKey(key: Uint8Array): void {
  requireBytes(key, 'public key');
  if (key.length !== CURVE25519_LEN) {
    throw invalidKey(`invalid public key length, got ${key.length}, expected ${CURVE25519_LEN}`);
  }
  if (isAllZero(key)) throw invalidKey('invalid public key, all zeros');
}

/** A 16-byte client id. @throws E4Error `InvalidID` */
export function validateId(id: Uint8Array): void {
  requireBytes(id, 'client id');
  if (id.length !== ID_LEN) {
    throw new E4Error(
      E4ErrorCode.InvalidID,
      `invalid client ID: invalid ID length, got ${id.length}, expected ${ID_LEN}`,
    );
  }
}

/** A 16-byte topic hash. @throws E4Error `InvalidTopic` */
export function validateTopicHash(hash: Uint8Array): void {
  requireBytes(hash, 'topic hash');
  if (hash.length !== ID_LEN) {
    throw new E4Error(
      E4ErrorCode.InvalidTopic,
      `invalid topic hash: invalid Topic Hash length, got ${hash.length}, expected ${ID_LEN}`,
    );
  }
}

/**
 * A client name: 1..255 bytes of valid UTF-8 (e4go `ValidateName`).
 * @throws E4Error `InvalidName`; `InvalidArgument` for neither a string nor a `Uint8Array`
 */
export function validateName(name: string | Uint8Array): void {
  let bytes: Uint8Array;
  if (typeof name === 'string') {
    if (!name.isWellFormed()) throw new E4Error(E4ErrorCode.InvalidName, NOT_UTF8);
    bytes = utf8.encode(name);
  } else {
    requireBytes(name, 'name');
    bytes = name;
    try {
      strictUtf8.decode(bytes);
    } catch {
      throw new E4Error(E4ErrorCode.InvalidName, NOT_UTF8);
    }
  }
  if (bytes.length < NAME_MIN_BYTES || bytes.length > NAME_MAX_BYTES) {
    throw new E4Error(
      E4ErrorCode.InvalidName,
      'name length is invalid, names are between 1 and 255 characters',
    );
  }
}

/**
 * A topic: 1..512 bytes (e4go `ValidateTopic`) of well-formed Unicode. MQTT wildcards are the
 * C2's concern, not the protocol's.
 * @throws E4Error `InvalidTopic`; `InvalidArgument` when `topic` is not a string
 */
export function validateTopic(topic: string): void {
  checkTopicText(topic);
  const length = utf8.encode(topic).length;
  if (length === 0) throw new E4Error(E4ErrorCode.InvalidTopic, 'topic cannot be empty');
  if (length > TOPIC_MAX_BYTES) {
    throw new E4Error(
      E4ErrorCode.InvalidTopic,
      `topic too long, expected ${TOPIC_MAX_BYTES} chars maximum, got ${length}`,
    );
  }
}

/**
 * A topic string that has a UTF-8 form: a lone surrogate would be encoded as U+FFFD, so that
 * `a/\uD800`, `a/\uDC00` and `a/\uFFFD` would share one topic hash and one key.
 * @throws E4Error `InvalidTopic`; `InvalidArgument` when `topic` is not a string
 */
export function checkTopicText(topic: string): void {
  requireString(topic, 'topic');
  if (!topic.isWellFormed()) {
    throw new E4Error(E4ErrorCode.InvalidTopic, 'topic is not a valid UTF-8 string');
  }
}

/** Decodes strict UTF-8, or returns `undefined` when the bytes are not valid UTF-8. */
export function decodeUtf8Strict(bytes: Uint8Array): string | undefined {
  try {
    return strictUtf8.decode(bytes);
  } catch {
    return undefined;
  }
}
