/**
 * Classifies one message seen on a protected topic, without keeping its content: which key
 * version authenticates it, whether its timestamp is in the devices' window, or why it is not a
 * valid E4 message. This is how the C2 learns which key versions devices really use, and spots
 * plaintext, forged or replayed traffic (DESIGN §2, monitoring).
 */
import {
  E4Error,
  ID_LEN,
  readInt64LE,
  SK_OVERHEAD,
  TIMESTAMP_LEN,
  toHex,
  unprotectPubKey,
  unprotectSymKey,
  validateTimestamp,
  type AesSivKey,
  type Clock,
  type PubKeyLookup,
} from '../../e4/index.ts';

/** The classes of monitored traffic: a bounded set (they are metric label values). */
export const TRAFFIC_CLASSES = [
  /** Authentic under the topic's current key, timestamp in the window. */
  'current',
  /** Authentic under an older key version: the sender has not applied the rotation. */
  'previous_key',
  /** Authentic, but its timestamp is older than 10 minutes or in the future (replay, skew). */
  'stale',
  /** Shaped like an E4 message, but no key of the topic (or no known signer) authenticates it. */
  'forged',
  /** Not an E4 message at all: too short, or readable text. */
  'unencrypted',
] as const;

/** One traffic class. */
export type TrafficClass = (typeof TRAFFIC_CLASSES)[number];

/** A key version of the topic, newest first in {@link ClassifyInput.keys}. */
export interface MonitoredKey {
  readonly version: number;
  readonly key: AesSivKey;
}

/** What {@link classifyMessage} needs. */
export interface ClassifyInput {
  readonly payload: Uint8Array;
  /** The topic's key versions, newest (current) first. */
  readonly keys: readonly MonitoredKey[];
  /** Public-key mode: messages are signed; the sender's key is looked up by its id. */
  readonly lookupPubKey?: PubKeyLookup;
  readonly now: Clock;
}

/** The verdict on one message. */
export interface Classification {
  readonly class: TrafficClass;
  /** The key version that authenticated it (`current`, `previous_key`, `stale`). */
  readonly keyVersion?: number;
  /** Public-key mode: the signer's id (hex) of an authentic message. */
  readonly senderId?: string;
}

const decoder = new TextDecoder('utf-8', { fatal: true });

/** Readable text (UTF-8 without control characters other than whitespace): plaintext. */
function looksLikeText(payload: Uint8Array): boolean {
  let text: string;
  try {
    text = decoder.decode(payload);
  } catch {
    return false;
  }
  // eslint-disable-next-line no-control-regex -- control characters are what make it binary
  return !/[\u0000-\u0008\u000e-\u001f\u007f]/.test(text);
}

/** A clock frozen at the message's own timestamp: authenticity is checked apart from freshness. */
function atMessageTime(payload: Uint8Array): Clock {
  const ts = Number(readInt64LE(payload.subarray(0, TIMESTAMP_LEN)));
  return () => ts * 1000;
}

/**
 * Classifies `payload`. Never throws for any input: a monitor must survive whatever devices
 * (or attackers) publish.
 */
export function classifyMessage(input: ClassifyInput): Classification {
  const { payload, keys, lookupPubKey } = input;
  const minimum = lookupPubKey === undefined ? SK_OVERHEAD + 1 : SK_OVERHEAD + ID_LEN + 64;
  if (payload.length < minimum) return { class: 'unencrypted' };
  const messageTime = atMessageTime(payload);
  for (const [index, { version, key }] of keys.entries()) {
    try {
      if (lookupPubKey === undefined) unprotectSymKey(payload, key, messageTime);
      else unprotectPubKey(payload, key, lookupPubKey, messageTime);
    } catch (err) {
      if (E4Error.is(err) && err.code === 'NotAuthentic') continue;
      // A bad or unknown signature does not depend on the topic key: no other key will do.
      break;
    }
    const senderId =
      lookupPubKey === undefined
        ? undefined
        : toHex(payload.subarray(TIMESTAMP_LEN, TIMESTAMP_LEN + ID_LEN));
    const found = { keyVersion: version, ...(senderId === undefined ? {} : { senderId }) };
    try {
      validateTimestamp(readInt64LE(payload.subarray(0, TIMESTAMP_LEN)), input.now);
    } catch {
      return { class: 'stale', ...found };
    }
    return { class: index === 0 ? 'current' : 'previous_key', ...found };
  }
  return { class: looksLikeText(payload) ? 'unencrypted' : 'forged' };
}
