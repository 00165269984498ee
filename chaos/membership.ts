/**
 * What the recorded history alone says about memberships, independent of the product's own
 * `device_topics` table: the membership a device must have at the end (I5: an acknowledged join
 * or leave is durable), and from when it may hold a topic's keys at all (I8).
 */
import type { Operation } from './history.ts';

/** A membership the history determines, and the acknowledged call that determines it. */
export interface ExpectedMembership {
  readonly member: boolean;
  readonly op: Operation;
}

const isMembershipChange = (o: Operation): boolean => o.kind === 'join' || o.kind === 'leave';

/**
 * The membership of `client` in `topic` that the acknowledged calls impose at the end, or
 * `undefined` when the history does not determine it. It does when the last acknowledged join or
 * leave of the pair is ordered after every other call of the pair that may have taken effect:
 * each such call of the other kind completed before it was invoked (times are whole
 * milliseconds, so one completed in the very millisecond it was invoked is not ordered), and
 * none of the other kind ended `unknown` (its request may still reach a node after its caller
 * gave up, and commit after the acknowledged call). Calls that failed with a 4xx changed nothing.
 */
export function expectedMembership(
  operations: readonly Operation[],
  client: string,
  topic: string,
): ExpectedMembership | undefined {
  const pair = operations.filter(
    (o) =>
      isMembershipChange(o) && o.client === client && o.topic === topic && o.outcome !== 'fail',
  );
  let last: Operation | undefined;
  for (const o of pair)
    if (o.outcome === 'ok' && (last === undefined || o.completedAt > last.completedAt)) last = o;
  if (last === undefined) return undefined;
  const final = last;
  for (const o of pair) {
    if (o === final || o.kind === final.kind) continue;
    if (o.outcome === 'unknown' || o.completedAt >= final.invokedAt) return undefined;
  }
  return { member: final.kind === 'join', op: final };
}

/**
 * When `client` may first have become a member of `topic`: the invocation of its first join that
 * may have taken effect (acknowledged or `unknown`), or `undefined` if it never asked to join. No
 * key of the topic can reach the device before: the C2 sends a member's keys only after the join
 * committed, and every device of a run starts a member of nothing.
 */
export function firstJoinInvoked(
  operations: readonly Operation[],
  client: string,
  topic: string,
): number | undefined {
  let first: number | undefined;
  for (const o of operations)
    if (o.kind === 'join' && o.client === client && o.topic === topic && o.outcome !== 'fail')
      first = first === undefined ? o.invokedAt : Math.min(first, o.invokedAt);
  return first;
}
