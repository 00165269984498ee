/**
 * Runs device syncs in this process: claims outbox rows (R3), sweeps for devices with pending
 * work (so a crash between commit and delivery loses nothing), keeps at most one sync per device
 * (R5 within a process; the cluster-wide guard comes with the HA coordination) and bounds
 * concurrency. The same {@link syncDevice} logic runs in every deployment mode.
 */
import type { C2Store } from '../storage/index.ts';
import { syncDevice, type DeviceSyncDeps, type SyncOutcome } from './device-sync.ts';

/** Options of {@link DeliveryEngine}. */
export interface DeliveryEngineOptions {
  /** Device syncs running at once. */
  readonly concurrency: number;
  /** Outbox rows claimed per round. */
  readonly claimBatch: number;
  /** How often the outbox is polled when no kick arrives, and the pending-work sweep period. */
  readonly pollIntervalMs: number;
  readonly sweepIntervalMs: number;
  /** Reports unexpected errors (database down...); the engine keeps going. */
  readonly onError: (err: unknown, context: string) => void;
  /** Observes finished syncs. */
  readonly onSyncDone?: (clientId: string, outcome: SyncOutcome) => void;
}

type State = 'created' | 'running' | 'closing' | 'closed';

/** In-process delivery: outbox relay, sweep, and a bounded pool of device syncs. */
export class DeliveryEngine {
  #state: State = 'created';
  readonly #queue: string[] = [];
  readonly #queued = new Set<string>();
  readonly #running = new Set<string>();
  /** Devices that got new work while their sync was running: run them again afterwards. */
  readonly #again = new Set<string>();
  readonly #active = new Set<Promise<void>>();
  #pollTimer: NodeJS.Timeout | undefined;
  #sweepTimer: NodeJS.Timeout | undefined;
  #claiming: Promise<void> | undefined;
  #claimAgain = false;
  #closed: Promise<void> | undefined;

  /**
   * @param store - where the outbox and device state live
   * @param syncDeps - what each device sync needs (publisher, retry policy, key vault...)
   */
  constructor(
    private readonly store: C2Store,
    private readonly syncDeps: DeviceSyncDeps,
    private readonly options: DeliveryEngineOptions,
  ) {}

  #isRunning(): boolean {
    return this.#state === 'running';
  }

  /** Starts polling and runs a first sweep. */
  start(): void {
    if (this.#state !== 'created') return;
    this.#state = 'running';
    this.#pollTimer = setInterval(() => {
      this.kick();
    }, this.options.pollIntervalMs);
    this.#sweepTimer = setInterval(() => {
      void this.sweep();
    }, this.options.sweepIntervalMs);
    void this.sweep();
    this.kick();
  }

  /** Tells the engine the outbox has rows (called after a commit). Cheap and idempotent. */
  kick(): void {
    if (!this.#isRunning()) return;
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
          const clients = await this.store.transaction((tx) =>
            tx.journal.claimOutbox(this.options.claimBatch),
          );
          for (const id of clients) this.enqueue(id);
          if (clients.length < this.options.claimBatch || !this.#isRunning()) break;
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
    let after = '0';
    let found = 0;
    try {
      for (;;) {
        const ids = await this.store.read.journal.pendingClients(after, 1000);
        for (const id of ids) this.enqueue(id);
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

  /** Schedules a sync of one device (deduplicated). */
  enqueue(clientId: string): void {
    if (!this.#isRunning()) return;
    if (this.#running.has(clientId)) {
      this.#again.add(clientId);
      return;
    }
    if (this.#queued.has(clientId)) return;
    this.#queued.add(clientId);
    this.#queue.push(clientId);
    this.#pump();
  }

  #pump(): void {
    while (
      this.#active.size < this.options.concurrency &&
      this.#queue.length > 0 &&
      this.#state === 'running'
    ) {
      const clientId = this.#queue.shift();
      if (clientId === undefined) break;
      this.#queued.delete(clientId);
      this.#running.add(clientId);
      const run = this.#run(clientId).finally(() => {
        this.#active.delete(run);
        this.#running.delete(clientId);
        if (this.#again.delete(clientId)) this.enqueue(clientId);
        this.#pump();
      });
      this.#active.add(run);
    }
  }

  async #run(clientId: string): Promise<void> {
    try {
      const outcome = await syncDevice(this.syncDeps, clientId, () => !this.#isRunning());
      this.options.onSyncDone?.(clientId, outcome);
    } catch (err) {
      this.options.onError(err, `sync of client ${clientId}`);
    }
  }

  /** Resolves when nothing is queued or running (tests, drains). */
  async idle(): Promise<void> {
    while (this.#active.size > 0 || this.#queue.length > 0 || this.#claiming !== undefined) {
      await Promise.race([...this.#active, this.#claiming, new Promise((r) => setTimeout(r, 20))]);
    }
  }

  /** Stops taking work and waits for running syncs to stop at their next step. Idempotent. */
  close(): Promise<void> {
    this.#closed ??= (async () => {
      this.#state = 'closing';
      clearInterval(this.#pollTimer);
      clearInterval(this.#sweepTimer);
      this.#queue.length = 0;
      this.#queued.clear();
      await this.#claiming;
      await Promise.allSettled([...this.#active]);
      this.#state = 'closed';
    })();
    return this.#closed;
  }
}
