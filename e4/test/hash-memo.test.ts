// The clients' process-wide hash memos give exactly the hashes they stand for.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { toHex } from '../src/bytes.ts';
import { memo, topicHashHex, transitionSlotHex } from '../src/client/hash-memo.ts';
import { TOPIC_MAX_BYTES } from '../src/constants.ts';
import { topicHash, transitionSlotHash } from '../src/hash.ts';

void describe('client hash memos', () => {
  void it('equal the hashes they memoize, before and after the memo starts over', () => {
    // 5,000 names: more than the memo holds, so it starts over once on the way.
    for (let round = 0; round < 2; round++) {
      for (let i = 0; i < 5000; i++) {
        const topic = `fleet/${i}/ü`;
        const hash = topicHash(topic);
        assert.equal(topicHashHex(topic), toHex(hash));
        assert.equal(transitionSlotHex(toHex(hash)), toHex(transitionSlotHash(hash)));
      }
    }
  });
});

void describe('the memo itself', () => {
  void it('keeps a valid topic, and never keeps a name longer than any topic', () => {
    const computed: string[] = [];
    const memoized = memo((key) => {
      computed.push(key);
      return String(key.length);
    });
    const topic = 'a'.repeat(TOPIC_MAX_BYTES);
    assert.equal(memoized(topic), String(TOPIC_MAX_BYTES));
    assert.equal(memoized(topic), String(TOPIC_MAX_BYTES));
    assert.equal(computed.length, 1, 'a topic of the largest size is memoized');
    // A 65,000-character name, as a peer may publish on a gateway's wildcard: not kept, so
    // 4,096 of them cannot hold hundreds of MiB.
    const long = 'x'.repeat(65_000);
    assert.equal(memoized(long), '65000');
    assert.equal(memoized(long), '65000');
    assert.equal(computed.length, 3, 'a longer name is computed at each call');
  });

  void it('refuses a topic without a UTF-8 form before hashing it, and keeps nothing', () => {
    for (const topic of ['a/\uD800', 'a/\uDC00', 'room/\uDBFF']) {
      assert.throws(() => topicHashHex(topic), { code: 'InvalidTopic' });
      assert.throws(() => topicHashHex(topic), { code: 'InvalidTopic' }, 'not memoized');
    }
    assert.equal(topicHashHex('a/\uFFFD'), toHex(topicHash('a/\uFFFD')));
  });
});
