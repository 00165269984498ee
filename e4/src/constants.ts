/** Protocol constants (e4go `crypto/const.go`, libe4 `include/e4/proto.h`). */

/** Length of a client id in bytes. */
export const ID_LEN = 16;
/** Length of a symmetric key (client key, topic key, PK command key) in bytes. */
export const KEY_LEN = 32;
/** Length of the AES-SIV synthetic IV (tag) in bytes. */
export const TAG_LEN = 16;
/** Length of a topic hash in bytes. */
export const HASH_LEN = 16;
/** Length of the timestamp that prefixes every protected message. */
export const TIMESTAMP_LEN = 8;
/** Ed25519 public key length. */
export const ED25519_PUB_LEN = 32;
/** Ed25519 private key length in the Go format `seed(32) || public(32)`. */
export const ED25519_PRIV_LEN = 64;
/** Ed25519 signature length. */
export const ED25519_SIG_LEN = 64;
/** Curve25519 (X25519) key length. */
export const CURVE25519_LEN = 32;
/** Oldest accepted message age, in seconds (e4go `MaxDelayDuration`). */
export const MAX_DELAY_SECONDS = 600;
/** How long a replaced topic key stays usable, in seconds (e4go `MaxDelayKeyTransition`). */
export const MAX_KEY_TRANSITION_SECONDS = 3600;
/** Shortest password, counted in UTF-8 bytes as Go's `len` does. */
export const PASSWORD_MIN_BYTES = 16;
/** Client names are 1..255 bytes of UTF-8. */
export const NAME_MIN_BYTES = 1;
/** Client names are 1..255 bytes of UTF-8. */
export const NAME_MAX_BYTES = 255;
/** Topics are 1..512 bytes (e4go `ValidateTopic`). */
export const TOPIC_MAX_BYTES = 512;
/**
 * Largest payload or protected message: MQTT's largest packet (268,435,455 bytes of remaining
 * length), which no E4 message over MQTT can exceed.
 */
export const MESSAGE_MAX_BYTES = 268_435_455;
/** Prefix of every client's control topic. */
export const CONTROL_TOPIC_PREFIX = 'e4/';
/** Overhead of an SK-mode message: timestamp and tag. */
export const SK_OVERHEAD = TIMESTAMP_LEN + TAG_LEN;
/** Overhead of a PK-mode message: timestamp, signer id, tag and signature. */
export const PK_OVERHEAD = TIMESTAMP_LEN + ID_LEN + TAG_LEN + ED25519_SIG_LEN;
