/**
 * Event triggers, evaluated on the durable event log (`events`, ordered by seq) rather than on an
 * in-memory stream: whichever node served the subscribe or unsubscribe, the leader counts it, and
 * a new leader continues from the persisted cursor, so thresholds are exact across nodes and
 * failovers.
 */
import { targetMatcher } from '../../cluster/domain/automation-rules.ts';
import type { CountableEvent, TargetSpec, TriggerSpec } from '../../cluster/storage/index.ts';

/**
 * A missing seq followed by an event younger than this may still commit (sequence numbers are
 * taken before commit); the cursor stops before it. Older gaps are rolled-back transactions.
 */
export const EVENT_GAP_SETTLE_MS = 10_000;

/**
 * The events that can be consumed safely: the prefix of `events` (seq order, after `after`)
 * before the first gap that may still be filled by a late commit.
 * @returns those events and the cursor to store (the last consumed seq)
 */
export function settledEvents(
  after: string,
  events: readonly CountableEvent[],
  now: number,
  settleMs = EVENT_GAP_SETTLE_MS,
): { readonly events: CountableEvent[]; readonly cursor: string } {
  const kept: CountableEvent[] = [];
  let expected = BigInt(after) + 1n;
  let cursor = after;
  for (const event of events) {
    const seq = BigInt(event.seq);
    if (seq !== expected && now - event.at.getTime() < settleMs) break;
    kept.push(event);
    cursor = event.seq;
    expected = seq + 1n;
  }
  return { events: kept, cursor };
}

/**
 * Whether an event concerns the rule's targets: client targets match the event's client, topic
 * targets its topic. A rule without targets matches every event.
 */
export function eventMatchesTargets(
  event: CountableEvent,
  targets: readonly TargetSpec[],
): boolean {
  if (targets.length === 0) return true;
  return targets.some((t) => {
    const name = t.kind === 'client' ? event.clientName : event.topic;
    return name !== null && targetMatcher(t).filter([name]).length > 0;
  });
}

/** A firing an event trigger owes: keyed by the event that caused it. */
export interface EventFiring {
  readonly seq: string;
  readonly at: Date;
  /** For member-removed: the topic to rotate. */
  readonly topic?: string;
}

/**
 * Counts matching events of an `event` trigger from `counter`; every `threshold`-th one owes a
 * firing and resets the count.
 */
export function countEvents(
  trigger: Extract<TriggerSpec, { kind: 'event' }>,
  targets: readonly TargetSpec[],
  events: readonly CountableEvent[],
  counter: number,
): { readonly firings: EventFiring[]; readonly counter: number } {
  const firings: EventFiring[] = [];
  let n = counter;
  for (const event of events) {
    if (event.type !== trigger.event || !eventMatchesTargets(event, targets)) continue;
    n += 1;
    if (n >= trigger.threshold) {
      firings.push({ seq: event.seq, at: event.at });
      n = 0;
    }
  }
  return { firings, counter: n };
}

/**
 * Forward secrecy: every `client.unsubscribed` from a target topic owes a rotation of that topic.
 * Client targets (if any) restrict which departing clients count.
 */
export function memberRemovals(
  targets: readonly TargetSpec[],
  events: readonly CountableEvent[],
): EventFiring[] {
  const topics = targets.filter((t) => t.kind === 'topic');
  return events
    .filter(
      (e) =>
        e.type === 'client.unsubscribed' &&
        e.topic !== null &&
        (topics.length === 0 || eventMatchesTargets(e, topics)),
    )
    .map((e) => ({ seq: e.seq, at: e.at, topic: e.topic ?? '' }));
}
