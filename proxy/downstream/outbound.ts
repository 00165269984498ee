/**
 * The client-to-broker path of one downstream connection: the topic policy and protection of
 * each PUBLISH and of the will, QoS 2 from the client, and flow control. The client's PUBLISH is
 * acknowledged once the broker acknowledged it; its socket is paused while too many messages
 * await the broker.
 */
import type { IConnectPacket, IPublishPacket } from 'mqtt-packet';
import type { DropReason } from '../policy.ts';
import { isValidTopicName } from '../topic-filter.ts';
import { publishProperties, type OutboundMessage } from '../upstream.ts';
import { RC } from './reason-codes.ts';
import { dropped, isClosed, type ConnectionShared } from './shared.ts';

/** Messages from one client to the broker. */
export class OutboundPath {
  readonly #s: Readonly<ConnectionShared>;
  /** QoS 2 PUBLISHes from the client: forwarding, or forwarded and PUBREC sent. */
  readonly #qos2In = new Map<number, 'forwarding' | 'received'>();
  #inflight = 0;
  #paused = false;

  /** The path of the connection whose state is `shared`. */
  constructor(shared: Readonly<ConnectionShared>) {
    this.#s = shared;
  }

  /** The client's PUBLISH: forwarded upstream (protected if its topic is), or dropped. */
  publish(packet: IPublishPacket): void {
    const s = this.#s;
    const id = packet.messageId ?? 0;
    const qos = packet.qos;
    if (packet.properties?.topicAlias !== undefined) {
      s.reject('protocol', 'topic alias (maximum is 0)', RC.topicAliasInvalid);
      return;
    }
    if (!isValidTopicName(packet.topic)) {
      s.reject('protocol', 'invalid topic name in PUBLISH', RC.topicNameInvalid);
      return;
    }
    if (qos === 2) {
      const seen = this.#qos2In.get(id);
      if (seen === 'received') s.send({ cmd: 'pubrec', messageId: id });
      if (seen !== undefined) return;
    }
    const ack = (code: number): void => {
      if (qos === 0) return;
      if (qos === 2) this.#qos2In.set(id, 'received');
      s.send({
        cmd: qos === 1 ? 'puback' : 'pubrec',
        messageId: id,
        ...(s.version === 5 ? { reasonCode: code } : {}),
      });
    };
    const payload =
      typeof packet.payload === 'string' ? Buffer.from(packet.payload) : packet.payload;
    const properties = s.version === 5 ? publishProperties(packet) : undefined;
    const out = this.#apply({
      topic: packet.topic,
      payload,
      qos,
      retain: packet.retain,
      ...(properties === undefined ? {} : { properties }),
    });
    if ('drop' in out) {
      dropped(s, 'outbound', out.drop, packet.topic);
      ack(out.code);
      return;
    }
    const link = s.link;
    if (link === undefined) return;
    if (qos === 2) this.#qos2In.set(id, 'forwarding');
    const wasProtected = out.payload !== payload;
    this.#inflight++;
    if (this.#inflight >= s.deps.limits.maxInflight && !this.#paused) {
      this.#paused = true;
      s.socket.pause();
    }
    link.publish(out, (err) => {
      this.#inflight--;
      if (this.#paused && this.#inflight <= s.deps.limits.maxInflight / 2) {
        this.#paused = false;
        s.socket.resume();
      }
      if (isClosed(s)) return;
      if (err !== undefined) {
        dropped(s, 'outbound', 'upstream-error', packet.topic);
        // Not acknowledged: the client resends it on its next connection.
        if (qos > 0) s.reject('upstream-unavailable', err.message);
        return;
      }
      if (wasProtected) s.deps.metrics.protected.inc();
      else s.deps.metrics.forwarded.inc({ direction: 'outbound' });
      ack(RC.success);
    });
  }

  /** The client's PUBREL of a QoS 2 PUBLISH: answered with PUBCOMP. */
  release(messageId: number | undefined): void {
    const id = messageId ?? 0;
    this.#qos2In.delete(id);
    this.#s.send({ cmd: 'pubcomp', messageId: id });
  }

  /** The will to register upstream: protected on a protected topic, dropped if it cannot be. */
  willOf(packet: IConnectPacket): OutboundMessage | undefined {
    const will = packet.will;
    if (will === undefined) return undefined;
    const payload = typeof will.payload === 'string' ? Buffer.from(will.payload) : will.payload;
    const message = {
      topic: will.topic,
      payload,
      qos: will.qos ?? 0,
      retain: will.retain ?? false,
    };
    const out = this.#apply(message);
    if (!('drop' in out)) return out;
    // Counted and logged like any dropped message: the will would never fire.
    dropped(this.#s, 'outbound', out.drop, will.topic);
    return undefined;
  }

  /**
   * Applies the policy to a message from the client: the message to publish upstream, or why it
   * is dropped.
   */
  #apply(
    message: OutboundMessage,
  ): OutboundMessage | { readonly drop: DropReason; readonly code: number } {
    const s = this.#s;
    if (message.payload.length > s.deps.limits.maxPayloadBytes) {
      return { drop: 'oversized', code: RC.unspecified };
    }
    switch (s.deps.policy.classify(message.topic)) {
      case 'control':
        return { drop: 'control-topic', code: RC.notAuthorized };
      case 'drop':
        return { drop: 'unknown-topic', code: RC.notAuthorized };
      case 'forward':
        return message;
      case 'protect': {
        // An empty retained message deletes the retained message (MQTT): it carries no data.
        if (message.retain && message.payload.length === 0) return message;
        const identity = s.identity;
        if (identity === undefined) return { drop: 'no-key', code: RC.unspecified };
        try {
          const sealed = identity.client.protectMessage(message.payload, message.topic);
          return {
            ...message,
            payload: Buffer.from(sealed.buffer, sealed.byteOffset, sealed.length),
          };
        } catch {
          return { drop: 'no-key', code: RC.unspecified };
        }
      }
    }
  }
}
