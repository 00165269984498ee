/**
 * The rotation hold: closes most of the gap of a topic key rotation, and the like gaps of a
 * topic's first key and, in public-key mode, of a new sender's public key.
 *
 * The C2 delivers a topic's new key to each member on its own, so a message protected under the
 * new key (by a member that got it first) can reach this proxy before its own SetTopicKey does.
 * Such a message fails authentication under every key the proxy holds for the topic. Instead of
 * dropping it at once, a connection holds it here, in memory only, for a short bounded time
 * (`policy.rotationHold.ms`), and tries it again when a SetTopicKey for its topic is applied to
 * the connection's identity: it is then delivered, in arrival order with the topic's other held
 * messages, once. When the time or a cap runs out it is dropped as before (`not-authentic`).
 *
 * A held message has been acknowledged to the broker: the upstream session hands the next
 * message over only once the current one is acknowledged, so keeping it unacknowledged would
 * stall every other topic of the device for the whole hold. So it is lost, as it was before the
 * hold, when the connection closes or the proxy stops first. Nothing here is written to disk or
 * logged but topics and counts.
 *
 * The same race, with the same caps: a message on a topic whose first key has not reached this
 * proxy yet (a new topic, or a new member: `no-key`), and in public-key mode a message from a
 * sender whose public key has not (a new device: PubKeyNotFound). Both are held until a
 * SetTopicKey of the topic, or any SetPubKey of the identity, and tried again then.
 */
import { toHex, topicHash } from '../e4/index.ts';
import type { ProxyMetrics } from './metrics.ts';
import type { InboundMessage } from './upstream.ts';

/** Limits of the hold (`policy.rotationHold`). */
export interface RotationHoldLimits {
  /** How long a message waits for its topic key, in milliseconds; 0 turns the hold off. */
  readonly ms: number;
  /** Messages held per topic and connection. */
  readonly messagesPerTopic: number;
  /** Payload bytes held per topic and connection. */
  readonly bytesPerTopic: number;
  /**
   * Messages held per connection, all topics together: below {@link messages}, so that one
   * device subscribed to many topics it cannot open (or flooded on them) cannot fill the hold
   * and leave every other device's messages to be dropped at once.
   */
  readonly messagesPerConnection: number;
  /** Payload bytes held per connection, all topics together: below {@link bytes}, as above. */
  readonly bytesPerConnection: number;
  /** Messages held by the whole proxy. */
  readonly messages: number;
  /** Payload bytes held by the whole proxy. */
  readonly bytes: number;
}

/** Defaults of `policy.rotationHold`. */
export const DEFAULT_ROTATION_HOLD: RotationHoldLimits = {
  ms: 5000,
  messagesPerTopic: 100,
  bytesPerTopic: 1024 * 1024,
  messagesPerConnection: 250,
  bytesPerConnection: 4 * 1024 * 1024,
  messages: 1000,
  bytes: 16 * 1024 * 1024,
};

/**
 * The per-connection caps when the configuration names none: a quarter of the totals, so that at
 * least four connections can hold messages at once whatever one of them receives.
 */
export function perConnectionDefaults(
  messages: number,
  bytes: number,
): Pick<RotationHoldLimits, 'messagesPerConnection' | 'bytesPerConnection'> {
  return {
    messagesPerConnection: Math.ceil(messages / 4),
    bytesPerConnection: Math.ceil(bytes / 4),
  };
}

/** What a retry did with a held message. */
export type RetryOutcome = 'delivered' | 'dropped' | 'keep';

interface Held {
  readonly message: InboundMessage;
  readonly timer: NodeJS.Timeout;
}

/** The held messages of the whole proxy: the total caps, and who waits for which identity's keys. */
export class RotationHold {
  #messages = 0;
  #bytes = 0;
  readonly #byIdentity = new Map<string, Set<HeldMessages>>();

  constructor(
    readonly limits: RotationHoldLimits,
    private readonly metrics: ProxyMetrics,
  ) {}

  /**
   * The held messages of one downstream connection of `identity`.
   * @param onExpired - a message whose hold time ran out (already removed): drop it
   * @param onKey - a SetTopicKey for `topic` arrived: retry its messages ({@link HeldMessages.retry})
   */
  connection(
    identity: string,
    onExpired: (message: InboundMessage) => void,
    onKey: (topic: string) => void,
  ): HeldMessages {
    return new HeldMessages(this, identity, onExpired, onKey);
  }

  /** A SetTopicKey was applied to `identity`: its connections retry that topic's messages. */
  keyArrived(identity: string, hash: Uint8Array): void {
    this.#retry(identity, toHex(hash));
  }

  /**
   * A SetPubKey was applied to `identity` (public-key mode): its connections retry every held
   * message, since any may come from that sender (what still lacks a key stays held).
   */
  pubKeyArrived(identity: string): void {
    this.#retry(identity, undefined);
  }

  #retry(identity: string, hashHex: string | undefined): void {
    const waiting = this.#byIdentity.get(identity);
    if (waiting === undefined) return;
    for (const held of [...waiting]) held.keyArrived(hashHex);
  }

  /** Takes room for `bytes` more (false when a total cap is reached). */
  reserve(bytes: number): boolean {
    if (this.#messages + 1 > this.limits.messages || this.#bytes + bytes > this.limits.bytes) {
      return false;
    }
    this.#messages++;
    this.#bytes += bytes;
    this.#gauges();
    return true;
  }

  /** Gives back the room of a message that left the hold, counted under `outcome`. */
  free(bytes: number, outcome: 'released' | 'expired' | 'dropped' | 'discarded'): void {
    this.#messages--;
    this.#bytes -= bytes;
    this.metrics.rotationHold.inc({ outcome });
    this.#gauges();
  }

  /** Counts a message that entered the hold, or was refused by a cap. */
  count(outcome: 'held' | 'full'): void {
    this.metrics.rotationHold.inc({ outcome });
  }

  /** Keeps `held` informed of its identity's keys while it holds something. */
  watch(identity: string, held: HeldMessages, watching: boolean): void {
    let set = this.#byIdentity.get(identity);
    if (watching) {
      if (set === undefined) this.#byIdentity.set(identity, (set = new Set()));
      set.add(held);
    } else if (set !== undefined) {
      set.delete(held);
      if (set.size === 0) this.#byIdentity.delete(identity);
    }
  }

  #gauges(): void {
    this.metrics.heldMessages.set(this.#messages);
    this.metrics.heldBytes.set(this.#bytes);
  }
}

/** One connection's held messages, by topic, in arrival order. */
export class HeldMessages {
  readonly #byTopic = new Map<string, Held[]>();
  /** Topic hashes (hex) of the held topics, to match a SetTopicKey's. */
  readonly #hashes = new Map<string, string>();
  /** Messages and payload bytes held by this connection, all topics together. */
  #messages = 0;
  #bytes = 0;
  #closed = false;

  constructor(
    private readonly shared: RotationHold,
    private readonly identity: string,
    private readonly onExpired: (message: InboundMessage) => void,
    private readonly onKey: (topic: string) => void,
  ) {}

  /**
   * Holds `message` (it cannot be unprotected with the keys held: its key may be on its way).
   * @returns false when it cannot be held (hold off, a cap reached, closed): drop it now
   */
  hold(message: InboundMessage): boolean {
    const { limits } = this.shared;
    if (this.#closed || limits.ms === 0) return false;
    const queue = this.#byTopic.get(message.topic) ?? [];
    const bytes = message.payload.length;
    const topicBytes = queue.reduce((sum, h) => sum + h.message.payload.length, 0);
    if (
      queue.length + 1 > limits.messagesPerTopic ||
      topicBytes + bytes > limits.bytesPerTopic ||
      this.#messages + 1 > limits.messagesPerConnection ||
      this.#bytes + bytes > limits.bytesPerConnection ||
      !this.shared.reserve(bytes)
    ) {
      this.shared.count('full');
      return false;
    }
    this.#messages++;
    this.#bytes += bytes;
    const timer = setTimeout(() => {
      if (this.#remove(message.topic, message)) {
        this.shared.free(bytes, 'expired');
        this.onExpired(message);
      }
    }, limits.ms);
    timer.unref();
    queue.push({ message, timer });
    if (queue.length === 1) {
      this.#byTopic.set(message.topic, queue);
      this.#hashes.set(message.topic, toHex(topicHash(message.topic)));
    }
    if (this.#byTopic.size === 1 && queue.length === 1) {
      this.shared.watch(this.identity, this, true);
    }
    this.shared.count('held');
    return true;
  }

  /**
   * Retries the held messages of `topic` in arrival order: `attempt` delivers or drops one
   * (`delivered`, `dropped`: it leaves the hold, never to be tried again) or leaves it held
   * (`keep`: still not authentic).
   */
  retry(topic: string, attempt: (message: InboundMessage) => RetryOutcome): void {
    const queue = this.#byTopic.get(topic);
    if (queue === undefined) return;
    for (const held of [...queue]) {
      // A delivery may close the connection (and this hold with it).
      if (this.#closed) return;
      const outcome = attempt(held.message);
      if (outcome === 'keep') continue;
      if (this.#remove(topic, held.message)) {
        clearTimeout(held.timer);
        this.shared.free(
          held.message.payload.length,
          outcome === 'delivered' ? 'released' : 'dropped',
        );
      }
    }
  }

  /**
   * A SetTopicKey (its topic hash in hex) arrived for this connection's identity; undefined: a
   * key that may open messages of any topic (a sender's public key).
   */
  keyArrived(hashHex: string | undefined): void {
    for (const [topic, hash] of [...this.#hashes]) {
      if (hashHex === undefined || hash === hashHex) this.onKey(topic);
    }
  }

  /**
   * Discards everything held (the connection closed); nothing is held afterwards.
   * @returns the messages discarded, to be counted as dropped
   */
  close(): InboundMessage[] {
    if (this.#closed) return [];
    this.#closed = true;
    const discarded: InboundMessage[] = [];
    for (const queue of this.#byTopic.values()) {
      for (const held of queue) {
        clearTimeout(held.timer);
        this.shared.free(held.message.payload.length, 'discarded');
        discarded.push(held.message);
      }
    }
    this.#byTopic.clear();
    this.#hashes.clear();
    this.#messages = 0;
    this.#bytes = 0;
    this.shared.watch(this.identity, this, false);
    return discarded;
  }

  /** Removes `message` from its topic's queue; false when it is no longer held. */
  #remove(topic: string, message: InboundMessage): boolean {
    const queue = this.#byTopic.get(topic);
    const index = queue?.findIndex((h) => h.message === message) ?? -1;
    if (queue === undefined || index < 0) return false;
    queue.splice(index, 1);
    this.#messages--;
    this.#bytes -= message.payload.length;
    if (queue.length === 0) {
      this.#byTopic.delete(topic);
      this.#hashes.delete(topic);
      if (this.#byTopic.size === 0) this.shared.watch(this.identity, this, false);
    }
    return true;
  }
}
