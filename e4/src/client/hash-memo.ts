/**
 * Process-wide memos of the hashes a client computes on its hot paths. Both are pure functions
 * of public data (a topic name, a topic hash), so sharing them between the clients of a process
 * (a gateway, a simulator, the C2's own tools) reveals nothing, and a fleet rotating one topic
 * hashes it once instead of once per device. Bounded: a flood of topic names must not grow memory
 * without limit, so a memo that fills up starts over.
 */
import { fromHex, toHex } from '../bytes.ts';
import { topicHash, transitionSlotHash } from '../hash.ts';

const MEMO_SIZE = 4096;

function memo(compute: (key: string) => string): (key: string) => string {
  const values = new Map<string, string>();
  return (key) => {
    let value = values.get(key);
    if (value === undefined) {
      if (values.size >= MEMO_SIZE) values.clear();
      value = compute(key);
      values.set(key, value);
    }
    return value;
  };
}

/** `hex(topicHash(topic))`. */
export const topicHashHex: (topic: string) => string = memo((topic) => toHex(topicHash(topic)));

/** `hex(transitionSlotHash(topic hash))`: where the previous key of a topic is kept. */
export const transitionSlotHex: (topicHashHex: string) => string = memo((hashHex) =>
  toHex(transitionSlotHash(fromHex(hashHex))),
);
