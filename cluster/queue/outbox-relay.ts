/**
 * Moves committed outbox rows to the device queue (DESIGN R3), safe with several relays: rows are
 * claimed with `FOR UPDATE SKIP LOCKED` inside a transaction that commits only after the jobs
 * were added, so a crash at any point loses nothing (the rows come back) and duplicates nothing
 * that matters (job ids are deterministic, and delivery is level-triggered).
 */
import type { C2Store } from '../storage/index.ts';
import type { DeviceQueue } from './device-queue.ts';

/** Options of {@link OutboxRelay}. */
export interface OutboxRelayOptions {
  readonly batch: number;
  readonly pollIntervalMs: number;
  readonly onError: (err: unknown) => void;
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
        while ((await this.relayOnce()) === this.options.batch && !this.#stopped);
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
    return this.store.transaction(async (tx) => {
      const clients = await tx.journal.claimOutboxRows(this.options.batch);
      if (clients.rows > 0) await this.queue.add(clients.clientIds);
      return clients.rows;
    });
  }

  /** Stops polling and waits for a running round. Idempotent. */
  async close(): Promise<void> {
    this.#stopped = true;
    clearInterval(this.#timer);
    await this.#running;
  }
}
