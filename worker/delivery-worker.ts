/**
 * A delivery worker of the cluster: consumes device-sync jobs from the queue and runs the shared
 * batch delivery ({@link syncBatch}) on them. Devices another process is sending to are queued
 * again with a short delay; a periodic sweep re-queues every device whose delivered state lags
 * its desired state, so nothing is lost when a relay, a job or a worker is.
 */
import { SpanKind, type Tracer } from '@opentelemetry/api';
import { Worker, type ConnectionOptions, type Job } from 'bullmq';
import {
  ClaimsLapsedError,
  recordSyncOutcomes,
  syncBatch,
  type BatchSyncDeps,
} from '../cluster/delivery/index.ts';
import { DEVICE_QUEUE, type DeviceQueue, type SyncJobData } from '../cluster/queue/index.ts';
import type { C2Store } from '../cluster/storage/index.ts';
import { contextFromTraceparent, inSpan, type C2Metrics } from '../cluster/telemetry/index.ts';

/** Delay before a job this worker handed back (no broker connection) is taken again. */
const DISCONNECTED_RETRY_MS = 5_000;

/** Options of {@link DeliveryWorker.start}. */
export interface DeliveryWorkerOptions {
  readonly connection: ConnectionOptions;
  readonly prefix?: string;
  readonly store: C2Store;
  readonly queue: Pick<DeviceQueue, 'add'>;
  readonly syncDeps: BatchSyncDeps;
  /** Jobs (batches) processed at once by this worker. */
  readonly concurrency: number;
  readonly sweepIntervalMs: number;
  readonly busyRetryMs: number;
  readonly onError: (err: unknown, context: string) => void;
  /** Counts deliveries abandoned at the retry cap (attempts are counted by `syncDeps`). */
  readonly metrics?: C2Metrics;
  /** Traces each job (`queue.process`) as a child of the relay that added it (traceparent). */
  readonly tracer?: Tracer;
  /**
   * Whether this process can send now (its broker connection is up). A sweep while it cannot
   * is skipped, and a job is handed back to the queue: every device would be claimed and
   * released unsent (a row write each), for as long as the outage lasts. Default: always.
   */
  readonly canSend?: () => boolean;
}

/** A running delivery worker. */
export class DeliveryWorker {
  #stopping = false;
  /** Devices a job of this process is syncing now. */
  readonly #syncing = new Set<string>();
  #sweepTimer: NodeJS.Timeout | undefined;
  #closed: Promise<void> | undefined;

  private constructor(
    private readonly worker: Worker<SyncJobData>,
    private readonly options: DeliveryWorkerOptions,
  ) {}

  /** Starts consuming and sweeping. */
  static start(options: DeliveryWorkerOptions): DeliveryWorker {
    const holder: { self?: DeliveryWorker } = {};
    const worker = new Worker<SyncJobData>(
      DEVICE_QUEUE,
      async (job: Job<SyncJobData>) => {
        const self = holder.self;
        if (self === undefined) return;
        const tracer = options.tracer;
        if (tracer === undefined) await self.#process(job.data);
        else
          await inSpan(
            tracer,
            'queue.process',
            {
              kind: SpanKind.CONSUMER,
              attributes: {
                'messaging.system': 'bullmq',
                'messaging.destination.name': DEVICE_QUEUE,
                'messaging.batch.message_count': job.data.clientIds.length,
              },
            },
            () => self.#process(job.data),
            contextFromTraceparent(job.data.traceparent),
          );
      },
      {
        connection: options.connection,
        prefix: options.prefix ?? 'e4c2',
        concurrency: options.concurrency,
        autorun: true,
      },
    );
    worker.on('error', (err) => {
      options.onError(err, 'queue worker');
    });
    const self = new DeliveryWorker(worker, options);
    holder.self = self;
    self.#sweepTimer = setInterval(() => {
      void self.sweep();
    }, options.sweepIntervalMs);
    void self.sweep();
    return self;
  }

  async #process(data: SyncJobData): Promise<void> {
    if (this.options.canSend?.() === false) {
      // No broker connection here: handed back for a worker that has one (or for this one, once
      // connected), instead of claiming and releasing every device unsent. Counted as held back
      // at each such check, so the rate shows work waiting for the broker.
      await this.options.queue.add(data.clientIds, DISCONNECTED_RETRY_MS);
      this.options.metrics?.deferred(data.clientIds.length);
      return;
    }
    // Claims name the process, so they do not exclude this process's other jobs (concurrency >
    // 1): a device another job here is syncing is busy, like one claimed elsewhere (R5).
    const mine: string[] = [];
    const busyHere: string[] = [];
    for (const id of new Set(data.clientIds)) (this.#syncing.has(id) ? busyHere : mine).push(id);
    for (const id of mine) this.#syncing.add(id);
    let busy: readonly string[];
    try {
      const outcome = await syncBatch(this.options.syncDeps, mine, () => this.#stopping);
      busy = [...outcome.busy, ...busyHere];
      if (outcome.lapsed)
        this.options.onError(new ClaimsLapsedError(), `job of ${mine.length} devices`);
      if (this.options.metrics !== undefined)
        recordSyncOutcomes(this.options.metrics, [
          ...outcome.perDevice.values(),
          ...outcome.deferred.map(() => 'deferred' as const),
        ]);
    } finally {
      for (const id of mine) this.#syncing.delete(id);
    }
    if (busy.length > 0) await this.options.queue.add(busy, this.options.busyRetryMs);
  }

  /** Queues every device with pending work (recovery). @returns devices found */
  async sweep(): Promise<number> {
    if (this.options.canSend?.() === false) return 0;
    let after = '0';
    let found = 0;
    try {
      for (;;) {
        const ids = await this.options.store.read.journal.pendingClients(after, 1000);
        if (ids.length > 0) await this.options.queue.add(ids);
        found += ids.length;
        const last = ids.at(-1);
        if (last === undefined || ids.length < 1000 || this.#stopping) break;
        after = last;
      }
    } catch (err) {
      this.options.onError(err, 'sweep');
    }
    return found;
  }

  /** Stops taking jobs; running batches stop at their next step. Idempotent. */
  close(): Promise<void> {
    this.#closed ??= (async () => {
      this.#stopping = true;
      clearInterval(this.#sweepTimer);
      await this.worker.close();
    })();
    return this.#closed;
  }
}
