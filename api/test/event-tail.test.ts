/** Following the event stream: positions, the pump, wake-ups. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { EventWakeups } from '../../cluster/events/index.ts';
import {
  EventTail,
  latestEventSeq,
  pumpEvents,
  type EventSource,
  type JournalEvent,
} from '../events/event-tail.ts';

/** An in-memory journal of positioned events. */
class FakeJournal implements EventSource {
  readonly rows = new Map<bigint, JournalEvent>();
  queries = 0;
  failNext = 0;

  commit(...seqs: number[]): void {
    for (const s of seqs)
      this.rows.set(BigInt(s), { seq: String(s), at: new Date(), type: `e${s}`, details: {} });
  }

  latestEventSeq(): Promise<string> {
    return Promise.resolve(String(Math.max(0, ...[...this.rows.keys()].map(Number))));
  }

  eventsAfter(seq: string, limit: number): Promise<JournalEvent[]> {
    this.queries++;
    if (this.failNext > 0) {
      this.failNext--;
      return Promise.reject(new Error('database down'));
    }
    const after = BigInt(seq);
    return Promise.resolve(
      [...this.rows.values()]
        .filter((e) => BigInt(e.seq) > after)
        .sort((a, b) => (BigInt(a.seq) < BigInt(b.seq) ? -1 : 1))
        .slice(0, limit),
    );
  }
}

/** Wake-ups a test fires by hand. */
class ManualWakeups implements EventWakeups {
  readonly listeners = new Set<() => void>();
  constructor(readonly listening: boolean) {}
  onWake(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
  fire(): void {
    for (const l of this.listeners) l();
  }
}

const seqs = (events: JournalEvent[]): number[] => events.map((e) => Number(e.seq));

void describe('latestEventSeq', () => {
  void it('is the last position handed out', async () => {
    const journal = new FakeJournal();
    assert.equal(await latestEventSeq(journal), 0n);
    journal.commit(1, 2, 3);
    assert.equal(await latestEventSeq(journal), 3n);
  });
});

void describe('EventTail', () => {
  void it('emits each event once, in order, and pages', async () => {
    const journal = new FakeJournal();
    journal.commit(1, 2, 3);
    const tail = new EventTail(journal, 0n, { pageSize: 2 });
    assert.deepEqual(seqs(await tail.poll()), [1, 2]);
    assert.deepEqual(seqs(await tail.poll()), [3]);
    assert.deepEqual(seqs(await tail.poll()), []);
    journal.commit(4);
    assert.deepEqual(seqs(await tail.poll()), [4]);
    assert.equal(tail.position, '4');
  });

  void it('resumes after a position and follows a forward jump (after a restore)', async () => {
    const journal = new FakeJournal();
    journal.commit(1, 2, 3, 1_000_004);
    const tail = new EventTail(journal, 2n);
    assert.deepEqual(seqs(await tail.poll()), [3, 1_000_004]);
    assert.equal(tail.position, '1000004');
  });
});

void describe('pumpEvents', { timeout: 20_000 }, () => {
  void it('delivers batches, survives failed polls, and stops on abort', async () => {
    const journal = new FakeJournal();
    journal.commit(1);
    journal.failNext = 1;
    const seen: number[] = [];
    const errors: unknown[] = [];
    const controller = new AbortController();
    const done = pumpEvents({
      tail: new EventTail(journal, 0n),
      intervalMs: 5,
      signal: controller.signal,
      deliver: (events) => {
        seen.push(...seqs(events));
        if (seen.includes(2)) controller.abort();
        return Promise.resolve();
      },
      onError: (err) => errors.push(err),
    });
    await new Promise((r) => setTimeout(r, 60));
    journal.commit(2);
    await done;
    assert.deepEqual(seen, [1, 2]);
    assert.equal(errors.length, 1);
  });

  void it('reads when woken while a listener is up, instead of waiting for its slow poll', async () => {
    const journal = new FakeJournal();
    const wakeups = new ManualWakeups(true);
    const seen: number[] = [];
    const controller = new AbortController();
    const done = pumpEvents({
      tail: new EventTail(journal, 0n),
      intervalMs: 5,
      // Listening: no fallback poll within the test's timeout, only the wake-up can deliver.
      listeningPollMs: 600_000,
      wakeups,
      signal: controller.signal,
      deliver: (events) => {
        seen.push(...seqs(events));
        controller.abort();
        return Promise.resolve();
      },
      onError: () => undefined,
    });
    await new Promise((r) => setTimeout(r, 30));
    const before = journal.queries;
    journal.commit(1);
    wakeups.fire();
    await done;
    assert.deepEqual(seen, [1]);
    assert.equal(journal.queries, before + 1);
    assert.equal(wakeups.listeners.size, 0, 'the pump unsubscribes when it ends');
  });
});
