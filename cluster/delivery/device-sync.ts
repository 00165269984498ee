/**
 * Brings one device to its desired state, one command at a time (DESIGN R4-R7): plan from the
 * current state, protect afresh, publish and await the PUBACK, record delivery monotonically,
 * repeat. Failed attempts are retried within the retry policy; when it is exhausted the device
 * is marked failed (visible through the API) until new work, a resync or the device is seen. A
 * publish that never left (the C2's own link to the broker down) is no attempt: the device is
 * left pending for the sweep.
 */
import {
  commandId,
  controlTopic,
  E4Error,
  E4ErrorCode,
  protectCommand,
  type Clock,
} from '../../e4/index.ts';
import { C2Error } from '../errors.ts';
import type { C2Store } from '../storage/index.ts';
import { planNextCommand, type PlanDeps, type PlanResult } from './next-command.ts';
import { wasNotSent, type CommandPublisher } from './publisher.ts';
import { backoffDelay, mayRetry, type RetryPolicy } from './retry-policy.ts';

/** What a device sync needs. */
export interface DeviceSyncDeps extends PlanDeps {
  readonly store: C2Store;
  readonly publisher: CommandPublisher;
  readonly policy: RetryPolicy;
  readonly clock: Clock;
  readonly sleep: (ms: number) => Promise<void>;
  /** Observes every attempt (metrics, tests, the chaos recorder). Never receives key material. */
  readonly onAttempt?: (event: DeliveryAttempt) => void;
}

/** One publish attempt, as observers see it. */
export interface DeliveryAttempt {
  readonly clientId: string;
  readonly kind: string;
  readonly describe: string;
  readonly attempt: number;
  readonly outcome: 'acked' | 'failed';
  readonly error?: string;
}

/**
 * How a sync ended. `deferred`: a command could not be handed to the broker (see `wasNotSent`);
 * the device keeps its pending work for the next sweep, with nothing counted against its cap.
 */
export type SyncOutcome = 'idle' | 'failed' | 'removed' | 'stopped' | 'deferred';

/**
 * Runs until the device has everything, or its retries are exhausted.
 * @param shouldStop - checked between steps and before each publish (graceful shutdown, a batch
 *   whose claims lapsed)
 */
export async function syncDevice(
  deps: DeviceSyncDeps,
  clientId: string,
  shouldStop: () => boolean = () => false,
  priorFailures = 0,
): Promise<SyncOutcome> {
  // Attempts already made count against the cap (I7): elsewhere (the batched path), and in
  // earlier syncs of the same streak, kept in the row while it is pending. A sync that ended in a
  // deferral (no broker connection) keeps them, so that a link whose PUBACKs never come (each
  // timeout resets the connection, so the next try is deferred) cannot retry for ever.
  const stored = await deps.store.read.clients.byId(clientId);
  let failures = priorFailures + (stored?.syncState === 'pending' ? stored.syncAttempts : 0);
  let streakStart = deps.clock();
  let sent = 0;
  /** Marks the device failed at the cap (I7) and reports it. */
  const giveUp = async (
    error: string,
    clientName: string,
    command: string,
    /** What the command was to achieve (`topic <hash> v4`): which rollout the failure is of. */
    target?: string,
  ): Promise<void> => {
    await deps.store.transaction(async (tx) => {
      await tx.clients.setDeliverySync(clientId, { state: 'failed', attempts: failures, error });
      await tx.journal.event({
        type: 'delivery.failed',
        clientName,
        details: { command, attempts: failures, ...(target === undefined ? {} : { target }) },
      });
    });
  };
  /**
   * Counts a failed attempt against the cap (I7): marks the device failed and reports it when the
   * cap is reached, else waits the backoff. @returns true when the device is now failed
   */
  const failed = async (
    kind: string,
    error: string,
    clientName: string,
    target?: string,
  ): Promise<boolean> => {
    failures++;
    const delay = backoffDelay(deps.policy, failures);
    if (!mayRetry(deps.policy, failures, streakStart, deps.clock(), delay)) {
      await giveUp(`${kind}: ${error}`, clientName, kind, target);
      return true;
    }
    await deps.store.read.clients.setDeliverySync(clientId, {
      state: 'pending',
      attempts: failures,
      error: `${kind}: ${error}`,
    });
    await deps.sleep(delay);
    return false;
  };
  // The streak reached the cap already (the batched path's attempt was its last): no more.
  if (stored !== undefined && failures >= deps.policy.maxAttempts) {
    const error = stored.syncError ?? 'the attempt cap was reached';
    await giveUp(error, stored.name, error.split(':')[0] ?? 'unknown');
    return 'failed';
  }
  if (failures > 0) {
    await deps.sleep(backoffDelay(deps.policy, failures));
    streakStart = deps.clock();
  }
  for (;;) {
    if (shouldStop()) return 'stopped';
    let plan: PlanResult;
    try {
      plan = await planNextCommand(deps, deps.store.read, clientId);
    } catch (err) {
      // A key that does not open (tampered at rest, or sealed under a data key this node cannot
      // unwrap), or a device public key that gives no command key (a low-order point stored by
      // an earlier release), is this device's failure, capped and reported like a lost PUBACK;
      // thrown, it would fail the whole batch and be retried every second, for ever.
      const unusableKey = E4Error.is(err) && err.code === E4ErrorCode.InvalidKey;
      if (!C2Error.is(err, 'C2_KEY_VAULT') && !unusableKey) throw err;
      const client = await deps.store.read.clients.byId(clientId);
      if (client === undefined) return 'idle';
      deps.onAttempt?.({
        clientId,
        kind: 'plan',
        describe: 'open the keys of the next command',
        attempt: failures + 1,
        outcome: 'failed',
        error: err.message,
      });
      if (await failed('plan', err.message, client.name)) return 'failed';
      continue;
    }
    if (plan.kind === 'idle') {
      if (sent > 0 || failures > 0)
        await deps.store.read.clients.setDeliverySync(clientId, {
          state: 'idle',
          attempts: 0,
          error: null,
        });
      return 'idle';
    }
    if (plan.kind === 'remove') {
      await deps.store.transaction(async (tx) => {
        const client = await tx.clients.byId(clientId, true);
        if (client?.status === 'removing' && (await tx.peers.nextCommand(clientId)) === undefined)
          await tx.clients.delete(clientId);
      });
      return 'removed';
    }
    if (plan.kind === 'record') {
      await deps.store.transaction(plan.record);
      continue;
    }
    const { command } = plan;
    const client = await deps.store.read.clients.byId(clientId);
    if (client === undefined) return 'idle';
    const attempt = failures + 1;
    // Planning takes a round trip or more: a stop (or a batch's lapsed claims) that came
    // meanwhile must keep this command from leaving, not only the next one.
    if (shouldStop()) {
      command.clear.fill(0);
      command.commandKey.fill(0);
      return 'stopped';
    }
    let sentId: Uint8Array;
    try {
      const wire = protectCommand(command.clear, command.commandKey, deps.clock);
      sentId = commandId(wire);
      await deps.publisher.publish(controlTopic(client.e4Id), wire);
    } catch (err) {
      const error = err instanceof Error ? err.message : String(err);
      if (wasNotSent(err)) {
        // Nothing reached the broker, so nothing can reach the device: no attempt (neither
        // observed nor counted against the cap). Counted, a broker outage longer than the cap's
        // backoff failed the whole fleet for good (until each device was resynced or seen).
        await deps.store.read.clients.setDeliverySync(clientId, {
          state: 'pending',
          attempts: failures,
          error: `${command.kind}: ${error}`,
        });
        return 'deferred';
      }
      deps.onAttempt?.({
        clientId,
        kind: command.kind,
        describe: command.describe,
        attempt,
        outcome: 'failed',
        error,
      });
      if (await failed(command.kind, error, client.name, command.describe)) return 'failed';
      continue;
    } finally {
      command.clear.fill(0);
      command.commandKey.fill(0);
    }
    deps.onAttempt?.({
      clientId,
      kind: command.kind,
      describe: command.describe,
      attempt,
      outcome: 'acked',
    });
    await deps.store.transaction(async (tx) => {
      // Locking the client row orders this record after any concurrent reset's commit.
      const current = await tx.clients.byId(clientId, true);
      if (current === undefined) return;
      if (command.epoch === undefined || command.epoch === current.deliveryEpoch)
        await command.record(tx, sentId);
      await tx.clients.markDeliveredNow(clientId);
    });
    sent++;
    failures = 0;
    streakStart = deps.clock();
  }
}
