/**
 * The rotation hold's bookkeeping without a broker: the byte caps, the switch, which SetTopicKey
 * wakes which messages, and that a message leaves the hold once whatever happens to it (the
 * broker side is in rotation-hold.integration.test.ts).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { topicHash } from '../../e4/index.ts';
import { ProxyMetrics } from '../metrics.ts';
import { DEFAULT_ROTATION_HOLD, RotationHold, type RotationHoldLimits } from '../rotation-hold.ts';
import type { InboundMessage } from '../upstream.ts';
import { until } from './support.ts';

function message(topic: string, bytes: number): InboundMessage {
  return { topic, payload: Buffer.alloc(bytes, 7), qos: 1, retain: false };
}

function setUp(limits: Partial<RotationHoldLimits>): {
  hold: RotationHold;
  metrics: ProxyMetrics;
  count: (outcome: string) => Promise<number>;
  gauge: () => Promise<number | undefined>;
} {
  const metrics = new ProxyMetrics();
  return {
    hold: new RotationHold({ ...DEFAULT_ROTATION_HOLD, ...limits }, metrics),
    metrics,
    count: (outcome) => metrics.total(metrics.rotationHold, { outcome }),
    gauge: async () => (await metrics.heldBytes.get()).values[0]?.value,
  };
}

const ignore = (): void => undefined;

void describe('RotationHold', () => {
  void it('holds nothing when turned off (ms 0)', () => {
    const { hold } = setUp({ ms: 0 });
    assert.equal(hold.connection('a', ignore, ignore).hold(message('t', 10)), false);
  });

  void it('caps the bytes per topic and in total, and frees them when messages leave', async () => {
    const { hold, count, gauge } = setUp({ bytesPerTopic: 100, bytes: 150 });
    const one = hold.connection('a', ignore, ignore);
    const two = hold.connection('a', ignore, ignore);
    assert.equal(one.hold(message('t', 60)), true);
    assert.equal(one.hold(message('t', 41)), false, 'over the topic cap');
    assert.equal(one.hold(message('u', 40)), true, 'another topic');
    assert.equal(two.hold(message('t', 51)), false, 'over the total cap');
    assert.equal(two.hold(message('t', 50)), true);
    assert.equal(await gauge(), 150);
    assert.equal(await count('full'), 2);
    assert.equal(one.close().length, 2);
    assert.equal(await gauge(), 50);
    assert.equal(two.hold(message('t', 50)), true, 'room again');
    assert.equal(one.hold(message('t', 1)), false, 'closed');
  });

  void it('caps each connection below the totals: one cannot starve the others', async () => {
    const { hold, count } = setUp({
      messagesPerConnection: 2,
      messages: 3,
      bytesPerConnection: 100,
    });
    const greedy = hold.connection('greedy', ignore, ignore);
    const other = hold.connection('other', ignore, ignore);
    // Many topics it cannot open: each under its topic cap, but the connection's is reached.
    assert.equal(greedy.hold(message('a', 10)), true);
    assert.equal(greedy.hold(message('b', 10)), true);
    assert.equal(greedy.hold(message('c', 10)), false, 'over the connection cap');
    assert.equal(other.hold(message('a', 10)), true, 'another device still has room');
    assert.equal(await count('full'), 1);
    // Bytes too: a second connection of the same identity has its own share.
    const big = hold.connection('greedy', ignore, ignore);
    assert.equal(greedy.close().length, 2);
    assert.equal(big.hold(message('d', 101)), false, 'over the connection byte cap');
    assert.equal(big.hold(message('d', 100)), true);
  });

  void it('gives a connection its room back as its messages leave', () => {
    const { hold } = setUp({ messagesPerConnection: 1 });
    const woken: string[] = [];
    const one = hold.connection('a', ignore, (topic) => woken.push(topic));
    assert.equal(one.hold(message('t', 5)), true);
    assert.equal(one.hold(message('u', 5)), false);
    one.retry('t', () => 'delivered');
    assert.equal(one.hold(message('u', 5)), true, 'room again');
  });

  void it('wakes the held topic of the identity that got its key, and each message leaves once', async () => {
    const { hold, count } = setUp({});
    const woken: string[] = [];
    const held = hold.connection('a', ignore, (topic) => woken.push(topic));
    const other = hold.connection('b', ignore, (topic) => woken.push(`b:${topic}`));
    held.hold(message('t/1', 5));
    held.hold(message('t/1', 6));
    held.hold(message('t/2', 7));
    other.hold(message('t/1', 8));
    hold.keyArrived('a', topicHash('t/1'));
    assert.deepEqual(woken, ['t/1']);
    const tried: number[] = [];
    // The first is delivered, the second stays (still not authentic).
    held.retry('t/1', (m) => {
      tried.push(m.payload.length);
      return m.payload.length === 5 ? 'delivered' : 'keep';
    });
    held.retry('t/1', (m) => {
      tried.push(m.payload.length);
      return 'dropped';
    });
    held.retry('t/1', () => assert.fail('nothing is left to try'));
    assert.deepEqual(tried, [5, 6, 6]);
    assert.equal(await count('released'), 1);
    assert.equal(await count('dropped'), 1);
    hold.keyArrived('a', topicHash('t/1'));
    assert.deepEqual(woken, ['t/1'], 'no message of t/1 is held any more');
    other.close();
    held.close();
  });

  void it("wakes every held topic of the identity that got a sender's public key", () => {
    const { hold } = setUp({});
    const woken: string[] = [];
    const held = hold.connection('a', ignore, (topic) => woken.push(topic));
    const other = hold.connection('b', ignore, (topic) => woken.push(`b:${topic}`));
    held.hold(message('t/1', 5));
    held.hold(message('t/2', 6));
    other.hold(message('t/1', 7));
    hold.pubKeyArrived('a');
    assert.deepEqual(woken, ['t/1', 't/2']);
    other.close();
    held.close();
  });

  void it('drops a message when its time runs out, once', async () => {
    const { hold, count, gauge } = setUp({ ms: 20 });
    const expired: InboundMessage[] = [];
    const held = hold.connection('a', (m) => expired.push(m), ignore);
    const late = message('t', 3);
    held.hold(late);
    await until(() => expired.length === 1, 'the message expired');
    assert.equal(expired[0], late);
    held.retry('t', () => assert.fail('an expired message is not tried again'));
    assert.equal(await count('expired'), 1);
    assert.equal(await gauge(), 0);
    assert.equal(held.close().length, 0);
  });
});
