/**
 * Capped retransmission (R6) and failure reporting, with a publisher fake of our own port on the
 * real PostgreSQL: attempts stop at the cap, the device is marked failed and visible, a resync
 * clears it, and every attempt is protected afresh.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { randomSymKey, unprotectSymKey } from '../../../e4/index.ts';
import { backoffDelay, mayRetry, syncDevice, type CommandPublisher } from '../../delivery/index.ts';
import { startHarness, type C2Harness } from '../support/c2-harness.ts';

const ctx = { actor: 'test' };

class FlakyPublisher implements CommandPublisher {
  readonly sent: Uint8Array[] = [];
  constructor(private failuresLeft: number) {}
  publish(_topic: string, payload: Uint8Array): Promise<void> {
    this.sent.push(payload);
    if (this.failuresLeft > 0) {
      this.failuresLeft--;
      return Promise.reject(new Error('no PUBACK within 10 ms'));
    }
    return Promise.resolve();
  }
}

void describe('retry policy', () => {
  const policy = { maxAttempts: 4, initialBackoffMs: 100, maxBackoffMs: 1000, deadlineMs: 5000 };
  void it('grows exponentially with full jitter up to the ceiling', () => {
    assert.equal(
      backoffDelay(policy, 1, () => 0.999999),
      99,
    );
    assert.equal(
      backoffDelay(policy, 3, () => 0.999999),
      399,
    );
    assert.equal(
      backoffDelay(policy, 10, () => 0.999999),
      999,
    );
    assert.equal(
      backoffDelay(policy, 3, () => 0),
      0,
    );
  });
  void it('stops at the attempt cap and at the deadline', () => {
    assert.equal(mayRetry(policy, 3, 0, 100, 10), true);
    assert.equal(mayRetry(policy, 4, 0, 100, 10), false);
    assert.equal(mayRetry(policy, 1, 0, 4995, 10), false);
  });
});

void describe('device sync with a failing broker', () => {
  let h: C2Harness;
  before(async () => {
    h = await startHarness({ start: false });
  });
  after(async () => {
    await h.close();
  });

  async function clientWithWork(): Promise<{ id: string; name: string; key: Uint8Array }> {
    const name = `flaky-${randomBytes(4).toString('hex')}`;
    const topic = `t-${name}`;
    const key = randomSymKey();
    await h.service.newClient(ctx, name, key);
    await h.service.newTopic(ctx, topic);
    await h.service.newTopicClient(ctx, name, topic);
    const row = await h.store.read.clients.byName(name);
    assert.ok(row);
    return { id: row.id, name, key };
  }

  function deps(publisher: CommandPublisher, maxAttempts: number) {
    let now = 1_800_000_000_000;
    return {
      store: h.store,
      sealer: h.service.deps.sealer,
      mode: 'symkey' as const,
      publisher,
      clock: () => now,
      sleep: (ms: number) => {
        now += ms + 1000; // every attempt happens at a later second
        return Promise.resolve();
      },
      policy: { maxAttempts, initialBackoffMs: 10, maxBackoffMs: 50, deadlineMs: 60_000 },
    };
  }

  void it('marks the device failed after the cap, never sending more than the cap', async () => {
    const { id, name } = await clientWithWork();
    const publisher = new FlakyPublisher(100);
    assert.equal(await syncDevice(deps(publisher, 3), id), 'failed');
    assert.equal(publisher.sent.length, 3);
    const details = await h.service.getClient(name);
    assert.equal(details.delivery.state, 'failed');
    assert.equal(details.delivery.attempts, 3);
    assert.match(details.delivery.error ?? '', /SetTopicKey: no PUBACK/);
    assert.equal(details.topics[0]?.state, 'failed');
    const events = await h.service.eventsAfter('0', 1000);
    const event = events.find((e) => e.type === 'delivery.failed' && e.clientName === name);
    assert.ok(event, 'a delivery.failed event');
    // Which rollout failed: the command's target, not only its kind.
    assert.match(String(event.details?.['target']), /^topic [0-9a-f]{32} v1$/);
    assert.equal(event.details?.['command'], 'SetTopicKey');
  });

  void it('protects every retransmission afresh and delivers after transient failures', async () => {
    const { id, name, key } = await clientWithWork();
    const publisher = new FlakyPublisher(2);
    const d = deps(publisher, 5);
    assert.equal(await syncDevice(d, id), 'idle');
    assert.equal(publisher.sent.length, 3);
    const timestamps = publisher.sent.map((p) => Buffer.from(p.subarray(0, 8)).toString('hex'));
    assert.equal(new Set(timestamps).size, 3, 'each attempt has its own timestamp');
    for (const p of publisher.sent) assert.equal(unprotectSymKey(p, key, d.clock)[0], 0x03);
    const details = await h.service.getClient(name);
    assert.equal(details.delivery.state, 'idle');
    assert.equal(details.topics[0]?.state, 'delivered');
  });

  void it('a resync clears a failed delivery and sends everything again', async () => {
    const { id, name } = await clientWithWork();
    assert.equal(await syncDevice(deps(new FlakyPublisher(100), 1), id), 'failed');
    await h.service.resyncClient(ctx, name);
    assert.equal((await h.service.getClient(name)).delivery.state, 'idle');
    const publisher = new FlakyPublisher(0);
    assert.equal(await syncDevice(deps(publisher, 3), id), 'idle');
    assert.equal(publisher.sent.length, 1);
    assert.equal((await h.service.getClient(name)).topics[0]?.state, 'delivered');
  });

  void it('removing a client with reset sends ResetTopics, then deletes the record', async () => {
    const { id, name, key } = await clientWithWork();
    const publisher = new FlakyPublisher(0);
    const d = deps(publisher, 3);
    assert.equal(await syncDevice(d, id), 'idle');
    await h.service.removeClient(ctx, name, { reset: true });
    await assert.rejects(h.service.getClient(name), { code: 'C2_NOT_FOUND' });
    assert.equal(await syncDevice(d, id), 'removed');
    const last = publisher.sent.at(-1);
    assert.ok(last);
    assert.deepEqual(unprotectSymKey(last, key, d.clock), new Uint8Array([0x01]));
    assert.equal(await h.store.read.clients.byId(id), undefined);
  });
});
