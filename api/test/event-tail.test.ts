/** Following the event journal: the current end, late commits (gaps), and the pump. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  EventTail,
  latestEventSeq,
  pumpEvents,
  type EventSource,
  type JournalEvent,
} from '../events/event-tail.ts';

/** An in-memory journal whose rows can be "committed" out of order. */
class FakeJournal implements EventSource {
  readonly rows = new Map<bigint, JournalEvent>();
  queries = 0;
  failNext = 0;

  commit(...seqs: number[]): void {
    for (const s of seqs)
      this.rows.set(BigInt(s), { seq: String(s), at: new Date(), type: `e${s}`, details: {} });
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

const seqs = (events: JournalEvent[]): number[] => events.map((e) => Number(e.seq));

void describe('latestEventSeq', () => {
  void it('finds the end in a logarithmic number of queries', async () => {
    const journal = new FakeJournal();
    assert.equal(await latestEventSeq(journal), 0n);
    journal.commit(1, 2, 3);
    assert.equal(await latestEventSeq(journal), 3n);
    for (let s = 4; s <= 5000; s += 3) journal.commit(s);
    journal.queries = 0;
    assert.equal(await latestEventSeq(journal), 4999n);
    assert.ok(journal.queries < 40, `${journal.queries} queries`);
  });
});

void describe('EventTail', () => {
  void it('emits each event once, in order', async () => {
    const journal = new FakeJournal();
    journal.commit(1, 2);
    const tail = new EventTail(journal, 0n);
    assert.deepEqual(seqs(await tail.poll()), [1, 2]);
    assert.deepEqual(seqs(await tail.poll()), []);
    journal.commit(3);
    assert.deepEqual(seqs(await tail.poll()), [3]);
    assert.equal(tail.position, '3');
  });

  void it('waits for a late commit behind a gap, and gives the gap up after gapWaitMs', async () => {
    let now = 1000;
    const journal = new FakeJournal();
    journal.commit(1, 3);
    const tail = new EventTail(journal, 0n, { gapWaitMs: 500, now: () => now });
    assert.deepEqual(seqs(await tail.poll()), [1, 3]);
    assert.equal(tail.position, '1');
    journal.commit(2); // the transaction that drew 2 commits after 3
    assert.deepEqual(seqs(await tail.poll()), [2]);
    assert.equal(tail.position, '3');
    journal.commit(5); // 4 was rolled back
    assert.deepEqual(seqs(await tail.poll()), [5]);
    assert.equal(tail.position, '3');
    now += 600;
    assert.deepEqual(seqs(await tail.poll()), []);
    assert.equal(tail.position, '5');
  });

  void it('does not track absurd gaps', async () => {
    const journal = new FakeJournal();
    journal.commit(1, 50_000);
    const tail = new EventTail(journal, 0n);
    assert.deepEqual(seqs(await tail.poll()), [1, 50_000]);
    assert.equal(tail.position, '50000');
  });
});

void describe('pumpEvents', () => {
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
});
