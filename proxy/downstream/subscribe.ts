/**
 * A downstream client's SUBSCRIBE and UNSUBSCRIBE: valid filters go to its upstream session,
 * invalid ones are refused in the SUBACK (MQTT 5 0x8F, 3.1.1 0x80), and every packet is answered.
 */
import type { ISubscribePacket, IUnsubscribePacket } from 'mqtt-packet';
import { isValidTopicFilter } from '../topic-filter.ts';
import type { SubscriptionRequest } from '../upstream.ts';
import { RC } from './reason-codes.ts';
import type { ConnectionShared } from './shared.ts';

/** Subscribes upstream to the valid filters of `packet`, then answers with SUBACK. */
export function subscribe(s: Readonly<ConnectionShared>, packet: ISubscribePacket): void {
  const granted: number[] = packet.subscriptions.map((sub) =>
    isValidTopicFilter(sub.topic) ? -1 : s.version === 5 ? RC.topicFilterInvalid : 0x80,
  );
  const valid: SubscriptionRequest[] = packet.subscriptions
    .filter((_sub, i) => granted[i] === -1)
    .map((sub) => ({
      topic: sub.topic,
      qos: sub.qos,
      ...(sub.nl === undefined ? {} : { nl: sub.nl }),
      ...(sub.rap === undefined ? {} : { rap: sub.rap }),
      ...(sub.rh === undefined ? {} : { rh: sub.rh }),
    }));
  const answer = (upstreamGranted: readonly number[]): void => {
    let next = 0;
    const codes = granted.map((g) => (g === -1 ? (upstreamGranted[next++] ?? 0x80) : g));
    s.send({ cmd: 'suback', messageId: packet.messageId ?? 0, granted: codes });
  };
  const link = s.link;
  if (valid.length === 0 || link === undefined) {
    answer([]);
    return;
  }
  link.subscribe(valid, answer);
}

/** Unsubscribes upstream from the valid filters of `packet`, then answers with UNSUBACK. */
export function unsubscribe(s: Readonly<ConnectionShared>, packet: IUnsubscribePacket): void {
  const answer = (): void => {
    s.send({
      cmd: 'unsuback',
      messageId: packet.messageId ?? 0,
      granted: packet.unsubscriptions.map(() => 0),
    });
  };
  const link = s.link;
  const valid = packet.unsubscriptions.filter(isValidTopicFilter);
  if (link === undefined || valid.length === 0) answer();
  else link.unsubscribe(valid, answer);
}
