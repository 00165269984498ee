/**
 * The broker-to-client path of one downstream connection: the topic policy, unprotection of
 * protected topics, the rotation hold for messages whose key is on its way, delivery under the
 * connection's own packet identifiers, and the client's acknowledgements. The broker's message is
 * acknowledged upstream once the client acknowledged it, so QoS and order survive the proxy.
 */
import type { IPubrecPacket } from 'mqtt-packet';
import type { HeldIdentity } from '../key-ring.ts';
import { awaitedKey, unprotectDropReason, type AwaitedKey, type DropReason } from '../policy.ts';
import type { HeldMessages, RetryOutcome } from '../rotation-hold.ts';
import type { InboundMessage } from '../upstream.ts';
import { RC } from './reason-codes.ts';
import { dropped, isClosed, type ConnectionShared } from './shared.ts';

/** A message delivered to the client, awaiting its acknowledgement. */
interface Awaiting {
  kind: 'puback' | 'pubrec' | 'pubcomp';
  readonly done: () => void;
  readonly timer: NodeJS.Timeout;
}

/** Messages from the broker to one client. */
export class InboundPath {
  readonly #s: Readonly<ConnectionShared>;
  /**
   * Messages the broker delivered while the session was being opened (a persistent session's
   * queued messages come right after the upstream CONNACK): delivered after the downstream
   * CONNACK, in order. Unacknowledged upstream until then, so the broker sends nothing more.
   */
  readonly #early: Array<{ message: InboundMessage; done: () => void }> = [];
  /** Messages waiting for their topic key (made at the first one). */
  #held: HeldMessages | undefined;
  #nextId = 1;
  readonly #awaiting = new Map<number, Awaiting>();

  /** The path of the connection whose state is `shared`. */
  constructor(shared: Readonly<ConnectionShared>) {
    this.#s = shared;
  }

  /** A message from the broker: policy, unprotect, deliver; `done` acknowledges it upstream. */
  receive(message: InboundMessage, done: () => void): void {
    const s = this.#s;
    if (s.state === 'connecting') {
      // Handled once the client has its CONNACK; `done` waits, and so does the broker.
      this.#early.push({ message, done });
      return;
    }
    // Closed: left unacknowledged, so the broker keeps it for the client's next session.
    if (s.state !== 'open') return;
    const action = s.deps.policy.classify(message.topic);
    if (action === 'control' || action === 'drop') {
      dropped(
        s,
        'inbound',
        action === 'control' ? 'control-topic' : 'unknown-topic',
        message.topic,
      );
      done();
      return;
    }
    if (action === 'forward') {
      s.deps.metrics.forwarded.inc({ direction: 'inbound' });
      this.#deliver(message, message.payload, done);
      return;
    }
    const opened = this.#unprotect(message);
    if ('drop' in opened) {
      // Protected under a key this proxy does not hold yet (a rotation in flight, a topic's
      // first key, a new sender's public key): held for that key rather than dropped.
      // Acknowledged upstream now: the broker hands over the next message only then (see
      // rotation-hold.ts).
      if (opened.waitFor !== undefined && this.#holdForKey(message)) {
        done();
        return;
      }
      dropped(
        s,
        'inbound',
        opened.drop,
        message.topic,
        opened.waitFor === undefined ? '' : 'hold full',
      );
      done();
      return;
    }
    s.deps.metrics.unprotected.inc();
    this.#deliver(message, opened.payload, done);
  }

  /** Delivers, in order, the messages the broker sent before the client had its CONNACK. */
  deliverEarly(): void {
    for (const held of this.#early.splice(0)) {
      if (isClosed(this.#s)) break;
      this.receive(held.message, held.done);
    }
  }

  /** The client's PUBACK (QoS 1) or PUBCOMP (QoS 2) of message `messageId`. */
  settle(messageId: number | undefined, kind: 'puback' | 'pubcomp'): void {
    this.#settle(messageId, kind);
  }

  /** The client's PUBREC: answered with PUBREL, or the end of the message if it refused it. */
  pubrec(packet: IPubrecPacket): void {
    const id = packet.messageId ?? 0;
    const waiting = this.#awaiting.get(id);
    if (waiting?.kind === 'pubrec') {
      if ((packet.reasonCode ?? 0) >= 0x80) {
        this.#settle(id, 'pubrec');
        return;
      }
      waiting.kind = 'pubcomp';
      this.#s.send({ cmd: 'pubrel', messageId: id });
    }
  }

  /**
   * The connection closed. Unacknowledged messages stay unacknowledged upstream, so the broker
   * keeps them for the client's next session; held messages were acknowledged upstream, so they
   * end here (counted, one log line).
   */
  close(): void {
    const s = this.#s;
    for (const waiting of this.#awaiting.values()) clearTimeout(waiting.timer);
    this.#awaiting.clear();
    this.#early.length = 0;
    const discarded: Partial<Record<DropReason, number>> = {};
    for (const message of this.#held?.close() ?? []) {
      const { reason } = this.#heldDrop(message);
      s.deps.metrics.drop('inbound', reason);
      discarded[reason] = (discarded[reason] ?? 0) + 1;
    }
    if (Object.keys(discarded).length > 0) {
      s.deps.logger.warn(
        { clientId: s.clientId, identity: s.identity?.name, discarded },
        'held messages dropped: the connection closed before their key arrived',
      );
    }
  }

  /**
   * Unprotects a message on a protected topic: its payload, or why it is dropped and which key
   * may still be on its way (`waitFor`).
   */
  #unprotect(
    message: InboundMessage,
  ):
    | { readonly payload: Buffer }
    | { readonly drop: DropReason; readonly waitFor: AwaitedKey | undefined } {
    try {
      const opened = (this.#s.identity as HeldIdentity).client.unprotectMessage(
        message.payload,
        message.topic,
      );
      return { payload: Buffer.from(opened.buffer, opened.byteOffset, opened.length) };
    } catch (err) {
      return {
        drop: unprotectDropReason(err, message.payload, this.#s.deps.now()),
        waitFor: awaitedKey(err),
      };
    }
  }

  /**
   * Why a held message is dropped now, and which key it waited for (it may have moved on: a
   * message held for its topic key may wait for its sender's public key once that came).
   */
  #heldDrop(message: InboundMessage): { reason: DropReason; detail: string } {
    const opened = this.#unprotect(message);
    // Authentic now (a key came that no retry ran for: never expected): lost all the same, as
    // the hold's contract says.
    const [reason, waitFor] =
      'drop' in opened ? [opened.drop, opened.waitFor] : (['not-authentic', 'topic'] as const);
    return {
      reason,
      detail: `${waitFor === 'sender' ? "its sender's public key" : 'its topic key'} did not arrive`,
    };
  }

  #holdForKey(message: InboundMessage): boolean {
    const s = this.#s;
    this.#held ??= s.deps.hold.connection(
      (s.identity as HeldIdentity).name,
      (expired) => {
        const { reason, detail } = this.#heldDrop(expired);
        dropped(s, 'inbound', reason, expired.topic, `held ${s.deps.hold.limits.ms} ms, ${detail}`);
      },
      (topic) => {
        this.#retryHeld(topic);
      },
    );
    const held = this.#held.hold(message);
    if (held) {
      s.deps.logger.debug(
        { clientId: s.clientId, identity: s.identity?.name, topic: message.topic },
        'message held for its key',
      );
    }
    return held;
  }

  /**
   * A key that held messages of `topic` may wait for arrived (its SetTopicKey, or a sender's
   * SetPubKey): delivers those that are now authentic.
   */
  #retryHeld(topic: string): void {
    const s = this.#s;
    let delivered = 0;
    this.#held?.retry(topic, (message): RetryOutcome => {
      if (s.state !== 'open') return 'keep';
      const opened = this.#unprotect(message);
      if ('drop' in opened) {
        if (opened.waitFor !== undefined) return 'keep';
        dropped(s, 'inbound', opened.drop, topic, 'held for its key');
        return 'dropped';
      }
      s.deps.metrics.unprotected.inc();
      // Acknowledged upstream when it was held: nothing more to acknowledge.
      this.#deliver(message, opened.payload, () => undefined);
      delivered++;
      return 'delivered';
    });
    if (delivered > 0) {
      s.deps.logger.info(
        { clientId: s.clientId, identity: s.identity?.name, topic, delivered },
        'held messages delivered: their key arrived',
      );
    }
  }

  /** Sends a message to the client; `done` runs once the client acknowledged it. */
  #deliver(message: InboundMessage, payload: Buffer, done: () => void): void {
    const s = this.#s;
    const base = {
      cmd: 'publish' as const,
      topic: message.topic,
      payload,
      retain: message.retain,
      dup: false,
      ...(s.version === 5 && message.properties !== undefined
        ? { properties: message.properties }
        : {}),
    };
    if (message.qos === 0) {
      s.send({ ...base, qos: 0 });
      done();
      return;
    }
    const id = this.#allocateId();
    if (id === undefined) {
      // Not the client's protocol error: it left every identifier unacknowledged.
      s.reject('protocol', 'no free packet identifier', RC.unspecified);
      return;
    }
    const timer = setTimeout(() => {
      s.reject('timeout', `no acknowledgement of message ${id}`);
    }, s.deps.limits.ackTimeoutMs);
    this.#awaiting.set(id, { kind: message.qos === 1 ? 'puback' : 'pubrec', done, timer });
    s.send({ ...base, qos: message.qos, messageId: id });
  }

  #allocateId(): number | undefined {
    for (let i = 0; i < 65_535; i++) {
      const id = this.#nextId;
      this.#nextId = id >= 65_535 ? 1 : id + 1;
      if (!this.#awaiting.has(id)) return id;
    }
    return undefined;
  }

  #settle(messageId: number | undefined, kind: Awaiting['kind']): void {
    const id = messageId ?? 0;
    const waiting = this.#awaiting.get(id);
    if (waiting === undefined || waiting.kind !== kind) return;
    clearTimeout(waiting.timer);
    this.#awaiting.delete(id);
    waiting.done();
  }
}
