/**
 * Runs one firing: resolves its targets, and applies its action to each through the C2 service
 * (so locks, key versions, the outbox and the audit log work exactly as for an API call), under
 * the rule's rollout policy.
 *
 * Every C2 call carries a request id derived from the firing and the subject. A firing resumed by
 * another leader (the previous one died mid-way) therefore repeats nothing: subjects already done
 * return their stored result from the idempotency journal (DESIGN I4), and only the rest rotate.
 */
import { createHash } from 'node:crypto';
import {
  actionRefusal,
  type AutomationCapabilities,
  type C2Service,
  type RequestContext,
} from '../../cluster/domain/index.ts';
import { targetMatcher } from '../../cluster/domain/automation-rules.ts';
import { C2Error } from '../../cluster/errors.ts';
import type { FiringRow, FiringStatus, TargetSpec } from '../../cluster/storage/index.ts';
import { RolloutGate, type Sleep } from './rollout-policy.ts';

/** The C2 operations automation uses. */
export type AutomationC2 = Pick<
  C2Service,
  | 'listTopics'
  | 'listClients'
  | 'getTopic'
  | 'getClient'
  | 'rotateTopicKey'
  | 'rotateClientKey'
  | 'newC2Key'
  | 'resyncClient'
  | 'rotationStatus'
>;

/** The outcome of a firing, as recorded. */
export interface FiringOutcome {
  readonly status: Exclude<FiringStatus, 'pending'>;
  readonly result: {
    /** Subjects the firing resolved (0 until resolved). */
    readonly targets: number;
    readonly done: number;
    readonly failed: number;
    readonly skipped: number;
    readonly devices: number;
    readonly failedDevices: number;
    readonly errors: Readonly<Record<string, number>>;
    /**
     * Why the firing failed without trying its subjects: its action cannot run on the node that
     * fired it (a setting of that node, named in the text). Absent otherwise.
     */
    readonly reason?: string;
  };
}

/** What {@link runFiring} needs besides the firing. */
export interface FiringContext {
  readonly c2: AutomationC2;
  readonly clock: () => number;
  readonly sleep: Sleep;
  /** Aborted when this node stops or loses leadership: the firing stays pending for the next. */
  readonly signal: AbortSignal;
  /** Checked before each subject and during rate waits: true pauses the firing (stays pending). */
  readonly shouldYield: () => Promise<boolean>;
  /**
   * Checked likewise: true ends the firing `aborted` before its next target, the rest skipped
   * (its rule was disabled or deleted). Default: never.
   */
  readonly shouldStop?: () => Promise<boolean>;
  /** Longest wait for the rollout rate between two of these checks. Default 1000 ms. */
  readonly checkEveryMs?: number;
  /**
   * Records the counts so far of a firing still running, so that an operator watching a long
   * rollout sees it advance (the outcome is recorded only at the end). Called once the targets
   * are resolved, then before a subject and during waits (for the rate, or after a passing
   * failure) at most every `progressEveryMs`. Must not throw.
   */
  readonly onProgress?: (progress: FiringOutcome['result']) => Promise<void>;
  /** Least time between two {@link FiringContext.onProgress} calls. Default 5000 ms. */
  readonly progressEveryMs?: number;
  /**
   * What this node can run. The rule was checked by the API node that stored it, whose settings
   * (`E4C2_PK_SERVER_KEYGEN`) may differ from this one's: a firing whose action cannot run here
   * fails at once with the reason, instead of one refused call per subject. Default: not checked.
   */
  readonly capabilities?: AutomationCapabilities;
  /** This node's id, named in such a reason. */
  readonly nodeId?: string;
}

/** Thrown inside {@link runFiring} when the firing must stay pending (pause, leadership lost). */
export class FiringInterrupted extends Error {}

/**
 * Thrown by {@link runFiring} when a subject's call kept failing for a passing reason (see
 * {@link isPassingFailure}): the firing stays pending and is run again at a later tick, where the
 * subjects already done answer from the idempotency journal. Ending it `failed` instead would lose
 * the rotation for good: a cron slot would wait for the next one, and a key over its maximum age
 * would never be planned again (its firing is planned once per key version).
 */
export class FiringDeferred extends Error {
  override readonly name = 'FiringDeferred';
}

/** Tries of one subject whose call fails for a passing reason, within one run of the firing. */
export const PASSING_FAILURE_TRIES = 3;
/** The wait after a subject's first passing failure, doubled after each further one. */
export const PASSING_FAILURE_BACKOFF_MS = 1000;

/**
 * Whether a C2 call failed for a reason that passes by itself: the lock was held past its wait or
 * the database, Redis or a lease was away (`C2_UNAVAILABLE`), or a concurrent change won
 * (`C2_CONFLICT`). Anything else (a refusal, a bug) would fail the same way again.
 */
export function isPassingFailure(err: unknown): err is C2Error {
  return err instanceof C2Error && (err.code === 'C2_UNAVAILABLE' || err.code === 'C2_CONFLICT');
}

/** Escapes a rate wait when the firing must end (its rule was disabled or deleted). */
class FiringStopped extends Error {}

/** The idempotency key of one subject of one firing (≤ 128 characters whatever the name). */
export function subjectRequestId(
  firing: Pick<FiringRow, 'id'>,
  kind: string,
  name: string,
): string {
  const digest = createHash('sha256').update(`${kind}\0${name}`).digest('hex').slice(0, 32);
  return `automation-${firing.id}-${digest}`;
}

/** Names selected by the targets of one kind, in name order, without duplicates. */
export async function resolveTargets(
  c2: AutomationC2,
  kind: 'topic' | 'client',
  targets: readonly TargetSpec[],
): Promise<string[]> {
  const mine = targets.filter((t) => t.kind === kind);
  const names = new Set<string>();
  for (const t of mine.filter((x) => x.match === 'exact')) names.add(t.expr);
  const scans = mine.filter((x) => x.match !== 'exact');
  if (scans.length > 0) {
    const matchers = scans.map((t) => targetMatcher(t));
    let cursor: string | null = null;
    do {
      const page: { items: readonly { name: string }[]; nextCursor: string | null } =
        kind === 'topic'
          ? await c2.listTopics(cursor, undefined)
          : await c2.listClients(cursor, undefined);
      const pageNames = page.items.map((item) => item.name);
      for (const m of matchers) for (const name of m.filter(pageNames)) names.add(name);
      cursor = page.nextCursor;
    } while (cursor !== null);
  }
  return [...names].sort();
}

/**
 * Whether `err` refuses the rule itself, so that trying again gives the same answer (a target
 * pattern over its time budget), unlike an unavailable database or a bug.
 */
export function isLastingRefusal(err: unknown): err is C2Error {
  return err instanceof C2Error && err.code !== 'C2_UNAVAILABLE' && err.code !== 'C2_INTERNAL';
}

function errorCode(err: unknown): string {
  return err instanceof C2Error ? err.code : 'C2_INTERNAL';
}

/**
 * Runs a firing to a terminal outcome (`aborted` too when `shouldStop` says its rule is off).
 * @throws FiringInterrupted when paused or no longer leader (nothing to record; resume later)
 */
export async function runFiring(firing: FiringRow, ctx: FiringContext): Promise<FiringOutcome> {
  const { snapshot } = firing;
  /** @returns true when the firing must end now (its rule was disabled or deleted) */
  const mustStop = async (): Promise<boolean> => {
    if (ctx.signal.aborted || (await ctx.shouldYield())) {
      // Paused: the firing waits pending, and `rules firings` shows what it did so far (the last
      // save may be 5 s old, before the subjects just done). Not when this node stops.
      if (targets > 0 && !ctx.signal.aborted) await progress();
      throw new FiringInterrupted();
    }
    return (await ctx.shouldStop?.()) === true;
  };
  // A wait for the rate (up to a minute's budget, or until the rollout timeout) is cut into
  // slices with the checks in between: a pause, a lost leadership or a deleted rule ends it
  // promptly, and a target is only admitted right after a check, never on a stale one.
  const checkEveryMs = ctx.checkEveryMs ?? 1000;
  const sleep: Sleep = async (ms, signal) => {
    await ctx.sleep(Math.min(ms, checkEveryMs), signal);
    if (await mustStop()) throw new FiringStopped();
    // A rollout that waits for its rate still shows what it has done (rules firings).
    if (targets > 0 && ctx.clock() - progressAt >= progressEveryMs) await progress();
  };
  /** Waits `ms` in checked slices (see `sleep`). @throws FiringStopped, FiringInterrupted */
  const wait = async (ms: number): Promise<void> => {
    const until = ctx.clock() + ms;
    for (let left = ms; left > 0; left = until - ctx.clock()) await sleep(left, ctx.signal);
  };
  const gate = new RolloutGate(
    snapshot.rollout,
    firing.startedAt?.getTime() ?? ctx.clock(),
    ctx.clock,
    sleep,
  );
  const request = (kind: string, name: string): RequestContext => ({
    actor: `automation:rule-${firing.ruleId}`,
    requestId: subjectRequestId(firing, kind, name),
  });
  const errors: Record<string, number> = {};
  let done = 0;
  let failed = 0;
  let skipped = 0;
  let devices = 0;
  let targets = 0;
  let reason: string | undefined;
  const rotated: Array<{ topic: string; version: number }> = [];
  const counts = (): FiringOutcome['result'] => ({
    targets,
    done,
    failed,
    skipped,
    devices,
    failedDevices: gate.counts.failed,
    errors: { ...errors },
    ...(reason === undefined ? {} : { reason }),
  });
  const finish = (status: FiringOutcome['status']): FiringOutcome => ({ status, result: counts() });
  const progressEveryMs = ctx.progressEveryMs ?? 5000;
  let progressAt = ctx.clock();
  const progress = async (): Promise<void> => {
    progressAt = ctx.clock();
    await ctx.onProgress?.(counts());
  };
  const fail = (err: unknown, weight: number): void => {
    failed += 1;
    gate.record(weight, weight);
    const code = errorCode(err);
    errors[code] = (errors[code] ?? 0) + 1;
  };

  const refusal =
    ctx.capabilities &&
    actionRefusal(
      snapshot.action,
      ctx.capabilities,
      ctx.nodeId === undefined ? 'on this node' : `on node ${ctx.nodeId}`,
    );
  if (refusal !== undefined) {
    if (await mustStop()) return finish('aborted');
    fail(refusal, 1);
    reason = refusal.message;
    return finish('failed');
  }

  if (snapshot.action === 'rotate-c2-key') {
    targets = 1;
    if (await mustStop()) {
      skipped = 1;
      return finish('aborted');
    }
    try {
      // The devices the new C2 key goes to, as topic rotations count their members.
      devices = (await ctx.c2.newC2Key(request('c2', 'c2'), true)).devices;
      done = 1;
    } catch (err) {
      // Tried again at a later tick rather than lost (see FiringDeferred).
      if (isPassingFailure(err))
        throw new FiringDeferred(
          `the C2 key: ${err.code}: ${err.message}; the firing stays pending and runs again`,
          { cause: err },
        );
      fail(err, 1);
    }
    return finish(failed > 0 ? 'failed' : 'succeeded');
  }

  const kind = snapshot.action === 'rotate-topic-key' ? 'topic' : 'client';
  // Before resolving: a rule disabled meanwhile ends its firings even when resolving fails.
  if (await mustStop()) return finish('aborted');
  let names: string[];
  try {
    names =
      snapshot.subjects?.kind === kind
        ? [...snapshot.subjects.names]
        : await resolveTargets(ctx.c2, kind, snapshot.targets);
  } catch (err) {
    // A refusal that would repeat on every attempt ends the firing failed; an unavailable
    // database or a bug leaves it pending, to retry.
    if (!isLastingRefusal(err)) throw err;
    fail(err, 1);
    return finish('failed');
  }
  targets = names.length;
  await progress();

  /**
   * Applies the action to one subject. @returns the devices it concerns, or `skipped` when there
   * is nothing to do for it
   */
  const apply = async (name: string, weight: number): Promise<number | 'skipped'> => {
    switch (snapshot.action) {
      case 'rotate-topic-key': {
        const r = await ctx.c2.rotateTopicKey(request('topic', name), name);
        rotated.push({ topic: name, version: r.keyVersion });
        return r.members;
      }
      case 'rotate-client-key':
        await ctx.c2.rotateClientKey(request('client', name), name);
        return weight;
      case 'resync-lagging': {
        const client = await ctx.c2.getClient(name);
        // Failed: the cap was reached. Behind: the broker accepted the key, but the device was
        // later seen publishing under an older one (monitoring, public-key mode), so the command
        // was lost after the PUBACK (R9) and nothing else would resend it.
        const lagging =
          client.delivery.state === 'failed' || client.topics.some((t) => t.observed?.behind);
        if (!lagging) return 'skipped';
        // No key re-sends: they put the current key on the wire under the previous one again,
        // which only an operator's resync may decide (client-ops.ts, ResyncOptions).
        await ctx.c2.resyncClient(request('resync', name), name, { resendKeys: false });
        return weight;
      }
      case 'rotate-c2-key':
        throw new Error('rotate-c2-key has no subjects'); // handled above
    }
  };

  const stopped = (): FiringOutcome => {
    skipped = names.length - done - failed;
    return finish('aborted');
  };
  for (const name of names) {
    if (ctx.clock() - progressAt >= progressEveryMs) await progress();
    if (await mustStop()) return stopped();
    if (snapshot.rollout.abortFailureRatio !== undefined && rotated.length > 0) {
      let deliveryFailed = 0;
      for (const r of rotated) {
        const status = await ctx.c2.rotationStatus(r.topic, r.version).catch(() => undefined);
        deliveryFailed += status?.failed ?? 0;
      }
      gate.setDeliveryFailed(deliveryFailed);
    }
    const stop = gate.stop();
    if (stop !== undefined) {
      skipped = names.length - done - failed;
      return finish(stop);
    }
    let weight = 1;
    if (kind === 'topic' && snapshot.rollout.maxDevicesPerMinute !== undefined) {
      weight = await ctx.c2.getTopic(name).then(
        (t) => t.rollout.members,
        () => 1,
      );
    }
    let admitted: boolean;
    try {
      admitted = await gate.admit(weight, ctx.signal);
    } catch (err) {
      if (err instanceof FiringStopped) return stopped();
      throw err;
    }
    if (!admitted) {
      if (ctx.signal.aborted) throw new FiringInterrupted();
      skipped = names.length - done - failed;
      return finish('timed_out');
    }
    let outcome: number | 'skipped' | { readonly error: unknown };
    for (let attempt = 1; ; attempt++) {
      try {
        outcome = await apply(name, weight);
        break;
      } catch (err) {
        if (!isPassingFailure(err)) {
          outcome = { error: err };
          break;
        }
        if (attempt >= PASSING_FAILURE_TRIES) {
          await progress();
          throw new FiringDeferred(
            `${kind} ${JSON.stringify(name)}: ${err.code}: ${err.message} (${attempt} tries); the firing stays pending and runs again`,
            { cause: err },
          );
        }
        try {
          await wait(PASSING_FAILURE_BACKOFF_MS * 2 ** (attempt - 1));
        } catch (stop) {
          if (stop instanceof FiringStopped) return stopped();
          throw stop;
        }
      }
    }
    if (outcome === 'skipped') {
      skipped += 1;
    } else if (typeof outcome === 'number') {
      done += 1;
      devices += outcome;
      gate.record(outcome, 0);
    } else if (outcome.error instanceof C2Error && outcome.error.code === 'C2_NOT_FOUND') {
      skipped += 1; // deleted since the targets were resolved: nothing to rotate
    } else {
      fail(outcome.error, weight);
    }
  }
  if (failed === 0) return finish('succeeded');
  return finish(done === 0 ? 'failed' : (gate.stop() ?? 'failed'));
}
