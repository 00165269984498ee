/**
 * Delivery of a batch of devices (DESIGN R4-R7, batched): devices are claimed cluster-wide in one
 * statement (at most one command in flight per device, R5), the common case — a topic key or a
 * revocation to send — is planned, protected and recorded for the whole batch with a handful of
 * round trips, and every other case (resets, identity or C2 keys, peer keys, failures and their
 * capped retries) goes through the per-device {@link syncDevice}. Both paths read the current
 * desired state at send time, protect afresh and record monotonically.
 */
import {
  commandId,
  commandKeyForClient,
  controlTopic,
  encodeCommand,
  protectCommand,
  toHex,
} from '../../e4/index.ts';
import { bindings } from '../domain/index.ts';
import type { DeliveryRepository, DeviceBatchRow, TopicDelivery } from '../storage/index.ts';
import { syncDevice, type DeviceSyncDeps, type SyncOutcome } from './device-sync.ts';

/** What a batch sync needs beyond a device sync. */
export interface BatchSyncDeps extends DeviceSyncDeps {
  readonly delivery: DeliveryRepository;
  /** Unique per process: claims name their owner. */
  readonly owner: string;
  /** How long a claim lasts without renewal; renewed while the batch works. */
  readonly claimTtlMs: number;
  /** Publishes awaiting their PUBACK at once (one per device at most). */
  readonly publishConcurrency: number;
}

/** What happened to a batch. */
export interface BatchOutcome {
  /** Commands delivered by the batched path. */
  readonly delivered: number;
  /** Devices another process was sending to: try them again a little later. */
  readonly busy: readonly string[];
  /** Per-device outcomes of the devices that needed the per-device path. */
  readonly perDevice: ReadonlyMap<string, SyncOutcome>;
}

/** Rounds of batched planning before leftovers go to the per-device path. */
const MAX_ROUNDS = 16;

/** Runs `tasks` with at most `limit` at once. */
async function pool<T>(
  items: readonly T[],
  limit: number,
  task: (item: T) => Promise<void>,
): Promise<void> {
  let next = 0;
  const runners = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) {
      const item = items[next++] as T;
      await task(item);
    }
  });
  await Promise.all(runners);
}

/** Keeps a set of claims alive while work is in progress. */
function renewClaims(deps: BatchSyncDeps, held: Set<string>): () => void {
  const timer = setInterval(
    () => {
      void deps.delivery.claim([...held], deps.owner, deps.claimTtlMs).catch(() => undefined);
    },
    Math.max(50, Math.floor(deps.claimTtlMs / 3)),
  );
  return () => {
    clearInterval(timer);
  };
}

interface Prepared {
  readonly device: DeviceBatchRow;
  readonly wire: () => Uint8Array;
  readonly delivery: Omit<TopicDelivery, 'commandId'>;
}

async function prepare(
  deps: BatchSyncDeps,
  simple: readonly DeviceBatchRow[],
): Promise<Prepared[]> {
  const topicPairs = new Map<string, { topicId: string; version: number }>();
  for (const d of simple) {
    const t = d.topic;
    if (t !== null && t.topicId !== null && t.desiredVersion > 0) {
      topicPairs.set(`${t.topicId}:${t.desiredVersion}`, {
        topicId: t.topicId,
        version: t.desiredVersion,
      });
    }
  }
  const topicKeys = new Map<string, Uint8Array>();
  for (const row of await deps.delivery.topicKeys([...topicPairs.values()])) {
    topicKeys.set(
      `${row.ownerId}:${row.version}`,
      await deps.sealer.open(row.sealed, bindings.topicKey(row.ownerId, row.version)),
    );
  }
  const identities = await deps.delivery.clientKeys(
    simple.map((d) => ({ clientId: d.clientId, version: d.deliveredKeyVersion })),
  );
  const identityOf = new Map(identities.map((k) => [k.ownerId, k]));
  const c2Private = new Map<number, Uint8Array>();
  const prepared: Prepared[] = [];
  for (const device of simple) {
    const topic = device.topic;
    const identity = identityOf.get(device.clientId);
    if (topic === null || identity === undefined) continue;
    let commandKey: Uint8Array;
    if (deps.mode === 'symkey') {
      commandKey = await deps.sealer.open(
        identity.sealed,
        bindings.clientKey(device.clientId, identity.version),
      );
    } else {
      const c2Version = device.c2KeyVersion ?? 1;
      let c2 = c2Private.get(c2Version);
      if (c2 === undefined) {
        const row = await deps.store.read.journal.c2Key(c2Version);
        if (row === undefined) continue;
        c2 = await deps.sealer.open(row.sealedPrivate, bindings.c2Key(c2Version));
        c2Private.set(c2Version, c2);
      }
      if (identity.publicKey === null) continue;
      commandKey = commandKeyForClient(c2, identity.publicKey);
    }
    const revoke = topic.desiredVersion === 0 || topic.topicId === null;
    let clear: Uint8Array;
    if (revoke) {
      clear = encodeCommand({ type: 'RemoveTopic', topicHash: topic.topicHash });
    } else {
      const key = topicKeys.get(`${topic.topicId}:${topic.desiredVersion}`);
      if (key === undefined) continue;
      clear = encodeCommand({ type: 'SetTopicKey', key, topicHash: topic.topicHash });
    }
    const key = commandKey;
    prepared.push({
      device,
      // Protected at send time, never earlier (R6): the timestamp is the moment of the attempt.
      wire: () => {
        const wire = protectCommand(clear, key, deps.clock);
        clear.fill(0);
        key.fill(0);
        return wire;
      },
      delivery: {
        clientId: device.clientId,
        topicHash: topic.topicHash,
        topicId: revoke ? null : topic.topicId,
        version: revoke ? 0 : topic.desiredVersion,
        epoch: device.deliveryEpoch,
      },
    });
  }
  for (const key of topicKeys.values()) key.fill(0);
  for (const key of c2Private.values()) key.fill(0);
  return prepared;
}

/**
 * Brings a batch of devices to their desired state.
 * @param shouldStop - checked between rounds, for graceful shutdown
 */
export async function syncBatch(
  deps: BatchSyncDeps,
  clientIds: readonly string[],
  shouldStop: () => boolean = () => false,
): Promise<BatchOutcome> {
  const unique = [...new Set(clientIds)];
  const claimed = new Set(await deps.delivery.claim(unique, deps.owner, deps.claimTtlMs));
  const busy = unique.filter((id) => !claimed.has(id));
  const stopRenewing = renewClaims(deps, claimed);
  const perDevice = new Map<string, SyncOutcome>();
  let delivered = 0;
  try {
    let active = [...claimed];
    const slow: string[] = [];
    const failedOnce = new Set<string>();
    for (let round = 0; round < MAX_ROUNDS && active.length > 0 && !shouldStop(); round++) {
      const plan = await deps.delivery.planBatch(active);
      const simple: DeviceBatchRow[] = [];
      for (const device of plan) {
        if (device.otherWork) slow.push(device.clientId);
        else if (device.topic !== null) simple.push(device);
      }
      const prepared = await prepare(deps, simple);
      const acked: TopicDelivery[] = [];
      const next: string[] = [];
      await pool(prepared, deps.publishConcurrency, async (p) => {
        const describe = `topic ${toHex(p.delivery.topicHash)} ${p.delivery.version === 0 ? 'revoke' : `v${p.delivery.version}`}`;
        const kind = p.delivery.version === 0 ? 'RemoveTopic' : 'SetTopicKey';
        try {
          const wire = p.wire();
          const sentId = commandId(wire);
          await deps.publisher.publish(controlTopic(p.device.e4Id), wire);
          deps.onAttempt?.({
            clientId: p.device.clientId,
            kind,
            describe,
            attempt: 1,
            outcome: 'acked',
          });
          acked.push({ ...p.delivery, commandId: sentId });
          next.push(p.device.clientId);
        } catch (err) {
          const error = err instanceof Error ? err.message : String(err);
          deps.onAttempt?.({
            clientId: p.device.clientId,
            kind,
            describe,
            attempt: 1,
            outcome: 'failed',
            error,
          });
          // Retries with backoff, the cap and failure reporting live in the per-device path.
          slow.push(p.device.clientId);
          failedOnce.add(p.device.clientId);
        }
      });
      delivered += await deps.delivery.recordTopicDeliveries(acked);
      active = next;
    }
    slow.push(...active); // still pending after the last round
    const slowUnique = [...new Set(slow)];
    await pool(slowUnique, Math.max(1, Math.min(64, deps.publishConcurrency)), async (id) => {
      if (shouldStop()) return;
      perDevice.set(id, await syncDevice(deps, id, shouldStop, failedOnce.has(id) ? 1 : 0));
    });
  } finally {
    stopRenewing();
    await deps.delivery.release([...claimed], deps.owner).catch(() => undefined);
  }
  return { delivered, busy, perDevice };
}
