/**
 * Process-wide memos of the hashes a client computes on its hot paths. Both are pure functions
 * of public data (a topic name, a topic hash), so sharing them between the clients of a process
 * (a gateway, a simulator, the C2's own tools) reveals nothing, and a fleet rotating one topic
 * hashes it once instead of once per device. Bounded: a flood of topic names must not grow memory
 * without limit, so a memo that fills up starts over.
 */
import { fromHex, toHex } from '../bytes.ts';
import { TOPIC_MAX_BYTES } from '../constants.ts';
import { requireString } from '../arguments.ts';
import { topicHash, transitionSlotHash } from '../hash.ts';
import { checkTopicText } from '../validate.ts';

const MEMO_SIZE = 4096;
/**
 * Longest key kept, in UTF-16 units: every valid topic (512 bytes at most) fits, so the memo holds
 * at most about 4 MiB of keys. Longer names (MQTT allows 65,535 bytes, and a gateway subscribed to
 * a wildcard sees whatever its peers publish) are hashed each time instead.
 */
const MEMO_KEY_MAX = TOPIC_MAX_BYTES;

/**
 * `compute`, memoized for keys up to {@link MEMO_KEY_MAX} long; exported for its tests.
 * @internal
 */
export function memo(compute: (key: string) => string): (key: string) => string {
  const values = new Map<string, string>();
  return (key) => {
    if (key.length > MEMO_KEY_MAX) return compute(key);
    let value = values.get(key);
    if (value === undefined) {
      if (values.size >= MEMO_SIZE) values.clear();
      value = compute(key);
      values.set(key, value);
    }
    return value;
  };
}

/**
 * `hex(topicHash(topic))`; checked once per name, when it is first hashed.
 * @throws E4Error `InvalidArgument` for a non-string, `InvalidTopic` for a string with no UTF-8
 *   form (it would share its hash with other names)
 */
export const topicHashHex: (topic: string) => string = memo((topic) => {
  requireString(topic, 'topic');
  checkTopicText(topic);
  return toHex(topicHash(topic));
});

/** `hex(transitionSlotHash(topic hash))`: where the previous key of a topic is kept. */
export const transitionSlotHex: (topicHashHex: string) => string = memo((hashHex) =>
  toHex(transitionSlotHash(fromHex(hashHex))),
);
