/**
 * Runs delivery in this process: claims outbox rows (R3), sweeps for devices with pending work
 * (so a crash between commit and delivery loses nothing), groups devices into batches and runs
 * {@link syncBatch} on them with bounded concurrency. Devices are claimed cluster-wide inside
 * the batch, so several engines (several nodes) never send to one device at once (R5). The same
 * batch and device logic runs in every deployment mode.
 */
import type { C2Store } from '../storage/index.ts';
import { syncBatch, type BatchSyncDeps } from './batch-sync.ts';
import { ClaimsLapsedError } from './claim-lease.ts';
import type { SyncOutcome } from './device-sync.ts';

/** Options of {@link DeliveryEngine}. */
export interface DeliveryEngineOptions {
  /** Batches running at once. */
  readonly concurrency: number;
  /** Devices per batch. */
  readonly batchSize: number;
  /** Outbox rows claimed per round. */
  readonly claimBatch: number;
  /** How often the outbox is polled when no kick arrives. */
  readonly pollIntervalMs: number;
  /** How often every device is checked for pending work (recovery). */
  readonly sweepIntervalMs: number;
  /** Delay before devices another process was busy with are tried again. */
  readonly busyRetryMs?: number;
  /** Whether this engine claims the outbox (false when a relay feeds it, e.g. from a queue). */
  readonly relayOutbox?: boolean;
  /** Reports unexpected errors (database down...); the engine keeps going. */
  readonly onError: (err: unknown, context: string) => void;
  /** Observes finished per-device syncs, and devices whose command was held back (`deferred`). */
  readonly onSyncDone?: (clientId: string, outcome: SyncOutcome) => void;
  /** Whether the engine can send now (broker connected); sweeps are skipped while not. */
  readonly canSend?: () => boolean;
}

type State = 'created' | 'running' | 'closing' | 'closed';

/** In-process delivery: outbox relay, sweep, and a bounded pool of device batches. */
export class DeliveryEngine {
  #state: State = 'created';
  readonly #queue: string[] = [];
  readonly #queued = new Set<string>();
  readonly #running = new Set<string>();
  /** Devices that got new work while their batch was running: run them again afterwards. */
  readonly #again = new Set<string>();
  readonly #active = new Set<Promise<void>>();
  readonly #timers = new Set<NodeJS.Timeout>();
  #pollTimer: NodeJS.Timeout | undefined;
  #sweepTimer: NodeJS.Timeout | undefined;
  #claiming: Promise<void> | undefined;
  #claimAgain = false;
  #closed: Promise<void> | undefined;

  /**
   * @param store - where the outbox and device state live
   * @param syncDeps - what each batch needs (publisher, retry policy, key vault, claims...)
   */
  constructor(
    private readonly store: C2Store,
    private readonly syncDeps: BatchSyncDeps,
    private readonly options: DeliveryEngineOptions,
  ) {}

  #isRunning(): boolean {
    return this.#state === 'running';
  }

  /** Starts polling and runs a first sweep. */
  start(): void {
    if (this.#state !== 'created') return;
    this.#state = 'running';
    if (this.options.relayOutbox !== false) {
      this.#pollTimer = setInterval(() => {
        this.kick();
      }, this.options.pollIntervalMs);
    }
    this.#sweepTimer = setInterval(() => {
      void this.sweep();
    }, this.options.sweepIntervalMs);
    void this.sweep();
    this.kick();
  }

  /** Tells the engine the outbox has rows (called after a commit). Cheap and idempotent. */
  kick(): void {
    if (!this.#isRunning() || this.options.relayOutbox === false) return;
    // Not connected to the broker: the rows stay in the outbox (claimed now, their devices would
    // only be deferred); the poll claims them once the engine can send again.
    if (this.options.canSend?.() === false) return;
    if (this.#claiming !== undefined) {
      this.#claimAgain = true;
      return;
    }
    this.#claiming = this.#claimLoop().finally(() => {
      this.#claiming = undefined;
    });
  }

  async #claimLoop(): Promise<void> {
    this.#claimAgain = false;
    do {
      try {
        for (;;) {
          const claimed = await this.store.transaction((tx) =>
            tx.journal.claimOutboxRows(this.options.claimBatch),
          );
          this.enqueue(claimed.clientIds);
          if (!claimed.full || !this.#isRunning()) break;
        }
      } catch (err) {
        this.options.onError(err, 'outbox claim');
      }
    } while (this.#takeClaimAgain());
  }

  /** Whether a kick arrived during the last claim round (and resets it). */
  #takeClaimAgain(): boolean {
    const again = this.#claimAgain;
    this.#claimAgain = false;
    return again && this.#isRunning();
  }

  /** Finds every device with pending work (level-triggered recovery after crashes). */
  async sweep(): Promise<number> {
    if (this.options.canSend?.() === false) return 0;
    let after = '0';
    let found = 0;
    try {
      for (;;) {
        const ids = await this.store.read.journal.pendingClients(after, 1000);
        this.enqueue(ids);
        found += ids.length;
        const last = ids.at(-1);
        if (last === undefined || ids.length < 1000 || !this.#isRunning()) break;
        after = last;
      }
    } catch (err) {
      this.options.onError(err, 'sweep');
    }
    return found;
  }

  /** Schedules devices (deduplicated); devices being worked on are run again afterwards. */
  enqueue(clientIds: readonly string[]): void {
    if (!this.#isRunning()) return;
    for (const id of clientIds) {
      if (this.#running.has(id)) this.#again.add(id);
      else if (!this.#queued.has(id)) {
        this.#queued.add(id);
        this.#queue.push(id);
      }
    }
    this.#pump();
  }

  #pump(): void {
    while (
      this.#active.size < this.options.concurrency &&
      this.#queue.length > 0 &&
      this.#isRunning()
    ) {
      const batch = this.#queue.splice(0, this.options.batchSize);
      for (const id of batch) {
        this.#queued.delete(id);
        this.#running.add(id);
      }
      const run = this.#run(batch).finally(() => {
        this.#active.delete(run);
        const again: string[] = [];
        for (const id of batch) {
          this.#running.delete(id);
          if (this.#again.delete(id)) again.push(id);
        }
        this.enqueue(again);
        this.#pump();
      });
      this.#active.add(run);
    }
  }

  async #run(batch: readonly string[]): Promise<void> {
    try {
      const outcome = await syncBatch(this.syncDeps, batch, () => !this.#isRunning());
      for (const [id, result] of outcome.perDevice) this.options.onSyncDone?.(id, result);
      for (const id of outcome.deferred) this.options.onSyncDone?.(id, 'deferred');
      if (outcome.lapsed)
        this.options.onError(new ClaimsLapsedError(), `batch of ${batch.length} devices`);
      if (outcome.busy.length > 0) this.#later(outcome.busy);
    } catch (err) {
      this.options.onError(err, `batch of ${batch.length} devices`);
      this.#later(batch);
    }
  }

  /** Retries devices after a short delay (busy elsewhere, or a batch that failed). */
  #later(ids: readonly string[]): void {
    const timer = setTimeout(() => {
      this.#timers.delete(timer);
      this.enqueue(ids);
    }, this.options.busyRetryMs ?? 1000);
    this.#timers.add(timer);
  }

  /** Resolves when nothing is queued or running (tests, drains). */
  async idle(): Promise<void> {
    while (this.#active.size > 0 || this.#queue.length > 0 || this.#claiming !== undefined) {
      // Only real promises: racing `undefined` resolves at once and would spin without yielding.
      const pending: Array<Promise<unknown>> = [
        ...this.#active,
        new Promise((r) => setTimeout(r, 20)),
      ];
      if (this.#claiming !== undefined) pending.push(this.#claiming);
      await Promise.race(pending);
    }
  }

  /** Stops taking work and waits for running batches to stop at their next step. Idempotent. */
  close(): Promise<void> {
    this.#closed ??= (async () => {
      this.#state = 'closing';
      clearInterval(this.#pollTimer);
      clearInterval(this.#sweepTimer);
      for (const timer of this.#timers) clearTimeout(timer);
      this.#timers.clear();
      this.#queue.length = 0;
      this.#queued.clear();
      await this.#claiming;
      await Promise.allSettled([...this.#active]);
      this.#state = 'closed';
    })();
    return this.#closed;
  }
}
