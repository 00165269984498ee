// The delivery dependencies the worker tests give a DeliveryWorker on a C2 harness (not a test file).
import type { BatchSyncDeps, CommandPublisher } from '../../delivery/index.ts';
import { PgDelivery } from '../../storage/index.ts';
import type { C2Harness } from './c2-harness.ts';

/** Symmetric-key delivery on the harness's store, publishing through `via`, as `owner`. */
export function workerSyncDeps(
  h: C2Harness,
  via: CommandPublisher,
  owner: string,
  claimTtlMs = 30_000,
): BatchSyncDeps {
  return {
    store: h.store,
    sealer: h.service.deps.sealer,
    mode: 'symkey',
    publisher: via,
    clock: Date.now,
    sleep: (ms) => new Promise((r) => setTimeout(r, ms)),
    policy: { maxAttempts: 3, initialBackoffMs: 20, maxBackoffMs: 100, deadlineMs: 10_000 },
    delivery: new PgDelivery(h.schema.pool),
    owner,
    claimTtlMs,
    publishConcurrency: 32,
  };
}
