/**
 * Following the event journal (`events` table, `seq` bigserial) by polling
 * `C2Service.eventsAfter`. Sequence numbers are drawn when a transaction inserts its event, not
 * when it commits, so a poller can see seq 12 before seq 11 commits. The tail therefore remembers
 * missing numbers ("gaps") for a short while and emits a late event when it shows up; a gap left
 * by a rolled-back transaction is given up after `gapWaitMs`.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { C2Service } from '../../cluster/domain/index.ts';

/** A journal event as the domain returns it. */
export type JournalEvent = Awaited<ReturnType<C2Service['eventsAfter']>>[number];

/** What the tail reads from. */
export type EventSource = Pick<C2Service, 'eventsAfter'>;

/** Gaps wider than this are not tracked (something renumbered the sequence): they are skipped. */
const MAX_TRACKED_GAP = 10_000n;

/**
 * The highest sequence number in the journal (0 when it is empty), found with about
 * 2·log2(seq) indexed one-row queries, so a new stream starts at the current end without
 * scanning the table.
 */
export async function latestEventSeq(source: EventSource): Promise<bigint> {
  const next = async (after: bigint): Promise<bigint | undefined> => {
    const [event] = await source.eventsAfter(after.toString(), 1);
    return event === undefined ? undefined : BigInt(event.seq);
  };
  const first = await next(0n);
  if (first === undefined) return 0n;
  // Gallop: `lo` exists, `hi` is beyond the end.
  let lo = first;
  let step = 1n;
  let hi: bigint;
  for (;;) {
    const probe = lo + step;
    const found = await next(probe);
    if (found === undefined) {
      hi = probe;
      break;
    }
    lo = found;
    step *= 2n;
  }
  // Binary search: the end is in [lo, hi].
  while (lo < hi) {
    const mid = (lo + hi) / 2n;
    const found = await next(mid);
    if (found === undefined) hi = mid;
    else lo = found;
  }
  return lo;
}

/** Options of {@link EventTail}. */
export interface EventTailOptions {
  /** Events read per query. Default 500. */
  readonly pageSize?: number;
  /** How long a missing sequence number is waited for. Default 2000 ms. */
  readonly gapWaitMs?: number;
  /** Clock, for tests. */
  readonly now?: () => number;
}

/** Reads the journal after a position, once per {@link EventTail.poll}. */
export class EventTail {
  /** Every seq up to here has been emitted or given up. */
  #settled: bigint;
  /** Emitted seqs above `#settled`. */
  readonly #emitted = new Set<bigint>();
  /** Missing seqs above `#settled`, with the time they were first noticed. */
  readonly #gaps = new Map<bigint, number>();
  readonly #pageSize: number;
  readonly #gapWaitMs: number;
  readonly #now: () => number;

  /**
   * @param source - the journal
   * @param after - emit events with a seq above this
   */
  constructor(
    private readonly source: EventSource,
    after: bigint,
    options: EventTailOptions = {},
  ) {
    this.#settled = after;
    this.#pageSize = options.pageSize ?? 500;
    this.#gapWaitMs = options.gapWaitMs ?? 2000;
    this.#now = options.now ?? Date.now;
  }

  /** Events read per query. */
  get pageSize(): number {
    return this.#pageSize;
  }

  /** The resume position: every event up to this seq has been emitted (or given up). */
  get position(): string {
    return this.#settled.toString();
  }

  /** New events since the last call, each emitted once (ascending, except late gap fillers). */
  async poll(): Promise<JournalEvent[]> {
    const now = this.#now();
    const rows = await this.source.eventsAfter(this.#settled.toString(), this.#pageSize);
    const fresh: JournalEvent[] = [];
    let highest = this.#settled;
    for (const row of rows) {
      const seq = BigInt(row.seq);
      if (seq > highest) highest = seq;
      if (this.#emitted.has(seq)) continue;
      this.#emitted.add(seq);
      this.#gaps.delete(seq);
      fresh.push(row);
    }
    if (highest - this.#settled > MAX_TRACKED_GAP) {
      // Not a commit race: skip everything at or below what was seen.
      this.#settled = highest;
      this.#emitted.clear();
      this.#gaps.clear();
      return fresh;
    }
    for (let seq = this.#settled + 1n; seq < highest; seq++) {
      if (!this.#emitted.has(seq) && !this.#gaps.has(seq)) this.#gaps.set(seq, now);
    }
    for (;;) {
      const next = this.#settled + 1n;
      const noticed = this.#gaps.get(next);
      if (this.#emitted.delete(next)) this.#settled = next;
      else if (noticed !== undefined && now - noticed >= this.#gapWaitMs) {
        this.#gaps.delete(next);
        this.#settled = next;
      } else break;
    }
    return fresh;
  }
}

/** Options of {@link pumpEvents}. */
export interface PumpOptions {
  readonly tail: EventTail;
  /** Pause between polls that found nothing new. */
  readonly intervalMs: number;
  /** Stops the pump. */
  readonly signal: AbortSignal;
  /** Receives each batch; the next poll waits for it (back-pressure). */
  deliver(events: JournalEvent[]): Promise<void>;
  /** A failed poll; the pump retries with a growing pause (at most 5 s). */
  onError(err: unknown): void;
}

/** Polls `tail` until `signal` aborts. Never rejects. */
export async function pumpEvents(options: PumpOptions): Promise<void> {
  const aborted = (): boolean => options.signal.aborted;
  let failures = 0;
  while (!aborted()) {
    let full = false;
    try {
      const events = await options.tail.poll();
      failures = 0;
      if (events.length > 0) await options.deliver(events);
      full = events.length >= options.tail.pageSize;
    } catch (err) {
      if (aborted()) return;
      failures++;
      options.onError(err);
    }
    if (full) continue;
    const pause =
      failures === 0 ? options.intervalMs : Math.min(5000, options.intervalMs * 2 ** failures);
    try {
      await sleep(pause, undefined, { signal: options.signal });
    } catch {
      return; // aborted
    }
  }
}
