/**
 * The BullMQ queue between the outbox relay (API nodes) and the delivery workers (DESIGN R3).
 * Jobs carry device ids only — never keys, never protected bytes (R8): a worker reads the current
 * desired state and protects at send time (R4, R6).
 */
import { createHash } from 'node:crypto';
import { Queue, type ConnectionOptions } from 'bullmq';

/** Name of the queue of device syncs. */
export const DEVICE_QUEUE = 'e4c2-device-sync';

/** Job name. */
export const SYNC_JOB = 'sync';

/** Most device ids in one job (a batch for the worker). */
export const MAX_IDS_PER_JOB = 500;

/** Job data: ids only. */
export interface SyncJobData {
  readonly clientIds: readonly string[];
}

/**
 * A deterministic job id for a set of devices: re-adding the same batch (a relay retried after a
 * crash between adding and committing) is a no-op while the first job is waiting.
 */
export function jobIdFor(clientIds: readonly string[]): string {
  const sorted = [...clientIds].sort();
  return `sync-${createHash('sha256').update(sorted.join(',')).digest('hex').slice(0, 32)}`;
}

/** Producer side of the device queue. */
export class DeviceQueue {
  #closed: Promise<void> | undefined;

  private constructor(private readonly queue: Queue) {}

  /** @param connection - ioredis options or client of the queue Redis (noeviction) */
  static create(connection: ConnectionOptions, prefix = 'e4c2'): DeviceQueue {
    return new DeviceQueue(
      new Queue(DEVICE_QUEUE, {
        connection,
        prefix,
        defaultJobOptions: {
          // Retries of a whole batch are the worker's job (per device, capped); a job that throws
          // (database down) is retried a few times and the sweep covers the rest.
          attempts: 5,
          backoff: { type: 'exponential', delay: 1000 },
          removeOnComplete: true,
          removeOnFail: 1000,
        },
      }),
    );
  }

  /**
   * Enqueues devices in jobs of at most {@link MAX_IDS_PER_JOB}, one Redis round trip for all.
   * @param delayMs - delay before the jobs may run (devices busy elsewhere)
   */
  async add(clientIds: readonly string[], delayMs = 0): Promise<number> {
    const unique = [...new Set(clientIds)];
    const jobs = [];
    for (let i = 0; i < unique.length; i += MAX_IDS_PER_JOB) {
      const ids = unique.slice(i, i + MAX_IDS_PER_JOB);
      jobs.push({
        name: SYNC_JOB,
        data: { clientIds: ids } satisfies SyncJobData,
        opts: { jobId: jobIdFor(ids), ...(delayMs > 0 ? { delay: delayMs } : {}) },
      });
    }
    if (jobs.length > 0) await this.queue.addBulk(jobs);
    return jobs.length;
  }

  /** Jobs by state, for metrics and readiness. */
  counts(): Promise<Record<string, number>> {
    return this.queue.getJobCounts('waiting', 'active', 'delayed', 'failed', 'completed');
  }

  /** Closes the producer; idempotent. */
  close(): Promise<void> {
    this.#closed ??= this.queue.close();
    return this.#closed;
  }
}
