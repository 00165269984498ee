/**
 * Delivery of a batch of devices (DESIGN R4-R7, batched): devices are claimed cluster-wide in one
 * statement (at most one command in flight per device, R5), the common case — a topic key or a
 * revocation to send — is planned, protected and recorded for the whole batch with a handful of
 * round trips, and every other case (resets, identity or C2 keys, peer keys, failures and their
 * capped retries) goes through the per-device {@link syncDevice}. Both paths read the current
 * desired state at send time, protect afresh and record monotonically. The statement that records
 * a round also ends the claims of the devices it leaves with nothing pending, so a fan-out costs
 * four statements per batch: claim, plan, topic key, record-and-release.
 */
import {
  commandId,
  commandKeyForClient,
  CONTROL_TOPIC_PREFIX,
  encodeCommand,
  protectCommand,
  toHex,
} from '../../e4/index.ts';
import { bindings } from '../domain/index.ts';
import type { DeliveryRepository, DeviceBatchRow, TopicDelivery } from '../storage/index.ts';
import {
  syncDevice,
  type DeliveryAttempt,
  type DeviceSyncDeps,
  type SyncOutcome,
} from './device-sync.ts';
import { ClaimLease } from './claim-lease.ts';
import { wasNotSent } from './publisher.ts';

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
  /**
   * Devices another process was sending to, or left unsent because this batch's claims lapsed:
   * try them again a little later.
   */
  readonly busy: readonly string[];
  /** The claims lapsed before the batch was done (see {@link ClaimLease}). */
  readonly lapsed: boolean;
  /** Per-device outcomes of the devices that needed the per-device path. */
  readonly perDevice: ReadonlyMap<string, SyncOutcome>;
  /**
   * Devices whose command the batched path could not hand to the broker (see `wasNotSent`):
   * left pending, nothing counted against their cap; the next sweep (or the publisher's
   * reconnection) sends their work. The per-device path's are `deferred` in {@link perDevice}.
   */
  readonly deferred: readonly string[];
  /**
   * Nothing was sent: the database was restored and not reconciled yet (see
   * `DeliveryRepository.restorePending`). The devices keep their pending work for later sweeps.
   */
  readonly paused?: true;
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

/**
 * Keeps the claims still held alive while work is in progress. Renewal only extends claims this
 * owner holds, so a renewal that races the release of a device never claims it again.
 */
function renewClaims(
  deps: BatchSyncDeps,
  held: ReadonlySet<string>,
  lease: ClaimLease,
): () => void {
  const timer = setInterval(
    () => {
      if (held.size === 0) return;
      const sentAt = lease.now();
      deps.delivery.renew([...held], deps.owner, deps.claimTtlMs).then(
        () => {
          lease.renewed(sentAt);
        },
        () => undefined,
      );
    },
    Math.max(50, Math.floor(deps.claimTtlMs / 3)),
  );
  return () => {
    clearInterval(timer);
  };
}

/**
 * One device's command of the batched path, as planned. Its keys are opened only when it is sent
 * (see {@link CommandKeys.seal}): an unsealed device key lives for the microseconds of one
 * protection instead of for the whole batch, and short-lived buffers are the cheap kind to
 * collect.
 */
interface Planned {
  readonly device: DeviceBatchRow;
  /** The topic key to send; undefined for a revocation. */
  readonly topicKey: Uint8Array | undefined;
  readonly delivery: Omit<TopicDelivery, 'commandId'>;
}

/**
 * A batched send, as observers see it. Its number continues the device's stored streak (a send
 * after a PUBACK timeout whose retry was deferred is a retransmission, and counted as one); the
 * `describe` is built only when an observer reads it.
 */
class AttemptEvent implements DeliveryAttempt {
  readonly clientId: string;
  readonly attempt: number;
  readonly error?: string;
  constructor(
    device: DeviceBatchRow,
    readonly kind: string,
    readonly outcome: 'acked' | 'failed',
    private readonly delivery: Omit<TopicDelivery, 'commandId'>,
    error?: string,
  ) {
    this.clientId = device.clientId;
    this.attempt = device.priorAttempts + 1;
    if (error !== undefined) this.error = error;
  }

  get describe(): string {
    const version = this.delivery.version;
    return `topic ${toHex(this.delivery.topicHash)} ${version === 0 ? 'revoke' : `v${version}`}`;
  }
}

/**
 * The keys a round's commands need: the topic keys (one per topic and version, shared by the
 * round's devices) and, in public-key mode, the C2 private keys. Opened once per round and wiped
 * when its publishes are done.
 */
class CommandKeys {
  readonly #topicKeys = new Map<string, Uint8Array>();
  /**
   * C2 private keys by version, as promises: the round's concurrent sends share one opening
   * (each opening its own would leave copies that are never wiped).
   */
  readonly #c2Private = new Map<number, Promise<Uint8Array>>();
  /** Every C2 private key opened, to wipe. */
  readonly #opened: Uint8Array[] = [];

  private constructor(private readonly deps: BatchSyncDeps) {}

  /** Opens the topic keys the plan's devices need. */
  static async open(deps: BatchSyncDeps, simple: readonly DeviceBatchRow[]): Promise<CommandKeys> {
    const keys = new CommandKeys(deps);
    const pairs = new Map<string, { topicId: string; version: number }>();
    for (const d of simple) {
      const t = d.topic;
      if (t !== null && t.topicId !== null && t.desiredVersion > 0) {
        pairs.set(`${t.topicId}:${t.desiredVersion}`, {
          topicId: t.topicId,
          version: t.desiredVersion,
        });
      }
    }
    try {
      for (const row of await deps.delivery.topicKeys([...pairs.values()])) {
        keys.#topicKeys.set(
          `${row.ownerId}:${row.version}`,
          await deps.sealer.open(row.sealed, bindings.topicKey(row.ownerId, row.version)),
        );
      }
    } catch (err) {
      keys.wipe();
      throw err;
    }
    return keys;
  }

  /** The round's commands; devices whose topic key or identity is missing are left out. */
  plan(simple: readonly DeviceBatchRow[]): Planned[] {
    const planned: Planned[] = [];
    for (const device of simple) {
      const topic = device.topic;
      if (topic === null || device.identity === null) continue;
      const revoke = topic.desiredVersion === 0 || topic.topicId === null;
      let topicKey: Uint8Array | undefined;
      if (!revoke) {
        topicKey = this.#topicKeys.get(`${topic.topicId}:${topic.desiredVersion}`);
        if (topicKey === undefined) continue;
      }
      if (this.deps.mode !== 'symkey' && device.identity.publicKey === null) continue;
      planned.push({
        device,
        topicKey,
        delivery: {
          clientId: device.clientId,
          topicHash: topic.topicHash,
          topicId: revoke ? null : topic.topicId,
          version: revoke ? 0 : topic.desiredVersion,
          epoch: device.deliveryEpoch,
        },
      });
    }
    return planned;
  }

  /**
   * Protects a planned command at send time (R6: the timestamp is the attempt's), opening the
   * device's key for it and wiping the key and the clear command right after.
   */
  async seal(p: Planned): Promise<Uint8Array> {
    const commandKey = await this.#commandKey(p.device);
    const clear =
      p.topicKey === undefined
        ? encodeCommand({ type: 'RemoveTopic', topicHash: p.delivery.topicHash })
        : encodeCommand({ type: 'SetTopicKey', key: p.topicKey, topicHash: p.delivery.topicHash });
    try {
      return protectCommand(clear, commandKey, this.deps.clock);
    } finally {
      clear.fill(0);
      commandKey.fill(0);
    }
  }

  async #commandKey(device: DeviceBatchRow): Promise<Uint8Array> {
    const identity = device.identity;
    if (identity === null) throw new Error('no identity key'); // left out by plan()
    if (this.deps.mode === 'symkey') {
      return this.deps.sealer.open(
        identity.sealed,
        bindings.clientKey(device.clientId, identity.version),
      );
    }
    const c2Version = device.c2KeyVersion ?? 1;
    let c2 = this.#c2Private.get(c2Version);
    if (c2 === undefined) {
      c2 = this.#openC2Key(c2Version);
      this.#c2Private.set(c2Version, c2);
    }
    const c2Private = await c2;
    if (identity.publicKey === null) throw new Error('no public key'); // left out by plan()
    return commandKeyForClient(c2Private, identity.publicKey);
  }

  async #openC2Key(version: number): Promise<Uint8Array> {
    const row = await this.deps.store.read.journal.c2Key(version);
    if (row === undefined) throw new Error(`C2 key version ${version} not found`);
    const key = await this.deps.sealer.open(row.sealedPrivate, bindings.c2Key(version));
    this.#opened.push(key);
    return key;
  }

  /** Wipes every key opened for the round. */
  wipe(): void {
    for (const key of this.#topicKeys.values()) key.fill(0);
    for (const key of this.#opened) key.fill(0);
    this.#topicKeys.clear();
    this.#c2Private.clear();
    this.#opened.length = 0;
  }
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
  // After a restore, the restored desired state can be older than what devices hold: nothing
  // goes out until the reconciliation has rotated every key above what was issued before.
  if (await deps.delivery.restorePending()) {
    return {
      delivered: 0,
      busy: [],
      perDevice: new Map(),
      deferred: [],
      lapsed: false,
      paused: true,
    };
  }
  // The plan is read in a statement of its own, after the claim committed. In one statement with
  // the claim it would read the memberships in a snapshot taken before the claim: a claim that
  // waited for another node's record-and-release (or was slow) could then plan a version older
  // than the one that node just delivered, and send it after the newer one.
  const lease = new ClaimLease(deps.claimTtlMs);
  const claimedIds = await deps.delivery.claim(unique, deps.owner, deps.claimTtlMs);
  // Claims still ours to end: a delivery record ends most of them in its own statement.
  const held = new Set(claimedIds);
  const busy = unique.filter((id) => !held.has(id));
  const stopRenewing = renewClaims(deps, held, lease);
  // Devices planned but not sent because the claims lapsed (another node may have them now).
  const unsent = new Set<string>();
  const perDevice = new Map<string, SyncOutcome>();
  /** Devices whose command never left (the broker link down), and why. */
  const deferred = new Map<string, string>();
  let delivered = 0;
  try {
    let active = claimedIds;
    const slow: string[] = [];
    const failedOnce = new Set<string>();
    for (let round = 0; round < MAX_ROUNDS && active.length > 0 && !shouldStop(); round++) {
      const plan = await deps.delivery.planBatch(active);
      const simple: DeviceBatchRow[] = [];
      for (const device of plan) {
        if (device.otherWork) slow.push(device.clientId);
        else if (device.topic !== null) simple.push(device);
      }
      const keys = await CommandKeys.open(deps, simple);
      const acked: TopicDelivery[] = [];
      try {
        await pool(keys.plan(simple), deps.publishConcurrency, async (p) => {
          const kind = p.delivery.version === 0 ? 'RemoveTopic' : 'SetTopicKey';
          try {
            const wire = await keys.seal(p);
            // Checked after the last await before the publish: between the two, only a pause of
            // the whole process can come (see ClaimLease for that window).
            if (!lease.held) {
              unsent.add(p.device.clientId);
              return;
            }
            const sentId = commandId(wire);
            // The control topic from the hex id the plan read (no bytes to hex per command).
            await deps.publisher.publish(CONTROL_TOPIC_PREFIX + p.device.e4IdHex, wire);
            deps.onAttempt?.(new AttemptEvent(p.device, kind, 'acked', p.delivery));
            acked.push({
              clientId: p.delivery.clientId,
              topicHash: p.delivery.topicHash,
              topicId: p.delivery.topicId,
              version: p.delivery.version,
              epoch: p.delivery.epoch,
              commandId: sentId,
              // Nothing else was pending: the record ends the claim.
              lastPending: p.device.pendingTopics === 1,
            });
          } catch (err) {
            const error = err instanceof Error ? err.message : String(err);
            if (wasNotSent(err)) {
              deferred.set(p.device.clientId, `${kind}: ${error}`); // no attempt: not observed
              return;
            }
            deps.onAttempt?.(new AttemptEvent(p.device, kind, 'failed', p.delivery, error));
            // Retries with backoff, the cap and failure reporting live in the per-device path.
            slow.push(p.device.clientId);
            failedOnce.add(p.device.clientId);
          }
        });
      } finally {
        keys.wipe();
      }
      // One statement records the round and ends the claims of the devices it leaves with
      // nothing pending; the others (more work, or a delivery not recorded) plan another round.
      const { recorded, released } = await deps.delivery.recordAndRelease(acked, deps.owner);
      delivered += recorded;
      for (const id of released) held.delete(id);
      active = acked.map((a) => a.clientId).filter((id) => held.has(id));
      if (!lease.held) break;
    }
    if (deferred.size > 0) await deps.delivery.markDeferred(deferred);
    slow.push(...active); // still pending after the last round
    const slowUnique = [...new Set(slow)];
    // The per-device path stops before a publish once the claims lapse, as at shutdown.
    const stopOrLapsed = (): boolean => shouldStop() || !lease.held;
    await pool(slowUnique, Math.max(1, Math.min(64, deps.publishConcurrency)), async (id) => {
      if (!lease.held) unsent.add(id);
      if (stopOrLapsed()) return;
      const outcome = await syncDevice(deps, id, stopOrLapsed, failedOnce.has(id) ? 1 : 0);
      if (outcome === 'stopped' && !lease.held) unsent.add(id);
      else perDevice.set(id, outcome);
    });
  } finally {
    stopRenewing();
    if (held.size > 0) await deps.delivery.release([...held], deps.owner).catch(() => undefined);
  }
  return {
    delivered,
    busy: [...busy, ...unsent],
    perDevice,
    deferred: [...deferred.keys()],
    lapsed: !lease.held,
  };
}
