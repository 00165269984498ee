/**
 * Which topics the proxy protects. A topic matching a `protect` pattern is always protected
 * (plaintext never leaves or enters on it); E4 control topics are the proxy's alone; any other
 * topic is forwarded as is or dropped, as configured.
 */
import { E4Error, E4ErrorCode } from '../e4/index.ts';
import type { OtherTopics } from './config.ts';
import { isControlTopic, topicMatches } from './topic-filter.ts';

/** What to do with a message on a topic. */
export type TopicAction = 'protect' | 'forward' | 'drop' | 'control';

/** Why a message was dropped (the `reason` label of the metrics). */
export type DropReason =
  /** Plaintext (or garbage) on a protected topic. */
  | 'plaintext'
  /** Authentication failed: wrong key, forged or corrupted. */
  | 'not-authentic'
  /** Timestamp outside the acceptance window (replay or a clock problem). */
  | 'stale'
  /** The identity holds no key for the protected topic. */
  | 'no-key'
  /** The topic matches no pattern and the policy drops other topics. */
  | 'unknown-topic'
  /** An E4 control topic: commands are the proxy's, never a device's. */
  | 'control-topic'
  /** The payload exceeds `policy.maxPayloadBytes`. */
  | 'oversized'
  /** The upstream broker refused or lost the message. */
  | 'upstream-error';

/** Seconds beyond which a timestamp cannot be a protected message's (one year). */
const PLAUSIBLE_SKEW_SECONDS = 365 * 24 * 3600;

/** The topic policy. */
export class TopicPolicy {
  constructor(
    readonly protect: readonly string[],
    readonly otherTopics: OtherTopics,
  ) {}

  /** The action for `topic`. */
  classify(topic: string): TopicAction {
    if (isControlTopic(topic)) return 'control';
    if (this.protect.some((p) => topicMatches(p, topic))) return 'protect';
    return this.otherTopics === 'forward' ? 'forward' : 'drop';
  }
}

/**
 * The drop reason for an unprotect failure. A message whose leading 8 bytes are no plausible
 * timestamp (more than a year off the clock) was never protected: plaintext, not stale.
 */
export function unprotectDropReason(err: unknown, payload: Uint8Array, nowMs: number): DropReason {
  if (!(err instanceof E4Error)) return 'not-authentic';
  switch (err.code) {
    case E4ErrorCode.TopicKeyNotFound:
      return 'no-key';
    case E4ErrorCode.TooShortCiphertext:
    case E4ErrorCode.InvalidProtectedLen:
      return 'plaintext';
    case E4ErrorCode.TimestampTooOld:
    case E4ErrorCode.TimestampInFuture: {
      if (payload.length < 8) return 'plaintext';
      const ts = Number(Buffer.from(payload.buffer, payload.byteOffset, 8).readBigInt64LE(0));
      return Math.abs(ts - nowMs / 1000) > PLAUSIBLE_SKEW_SECONDS ? 'plaintext' : 'stale';
    }
    default:
      return 'not-authentic';
  }
}

/** The key a message that cannot be unprotected yet may be waiting for (rotation-hold.ts). */
export type AwaitedKey =
  /** Its topic key: a rotation's new key, or the topic's first (SetTopicKey). */
  | 'topic'
  /** Its sender's public key, in public-key mode (SetPubKey): a new device. */
  | 'sender';

/**
 * The key an unprotect failure may be waiting for: `topic` when the message is not authentic
 * under any key held for its topic, or no key is held for it yet; `sender` when its sender's
 * public key is not held; undefined when no key can help (stale, plaintext, a bad signature).
 */
export function awaitedKey(err: unknown): AwaitedKey | undefined {
  if (!(err instanceof E4Error)) return undefined;
  switch (err.code) {
    case E4ErrorCode.NotAuthentic:
    case E4ErrorCode.TopicKeyNotFound:
      return 'topic';
    case E4ErrorCode.PubKeyNotFound:
      return 'sender';
    default:
      return undefined;
  }
}
