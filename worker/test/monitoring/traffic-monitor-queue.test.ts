/**
 * The traffic monitor's queue is bounded in messages and in payload bytes: while classification
 * is held up (here: the key read never answers until released), what would exceed either cap is
 * dropped and counted as `dropped`, and the room comes back as the queue drains.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  TrafficMonitor,
  type TrafficFeed,
  type TrafficSource,
} from '../../monitoring/traffic-monitor.ts';

/** A feed whose messages the test delivers itself. */
class HandFeed implements TrafficFeed {
  #handler: ((topic: string, payload: Uint8Array) => void) | undefined;
  subscribe(): Promise<void> {
    return Promise.resolve();
  }
  unsubscribe(): Promise<void> {
    return Promise.resolve();
  }
  onMessage(handler: (topic: string, payload: Uint8Array) => void): void {
    this.#handler = handler;
  }
  close(): Promise<void> {
    return Promise.resolve();
  }
  deliver(bytes: number): void {
    this.#handler?.('t', new Uint8Array(bytes));
  }
}

/** A source whose key reads wait for {@link HeldSource.release}; the topic is unknown to it. */
class HeldSource implements TrafficSource {
  readonly mode = 'symkey' as const;
  #release: () => void = () => undefined;
  readonly #released = new Promise<void>((resolve) => {
    this.#release = resolve;
  });
  listTopics(): Promise<{ items: Array<{ name: string }> }> {
    return Promise.resolve({ items: [{ name: 't' }] });
  }
  async monitoringKeys(): Promise<undefined> {
    await this.#released;
    return undefined;
  }
  recordTraffic(): Promise<void> {
    return Promise.resolve();
  }
  devicePublicKey(): Promise<undefined> {
    return Promise.resolve(undefined);
  }
  release(): void {
    this.#release();
  }
}

async function held(options: { maxQueued?: number; maxQueuedBytes?: number }) {
  const feed = new HandFeed();
  const source = new HeldSource();
  /** What the monitor told: each verdict, or `dropped <reason>`. */
  const verdicts: string[] = [];
  const monitor = new TrafficMonitor({
    source,
    feed,
    refreshMs: 3_600_000,
    flushMs: 3_600_000,
    ...options,
    onClassified: (v) => verdicts.push(v),
    onDropped: (reason) => verdicts.push(`dropped ${reason}`),
    onError: (err) => {
      throw err;
    },
  });
  await monitor.start();
  // The first message leaves the queue at once, for its (held) key read.
  feed.deliver(1);
  assert.equal(monitor.queued, 0);
  return { feed, source, verdicts, monitor };
}

void describe('traffic monitor queue', () => {
  void it('drops what would exceed the byte cap, counted as dropped, and counts what it holds', async () => {
    const { feed, source, verdicts, monitor } = await held({ maxQueuedBytes: 1000 });
    feed.deliver(400);
    feed.deliver(400);
    assert.equal(monitor.queuedBytes, 800);
    feed.deliver(400); // 1200 > 1000
    feed.deliver(5000); // larger than the cap by itself
    feed.deliver(200); // fits exactly
    assert.deepEqual(verdicts, ['dropped max_queued_bytes', 'dropped max_queued_bytes']);
    assert.equal(monitor.queued, 3);
    assert.equal(monitor.queuedBytes, 1000);
    source.release();
    await monitor.close();
    assert.equal(monitor.queued, 0);
    assert.equal(monitor.queuedBytes, 0);
  });

  void it('frees the bytes of each message it takes from the queue', async () => {
    const { feed, source, verdicts, monitor } = await held({ maxQueuedBytes: 1000 });
    feed.deliver(900);
    source.release();
    // Unknown topic: each message is looked at (no verdict) and the queue empties.
    while (monitor.queued > 0) await new Promise((resolve) => setImmediate(resolve));
    assert.equal(monitor.queuedBytes, 0);
    feed.deliver(900);
    assert.deepEqual(verdicts, [], 'the room of a classified message is given back');
    await monitor.close();
  });

  void it('still drops on the message count cap', async () => {
    const { feed, source, verdicts, monitor } = await held({ maxQueued: 2 });
    feed.deliver(1);
    feed.deliver(1);
    feed.deliver(1);
    assert.deepEqual(verdicts, ['dropped max_queued']);
    source.release();
    await monitor.close();
  });
});
