/**
 * Moves committed outbox rows to the device queue (DESIGN R3), safe with several relays: rows are
 * claimed with `FOR UPDATE SKIP LOCKED` inside a transaction that commits only after the jobs
 * were added, so a crash at any point loses nothing (the rows come back) and duplicates nothing
 * that matters (job ids are deterministic, and delivery is level-triggered).
 */
import { context, SpanKind, trace, type Tracer } from '@opentelemetry/api';
import type { C2Store } from '../storage/index.ts';
import type { C2Metrics } from '../telemetry/metrics.ts';
import { inSpan } from '../telemetry/tracing.ts';
import type { DeviceQueue } from './device-queue.ts';

/** Options of {@link OutboxRelay}. */
export interface OutboxRelayOptions {
  readonly batch: number;
  readonly pollIntervalMs: number;
  readonly onError: (err: unknown) => void;
  /** Counts relayed rows. */
  readonly metrics?: C2Metrics;
  /**
   * Traces each round (`outbox.relay`). A round kicked by a commit runs in the context of that
   * request, so it joins the rotation's trace, and the jobs it adds carry it on (traceparent).
   */
  readonly tracer?: Tracer;
}

/** The outbox relay of an API node. */
export class OutboxRelay {
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<void> | undefined;
  #again = false;
  #stopped = false;

  constructor(
    private readonly store: C2Store,
    private readonly queue: Pick<DeviceQueue, 'add'>,
    private readonly options: OutboxRelayOptions,
  ) {}

  /** Starts polling. */
  start(): void {
    this.#timer = setInterval(() => {
      this.kick();
    }, this.options.pollIntervalMs);
    this.kick();
  }

  /** Relays now (after a commit); coalesces concurrent kicks. */
  kick(): void {
    if (this.#stopped) return;
    if (this.#running !== undefined) {
      this.#again = true;
      return;
    }
    this.#running = this.#loop().finally(() => {
      this.#running = undefined;
    });
  }

  async #loop(): Promise<void> {
    do {
      this.#again = false;
      try {
        while (!this.#stopped && (await this.#relayRound()).full);
      } catch (err) {
        this.options.onError(err);
      }
    } while (this.#takeAgain());
  }

  #takeAgain(): boolean {
    return this.#again && !this.#stopped;
  }

  /** One round: claims up to a batch of rows and enqueues their devices. @returns rows relayed */
  async relayOnce(): Promise<number> {
    return (await this.#relayRound()).rows;
  }

  /** A round; `full` when the claim reached its limit (more may be waiting). */
  async #relayRound(): Promise<{ rows: number; full: boolean }> {
    const tracer = this.options.tracer;
    // Rounds of the poll timer have no parent: tracing them would make a root trace per second.
    const round =
      tracer === undefined || trace.getSpanContext(context.active()) === undefined
        ? await this.#claimAndAdd()
        : await inSpan(tracer, 'outbox.relay', { kind: SpanKind.INTERNAL }, async (span) => {
            const relayed = await this.#claimAndAdd();
            span.setAttribute('e4c2.outbox.rows', relayed.rows);
            return relayed;
          });
    this.options.metrics?.outboxRelayed(round.rows);
    return round;
  }

  #claimAndAdd(): Promise<{ rows: number; full: boolean }> {
    return this.store.transaction(async (tx) => {
      const claimed = await tx.journal.claimOutboxRows(this.options.batch);
      if (claimed.clientIds.length > 0) await this.queue.add(claimed.clientIds);
      return { rows: claimed.rows, full: claimed.full };
    });
  }

  /** Stops polling and waits for a running round. Idempotent. */
  async close(): Promise<void> {
    this.#stopped = true;
    clearInterval(this.#timer);
    await this.#running;
  }
}
