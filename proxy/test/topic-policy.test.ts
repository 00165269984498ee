/** Topic filters, the topic policy and the classification of unprotect failures. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { E4Error, protectSymKey, randomSymKey, sivKey, unprotectSymKey } from '../../e4/index.ts';
import { TopicPolicy, unprotectDropReason } from '../policy.ts';
import {
  isControlTopic,
  isValidTopicFilter,
  isValidTopicName,
  topicMatches,
} from '../topic-filter.ts';

function failure(payload: Uint8Array, key = randomSymKey()): unknown {
  try {
    unprotectSymKey(payload, sivKey(key));
  } catch (err) {
    return err;
  }
  assert.fail('unprotect accepted the message');
}

void describe('topic filters', () => {
  void it('match as MQTT does', () => {
    assert.ok(topicMatches('a/+/c', 'a/b/c'));
    assert.ok(topicMatches('a/#', 'a'));
    assert.ok(topicMatches('a/#', 'a/b/c'));
    assert.ok(topicMatches('#', 'x/y'));
    assert.ok(!topicMatches('#', '$SYS/x'));
    assert.ok(!topicMatches('a/+', 'a/b/c'));
    assert.ok(!topicMatches('a/b', 'a/b/c'));
    assert.ok(topicMatches('$share/g/a/+', 'a/b'));
  });

  void it('validate names and filters', () => {
    assert.ok(isValidTopicName('a/b'));
    assert.ok(!isValidTopicName(''));
    assert.ok(!isValidTopicName('a/#'));
    assert.ok(!isValidTopicName('a\u0000b'));
    assert.ok(isValidTopicFilter('a/+/#'));
    assert.ok(!isValidTopicFilter('a/#/b'));
    assert.ok(!isValidTopicFilter('a/b+'));
    assert.ok(!isValidTopicFilter(''));
  });

  void it('recognise E4 control topics only', () => {
    assert.ok(isControlTopic(`e4/${'ab'.repeat(16)}`));
    assert.ok(!isControlTopic('e4/receipts'));
    assert.ok(!isControlTopic(`e4/${'ab'.repeat(16)}/x`));
  });
});

void describe('topic policy', () => {
  void it('protects matching topics, keeps control topics, forwards or drops the rest', () => {
    const forward = new TopicPolicy(['plant/#'], 'forward');
    assert.equal(forward.classify('plant/1/temp'), 'protect');
    assert.equal(forward.classify('office/temp'), 'forward');
    assert.equal(forward.classify(`e4/${'0'.repeat(32)}`), 'control');
    assert.equal(new TopicPolicy(['plant/#'], 'drop').classify('office/temp'), 'drop');
  });

  void it('tells plaintext, stale and forged messages apart', () => {
    const now = Date.now();
    const key = randomSymKey();
    assert.equal(
      unprotectDropReason(failure(Buffer.from('hi')), Buffer.from('hi'), now),
      'plaintext',
    );
    const text = Buffer.from('{"temperature": 21.5, "unit": "C"}');
    assert.equal(unprotectDropReason(failure(text), text, now), 'plaintext');
    const old = protectSymKey(Buffer.from('x'), sivKey(key), () => now - 20 * 60_000);
    assert.equal(unprotectDropReason(failure(old, key), old, now), 'stale');
    const forged = protectSymKey(Buffer.from('x'), sivKey(randomSymKey()));
    assert.equal(unprotectDropReason(failure(forged, key), forged, now), 'not-authentic');
    assert.equal(
      unprotectDropReason(new E4Error('TopicKeyNotFound', 'topic key not found'), forged, now),
      'no-key',
    );
    assert.equal(unprotectDropReason(new Error('other'), forged, now), 'not-authentic');
  });
});
