/**
 * Following the event stream. Every event has a stream position (`seq`) handed out in commit
 * order by the sequencer (cluster/storage/migrations/0004_events.sql): the visible positions are
 * always exactly 1..N, never filled in later. So a tail that remembers the last position it
 * emitted and reads "after it" emits every event once, in order, and a subscriber that resumes
 * after the last `seq` it received misses nothing and sees nothing twice.
 *
 * The tail reads when it is woken (a NOTIFY from whichever node positioned events, through
 * {@link EventWakeups}) and otherwise polls: often while nobody wakes it (no listener), rarely
 * while a listener is up (a safety net).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { C2Service } from '../../cluster/domain/index.ts';
import type { EventWakeups } from '../../cluster/events/index.ts';

/** A journal event as the domain returns it. */
export type JournalEvent = Awaited<ReturnType<C2Service['eventsAfter']>>[number];

/** What the tail reads from. */
export type EventSource = Pick<C2Service, 'eventsAfter' | 'latestEventSeq'>;

/** Poll interval while a listener wakes the tail (a safety net only). */
export const LISTENING_POLL_MS = 2000;

/** The last stream position handed out (0 when none): where a live-only stream starts. */
export async function latestEventSeq(source: EventSource): Promise<bigint> {
  return BigInt(await source.latestEventSeq());
}

/**
 * Where a stream starts: after `requested`, or at the current end when none was asked for or
 * when it lies past the newest event (the database was restored from a backup that ends earlier,
 * so those positions will be handed out again: waiting for the sequence to pass it would skip
 * every event until then).
 */
export async function streamStart(
  source: EventSource,
  requested: bigint | null,
): Promise<{ after: bigint; clamped: boolean }> {
  const latest = await latestEventSeq(source);
  if (requested === null) return { after: latest, clamped: false };
  return requested > latest
    ? { after: latest, clamped: true }
    : { after: requested, clamped: false };
}

/** Options of {@link EventTail}. */
export interface EventTailOptions {
  /** Events read per query. Default 500. */
  readonly pageSize?: number;
}

/** Reads the stream after a position, once per {@link EventTail.poll}. */
export class EventTail {
  #position: bigint;
  readonly #pageSize: number;

  /**
   * @param source - the journal
   * @param after - emit events with a position above this
   */
  constructor(
    private readonly source: Pick<EventSource, 'eventsAfter'>,
    after: bigint,
    options: EventTailOptions = {},
  ) {
    this.#position = after;
    this.#pageSize = options.pageSize ?? 500;
  }

  /** Events read per query. */
  get pageSize(): number {
    return this.#pageSize;
  }

  /** The resume position: the last event emitted (or the start position). */
  get position(): string {
    return this.#position.toString();
  }

  /** New events since the last call, each once, in stream order. */
  async poll(): Promise<JournalEvent[]> {
    const rows = await this.source.eventsAfter(this.#position.toString(), this.#pageSize);
    const fresh: JournalEvent[] = [];
    for (const row of rows) {
      const seq = BigInt(row.seq);
      if (seq <= this.#position) continue; // defensive: never emit twice
      this.#position = seq;
      fresh.push(row);
    }
    return fresh;
  }
}

/** Options of {@link pumpEvents}. */
export interface PumpOptions {
  readonly tail: EventTail;
  /** Pause between polls that found nothing new, while no listener wakes the tail. */
  readonly intervalMs: number;
  /** Cluster-wide wake-ups (LISTEN/NOTIFY); without them the pump only polls. */
  readonly wakeups?: EventWakeups;
  /** Pause between polls while the wake-ups are listening. Default {@link LISTENING_POLL_MS}. */
  readonly listeningPollMs?: number;
  /** Stops the pump. */
  readonly signal: AbortSignal;
  /** Receives each batch; the next poll waits for it (back-pressure). */
  deliver(events: JournalEvent[]): Promise<void>;
  /** A failed poll; the pump retries with a growing pause (at most 5 s). */
  onError(err: unknown): void;
}

/** Polls `tail` (at once when woken) until `signal` aborts. Never rejects. */
export async function pumpEvents(options: PumpOptions): Promise<void> {
  const { signal, wakeups } = options;
  // A function, not the property: a check before an await must not narrow the check after it.
  const aborted = (): boolean => signal.aborted;
  let woken = false;
  let wake: (() => void) | undefined;
  const unsubscribe = wakeups?.onWake(() => {
    woken = true;
    wake?.();
  });
  const pause = async (ms: number): Promise<void> => {
    if (woken || aborted()) return;
    const wait = new AbortController();
    const stop = (): void => {
      wait.abort();
    };
    signal.addEventListener('abort', stop, { once: true });
    wake = stop;
    try {
      await sleep(ms, undefined, { signal: wait.signal });
    } catch {
      // woken or aborted
    } finally {
      wake = undefined;
      signal.removeEventListener('abort', stop);
    }
  };
  let failures = 0;
  try {
    while (!aborted()) {
      let full = false;
      woken = false;
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
      if (failures > 0) {
        await pause(Math.min(5000, options.intervalMs * 2 ** failures));
        continue;
      }
      await pause(
        wakeups?.listening === true
          ? (options.listeningPollMs ?? LISTENING_POLL_MS)
          : options.intervalMs,
      );
    }
  } finally {
    unsubscribe?.();
  }
}
