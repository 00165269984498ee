/** Journal events as the two APIs show them. */
import type { ProtoMessage } from '../codec/protos.ts';
import type { JournalEvent } from './event-tail.ts';

const REFERENCE_TYPES: Readonly<Record<string, string>> = {
  'client.subscribed': 'CLIENT_SUBSCRIBED',
  'client.unsubscribed': 'CLIENT_UNSUBSCRIBED',
};

/**
 * The reference `pb.Event` of a journal event, or `undefined` for the event types the reference
 * stream does not have: only attach (`CLIENT_SUBSCRIBED`) and detach (`CLIENT_UNSUBSCRIBED`),
 * with source = client name, target = topic.
 */
export function referenceEvent(event: JournalEvent): ProtoMessage | undefined {
  const type = REFERENCE_TYPES[event.type];
  if (type === undefined) return undefined;
  const ms = event.at.getTime();
  return {
    type,
    source: event.clientName ?? '',
    target: event.topic ?? '',
    timestamp: { seconds: String(Math.floor(ms / 1000)), nanos: (ms % 1000) * 1_000_000 },
  };
}

/** The `e4c2.v1.EventRecord` of a journal event (every type). */
export function eventRecord(event: JournalEvent): ProtoMessage {
  const details: Record<string, string> = {};
  for (const [key, value] of Object.entries(event.details ?? {})) details[key] = String(value);
  return {
    seq: event.seq,
    at: event.at.toISOString(),
    type: event.type,
    client: event.clientName ?? '',
    topic: event.topic ?? '',
    key_version: event.keyVersion ?? 0,
    details,
  };
}
