// The clients' process-wide hash memos give exactly the hashes they stand for.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { toHex } from '../src/bytes.ts';
import { topicHashHex, transitionSlotHex } from '../src/client/hash-memo.ts';
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
