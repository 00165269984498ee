/**
 * The BullMQ queue between the outbox relay (API nodes) and the delivery workers (DESIGN R3).
 * Jobs carry device ids only — never keys, never protected bytes (R8): a worker reads the current
 * desired state and protects at send time (R4, R6).
 */
import { createHash, randomBytes } from 'node:crypto';
import { Queue, type ConnectionOptions } from 'bullmq';
import { C2Error } from '../errors.ts';
import { currentTraceparent } from '../telemetry/tracing.ts';

/** Name of the queue of device syncs. */
export const DEVICE_QUEUE = 'e4c2-device-sync';

/** Job name. */
export const SYNC_JOB = 'sync';

/** Most device ids in one job (a batch for the worker). */
export const MAX_IDS_PER_JOB = 500;

/** Numbered variants of a job id tried before a random one (see {@link DeviceQueue.add}). */
const JOB_ID_SLOTS = 4;

/**
 * States in which a job with the same id will still read the devices' state after an add, so
 * merging into it loses nothing. `active` may be past its last read (or held by a dead worker
 * until BullMQ's stalled-job check), and `failed` jobs are kept and never run again.
 */
const MERGEABLE = new Set(['waiting', 'delayed', 'prioritized', 'waiting-children', 'unknown']);

/** Job data: ids only, plus the W3C trace context of the work that added the job. */
export interface SyncJobData {
  readonly clientIds: readonly string[];
  /**
   * `00-<trace id>-<span id>-<flags>` of the span that enqueued the job (the outbox relay of a
   * rotation), so the job's span joins the rotation's trace. Ids only, never a secret (R8).
   */
  readonly traceparent?: string;
}

/**
 * A deterministic job id for a set of devices: re-adding the same batch (a relay retried after a
 * crash between adding and committing) is a no-op while the first job is waiting. The queue adds
 * under this id, or under a numbered variant of it when a job with this id has already started
 * or failed (see {@link DeviceQueue.add}).
 */
export function jobIdFor(clientIds: readonly string[]): string {
  const sorted = [...clientIds].sort();
  return `sync-${createHash('sha256').update(sorted.join(',')).digest('hex').slice(0, 32)}`;
}

/** Producer side of the device queue. */
export class DeviceQueue {
  #closed: Promise<void> | undefined;

  private constructor(private readonly queue: Queue) {}

  /**
   * @param connection - ioredis options or client of the queue Redis (noeviction)
   * @param onError - connection errors (without a listener, BullMQ prints each to stderr)
   */
  static create(
    connection: ConnectionOptions,
    prefix = 'e4c2',
    onError: (err: Error) => void = () => undefined,
  ): DeviceQueue {
    const queue = new Queue(DEVICE_QUEUE, {
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
    });
    queue.on('error', onError);
    return new DeviceQueue(queue);
  }

  /**
   * Enqueues devices in jobs of at most {@link MAX_IDS_PER_JOB}: the job ids are checked in
   * parallel, then every job is added in one round trip.
   * @param delayMs - delay before the jobs may run (devices busy elsewhere)
   * @throws C2Error `C2_UNAVAILABLE` when Redis does not take the jobs (down, with a connection
   *   that fails while down: see `connectQueueProducer` in bin/node-parts.ts). Some of the jobs
   *   may have been added before it failed; the caller tries again later (the relay's rows stay
   *   in the outbox), and jobs already added are found by their ids ({@link jobIdFor})
   */
  async add(clientIds: readonly string[], delayMs = 0): Promise<number> {
    try {
      return await this.#add(clientIds, delayMs);
    } catch (cause) {
      const reason = cause instanceof Error ? cause.message : String(cause);
      throw new C2Error(
        'C2_UNAVAILABLE',
        `the device queue's Redis did not take the jobs: ${reason}`,
        { cause },
      );
    }
  }

  async #add(clientIds: readonly string[], delayMs: number): Promise<number> {
    const unique = [...new Set(clientIds)];
    const traceparent = currentTraceparent();
    const batches: string[][] = [];
    for (let i = 0; i < unique.length; i += MAX_IDS_PER_JOB)
      batches.push(unique.slice(i, i + MAX_IDS_PER_JOB));
    const jobs = await Promise.all(
      batches.map(async (ids) => ({
        name: SYNC_JOB,
        data: {
          clientIds: ids,
          ...(traceparent === undefined ? {} : { traceparent }),
        } satisfies SyncJobData,
        opts: { jobId: await this.#jobId(ids), ...(delayMs > 0 ? { delay: delayMs } : {}) },
      })),
    );
    if (jobs.length > 0) await this.queue.addBulk(jobs);
    return jobs.length;
  }

  /**
   * The id to add a batch under: {@link jobIdFor}, or its first numbered variant whose job (if
   * any) has not started yet. BullMQ ignores an add whose id exists in any state, so adding under
   * the id of an active or failed job would drop the work: after a worker dies mid-job, every
   * later add (relay, sweep, busy retry) of the same devices would wait for BullMQ's stalled-job
   * recovery (30-60 s, not the 15 s claim TTL), and after a job failed, for ever. A job that
   * becomes active between this check and the add starts after the caller's commit, so it reads
   * the new state.
   */
  async #jobId(ids: readonly string[]): Promise<string> {
    const base = jobIdFor(ids);
    for (let slot = 0; slot < JOB_ID_SLOTS; slot++) {
      const id = slot === 0 ? base : `${base}-${slot}`;
      if (MERGEABLE.has(await this.queue.getJobState(id))) return id;
    }
    return `${base}-${randomBytes(8).toString('hex')}`;
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
