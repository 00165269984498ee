/**
 * After PostgreSQL was restored from a backup, the database has forgotten every change made
 * between the backup and the disaster. Three of them are dangerous (docs/operations.md, "Restore"):
 *
 * - Topic keys rotated after the backup: devices hold keys (and versions) the database does not
 *   know, and the restored database would hand out the same version numbers again for other keys.
 *   Every topic key is therefore rotated to a version above anything issued since the backup: the
 *   restored version plus a margin, or above the highest version in the off-site event archive.
 * - Identity keys rotated after the backup: the device has a key the C2 no longer has, so nothing
 *   the C2 sends can reach it. The C2 cannot repair that; it finds these clients by comparing the
 *   off-site event archive (the event stream exported continuously, e.g. `e4c2 events --after N
 *   --json`) with the restored keys, marks their delivery failed with the reason, emits a
 *   `client.unreachable` event and reports them: they must be re-provisioned out of band.
 * - Event positions handed out after the backup would be handed out again for other events: the
 *   stream position jumps past them, so resuming subscribers never skip anything.
 *
 * The archive also tells clients and topics created after the backup (missing now) and removed
 * after it (back now): reported, for the operator to redo.
 */
import { topicHash } from '../../e4/index.ts';
import { C2Error } from '../errors.ts';
import { RESTORE_PENDING_SETTING, type TopicRow } from '../storage/index.ts';
import { storeNewTopicKey } from './key-material.ts';
import { audit } from './mutation.ts';
import type { DomainDeps, RequestContext } from './ports.ts';
import { checkClientName, checkTopicName } from './validation.ts';

/** What the off-site archive says was issued for one client or topic. */
export interface IssuedSubject {
  /** Highest key version issued (0: none seen). */
  readonly version: number;
  /** The last lifecycle event seen was a removal. */
  readonly removed: boolean;
  /**
   * Clients: where the archive saw the name's last creation (a name removed and created again
   * is another device, whose key only that lifetime knows). Undefined when not seen.
   */
  readonly createdSeq?: bigint;
}

/** A membership's last state in the archive, changed after the backup. */
export interface MembershipChange {
  readonly client: string;
  readonly topic: string;
  /** False: detached (or its client removed). */
  readonly attached: boolean;
}

/** The off-site event archive, summarised (see `summarizeEventArchive` in the CLI). */
export interface IssuedSinceBackup {
  readonly topics: ReadonlyMap<string, IssuedSubject>;
  readonly clients: ReadonlyMap<string, IssuedSubject>;
  /** Highest C2 key version issued (public-key mode). */
  readonly c2KeyVersion?: number;
  /** Last stream position in the archive. */
  readonly lastEventSeq?: bigint;
  /** Memberships changed after the backup, at their last state. */
  readonly memberships?: readonly MembershipChange[];
}

/** Options of {@link reconcileAfterRestore}. */
export interface RestoreOptions {
  /** Each topic key jumps at least this many versions. Default {@link DEFAULT_VERSION_MARGIN}. */
  readonly versionMargin?: number;
  /** The stream position jumps at least this far. Default {@link DEFAULT_EVENT_SEQ_MARGIN}. */
  readonly eventSeqMargin?: number;
  readonly issued?: IssuedSinceBackup;
  /**
   * Runs on a database that is not marked as restored (no mark of `restore.sh` or the runbook,
   * no earlier reconciliation kept), which is otherwise refused: there every topic key would jump
   * and the event stream skip a million positions for nothing, most likely on the wrong
   * deployment.
   */
  readonly force?: boolean;
}

/** What a reconciliation did and found. */
export interface RestoreReconciliation {
  readonly topicsRotated: number;
  /** Clients whose identity key was rotated after the backup: unreachable until re-provisioned. */
  readonly unreachableClients: readonly string[];
  /** Created after the backup (in the archive, not in the database). */
  readonly missingClients: readonly string[];
  readonly missingTopics: readonly string[];
  /** Removed after the backup (removed in the archive, present in the database). */
  readonly resurrectedClients: readonly string[];
  readonly resurrectedTopics: readonly string[];
  /** The C2 key was rotated after the backup: public-key devices no longer trust this C2. */
  readonly c2KeyRotatedAfterBackup: boolean;
  /** The stream position after which new events continue. */
  readonly eventSeqFloor: string;
  /**
   * The archive given ends before the restored database's own position: it cannot show what
   * happened after the backup (a stopped or stale archive), so nothing found here is complete.
   */
  readonly archiveEndsBeforeBackup: boolean;
  /** Attached after the backup, absent from the database: attach again. */
  readonly missingMemberships: readonly MembershipChange[];
  /** Detached after the backup, back in the database: detach again. */
  readonly resurrectedMemberships: readonly MembershipChange[];
}

/**
 * Settings of the first reconciliation after a restore: the restored database's event position,
 * the position its history resumed at (the jump), and when. `ops/backup/restore.sh` deletes them.
 */
const RESTORE_POSITION_SETTING = 'restore_position';
const RESTORE_FLOOR_SETTING = 'restore_floor';
const RESTORE_AT_SETTING = 'restore_first_reconciled_at';

/** A kept event position, or undefined when absent or not one. */
function positionSetting(value: string | undefined): bigint | undefined {
  return value !== undefined && /^\d{1,19}$/.test(value) ? BigInt(value) : undefined;
}

/** What restore.sh's mark and the reconciliation runs of a restore keep. */
interface KeptRestore {
  /** restore.sh's mark (deliveries paused), when present. */
  readonly mark: string | undefined;
  /** The restored position it holds (a hand mark of an earlier runbook holds a time). */
  readonly markPosition: bigint | undefined;
  /** Kept by the first run: the restored position, its jump, and when it ran. */
  readonly position: bigint | undefined;
  readonly floor: bigint | undefined;
  readonly firstRunAt: number | undefined;
}

async function keptRestore(journal: {
  setting(name: string): Promise<string | undefined>;
}): Promise<KeptRestore> {
  const mark = await journal.setting(RESTORE_PENDING_SETTING);
  const at = Date.parse((await journal.setting(RESTORE_AT_SETTING)) ?? '');
  return {
    mark,
    markPosition: positionSetting(mark),
    position: positionSetting(await journal.setting(RESTORE_POSITION_SETTING)),
    floor: positionSetting(await journal.setting(RESTORE_FLOOR_SETTING)),
    firstRunAt: Number.isNaN(at) ? undefined : at,
  };
}

/**
 * Whether a restored database awaits its reconciliation, and the restored position the
 * reconciliation will judge the archive against (undefined: the database's newest position, as
 * it is when the reconciliation starts). The CLI sends only what the archive has after it.
 */
export async function restoreStatus(
  deps: DomainDeps,
): Promise<{ readonly pending: boolean; readonly restoredPosition: string | undefined }> {
  const kept = await keptRestore(deps.store.read.journal);
  const position = kept.mark !== undefined ? kept.markPosition : kept.position;
  return { pending: kept.mark !== undefined, restoredPosition: position?.toString() };
}

/** Default version jump of every topic key after a restore. */
export const DEFAULT_VERSION_MARGIN = 1000;
/** Default jump of the event stream position after a restore. */
export const DEFAULT_EVENT_SEQ_MARGIN = 1_000_000;
const MAX_VERSION = 2 ** 31 - 1;
const PAGE = 200;

function checkMargin(value: number | undefined, fallback: number, field: string, max: number) {
  const margin = value ?? fallback;
  if (!Number.isSafeInteger(margin) || margin < 1 || margin > max) {
    throw new C2Error('C2_VALIDATION', `${field} must be an integer from 1 to ${max}`, {
      details: { field },
    });
  }
  return margin;
}

async function jumpTopic(
  deps: DomainDeps,
  ctx: RequestContext,
  name: string,
  margin: number,
  issued: number,
): Promise<boolean> {
  return deps.store.transaction(async (tx) => {
    const topic: TopicRow | undefined = await tx.topics.byName(name, true);
    if (topic === undefined) return false;
    const version = Math.max(topic.keyVersion + margin, issued + 1);
    if (version > MAX_VERSION) {
      throw new C2Error('C2_VALIDATION', 'the version jump would overflow the key version', {
        details: { field: 'versionMargin', topic: name },
      });
    }
    if (!(await tx.topics.casKeyVersion(topic.id, topic.keyVersion, version))) return false;
    const fingerprint = await storeNewTopicKey(deps, tx, topic.id, version);
    const members = await tx.memberships.fanOutVersion(topic.id, version, 'restore');
    await audit(tx, ctx, {
      operation: 'ReconcileAfterRestore',
      subjectKind: 'topic',
      subject: name,
      keyVersion: version,
      keyFingerprint: fingerprint,
      details: { from: topic.keyVersion, members },
    });
    await tx.journal.event({
      type: 'topic.rotated',
      topic: name,
      keyVersion: version,
      details: { members, restore: true, from: topic.keyVersion },
    });
    return true;
  });
}

/**
 * Whether the restored database itself holds, at the archive's position, the creation the archive
 * saw there. The restored position is the last event the backup had *positioned*: events commit
 * first and get their positions from the sequencer a moment later (every 100 ms), so a backup can
 * hold a few committed events without positions. The restored database positions them right
 * after the restored position, as the lost one did: a creation the archive has there is then the
 * backup's own, not another device's (marking that client unreachable was a false alarm). When
 * other events were positioned in between (the positions differ), the client is still reported:
 * a false alarm costs a `client resync`, a missed re-creation an unreachable device.
 */
async function restoredHoldsCreation(
  journal: DomainDeps['store']['read']['journal'],
  name: string,
  seq: bigint,
): Promise<boolean> {
  const [event] = await journal.eventsAfter((seq - 1n).toString(), 1);
  return (
    event?.seq === seq.toString() && event.type === 'client.created' && event.clientName === name
  );
}

/**
 * Every name of the archive's summary is one a topic or client can have: checked before anything
 * is written, so a malformed summary (a NUL reached PostgreSQL as a 500, after the topic keys and
 * the event stream had already jumped) changes nothing.
 * @throws C2Error `C2_VALIDATION` naming the first bad field
 */
function checkIssuedNames(issued: IssuedSinceBackup): void {
  [...issued.topics.keys()].forEach((name, i) => checkTopicName(name, `topics[${i}].name`));
  [...issued.clients.keys()].forEach((name, i) => checkClientName(name, `clients[${i}].name`));
  (issued.memberships ?? []).forEach((m, i) => {
    checkClientName(m.client, `memberships[${i}].client`);
    checkTopicName(m.topic, `memberships[${i}].topic`);
  });
}

/**
 * Run once after a restore, before devices and users are let back in (traffic through the load
 * balancer stays closed until it returned). Running it again is harmless: versions jump again.
 * @throws C2Error `C2_VALIDATION` for a margin out of range or a name no topic or client can have;
 *   `C2_FAILED_PRECONDITION` on a database never marked as restored, unless `force`
 */
export async function reconcileAfterRestore(
  deps: DomainDeps,
  ctx: RequestContext,
  options: RestoreOptions = {},
): Promise<RestoreReconciliation> {
  const versionMargin = checkMargin(
    options.versionMargin,
    DEFAULT_VERSION_MARGIN,
    'versionMargin',
    1_000_000,
  );
  const seqMargin = checkMargin(
    options.eventSeqMargin,
    DEFAULT_EVENT_SEQ_MARGIN,
    'eventSeqMargin',
    1e12,
  );
  const issued = options.issued;
  if (issued !== undefined) checkIssuedNames(issued);
  const read = deps.store.read;

  // 1. The event stream continues above every position handed out before the disaster; every
  // event of this reconciliation comes after the jump, so a subscriber that resumes with a
  // position from before the disaster sees all of them.
  const { eventSeqFloor, restoredSeq, keptFloor, firstRunAt } = await deps.store.transaction(
    async (tx) => {
      while ((await tx.journal.sequenceEvents(5000)) > 0);
      const last = BigInt(await tx.journal.latestEventSeq());
      const kept = await keptRestore(tx.journal);
      if (kept.mark === undefined && kept.position === undefined && options.force !== true)
        throw new C2Error(
          'C2_FAILED_PRECONDITION',
          'this database is not marked as restored (no restore_pending mark, no earlier reconciliation): a reconciliation would rotate every topic key and move the event stream for nothing; nothing was changed (force runs it anyway)',
        );
      // The restored position: from restore.sh's mark (the restore's own position), kept by the
      // first run for the runs after it; the database as it is when nothing says better (no
      // mark, or a hand-made mark of an earlier runbook holding a time).
      let restoredAt: bigint;
      let sameRestore: boolean;
      if (kept.mark !== undefined) {
        restoredAt = kept.markPosition ?? last;
        // Again after a failed run: the first run of this restore kept the same position.
        sameRestore = kept.markPosition !== undefined && kept.position === kept.markPosition;
      } else {
        restoredAt = kept.position ?? last;
        sameRestore = kept.position !== undefined;
      }
      const archived = issued?.lastEventSeq ?? 0n;
      const by = archived >= last + BigInt(seqMargin) ? archived - last + 1n : BigInt(seqMargin);
      const floor = await tx.journal.advanceEventSeq(Number(by));
      if (!sameRestore) {
        // The first run of this restore: what an earlier restore's runs kept no longer holds.
        await tx.journal.putSetting(RESTORE_POSITION_SETTING, restoredAt.toString());
        await tx.journal.putSetting(RESTORE_FLOOR_SETTING, floor);
        await tx.journal.putSetting(RESTORE_AT_SETTING, new Date(deps.now()).toISOString());
      }
      await tx.journal.event({
        type: 'c2.restored',
        details: { eventSeqFloor: floor, versionMargin, restoredSeq: restoredAt.toString() },
      });
      await tx.journal.putSetting('restore_reconciled_at', new Date(deps.now()).toISOString());
      // Events the archive has beyond the restored position came after the backup; those from
      // the first run's jump on happened on the restored database (it has them).
      return {
        eventSeqFloor: floor,
        restoredSeq: restoredAt,
        keptFloor: sameRestore ? kept.floor : undefined,
        firstRunAt: sameRestore ? kept.firstRunAt : undefined,
      };
    },
  );

  // 2. Every topic key, to a version above anything issued since the backup.
  let topicsRotated = 0;
  let cursor: string | undefined;
  for (;;) {
    const page = await read.topics.after(cursor, PAGE);
    for (const topic of page) {
      const issuedVersion = issued?.topics.get(topic.name)?.version ?? 0;
      if (await jumpTopic(deps, ctx, topic.name, versionMargin, issuedVersion)) topicsRotated++;
    }
    if (page.length < PAGE) break;
    cursor = page.at(-1)?.name;
  }

  // 3. What only the archive knows.
  const unreachableClients: string[] = [];
  const missingClients: string[] = [];
  const resurrectedClients: string[] = [];
  const missingTopics: string[] = [];
  const resurrectedTopics: string[] = [];
  for (const [name, seen] of issued?.clients ?? []) {
    const client = await read.clients.byName(name);
    if (client === undefined || client.status !== 'active') {
      if (!seen.removed) missingClients.push(name);
      continue;
    }
    // Made since the first run (the runbook's step 6: re-provisioned, or created again): the
    // archive's history of the name is an earlier device's.
    if (firstRunAt !== undefined && client.createdAt.getTime() > firstRunAt) continue;
    if (seen.removed) {
      resurrectedClients.push(name);
      continue;
    }
    // Removed and created again after the backup: the device behind the name has a key of that
    // new lifetime, which the restored database (holding the old device's) never had.
    const recreated =
      seen.createdSeq !== undefined &&
      seen.createdSeq > restoredSeq &&
      (keptFloor === undefined || seen.createdSeq < keptFloor) &&
      !(await restoredHoldsCreation(read.journal, name, seen.createdSeq));
    if (recreated || seen.version > client.keyVersion) {
      unreachableClients.push(name);
      await deps.store.transaction(async (tx) => {
        const reason = recreated
          ? `removed and created again after the backup (event ${seen.createdSeq}); the database has the earlier client's key: re-provision the device`
          : `identity key v${seen.version} was issued after the backup; the database has v${client.keyVersion}: re-provision the device`;
        await tx.clients.setSync(client.id, { state: 'unreachable', attempts: 0, error: reason });
        await tx.journal.event({
          type: 'client.unreachable',
          clientName: name,
          keyVersion: client.keyVersion,
          details: recreated
            ? { reason: 'client-recreated-after-backup', createdSeq: String(seen.createdSeq) }
            : { reason: 'identity-key-rotated-after-backup', issuedVersion: seen.version },
        });
      });
    }
  }
  for (const [name, seen] of issued?.topics ?? []) {
    const topic = await read.topics.byName(name);
    if (topic === undefined) {
      if (!seen.removed) missingTopics.push(name);
    } else if (seen.removed) resurrectedTopics.push(name);
  }
  const missingMemberships: MembershipChange[] = [];
  const resurrectedMemberships: MembershipChange[] = [];
  for (const change of issued?.memberships ?? []) {
    // A client removed after the backup left its topics then: its removal is listed already.
    if (!change.attached && resurrectedClients.includes(change.client)) continue;
    const client = await read.clients.byName(change.client);
    const active = client?.status === 'active' ? client : undefined;
    const held =
      active === undefined
        ? undefined
        : await read.memberships.get(active.id, topicHash(change.topic));
    const present = held !== undefined && held.desiredVersion > 0;
    if (change.attached && !present) missingMemberships.push(change);
    else if (!change.attached && present) resurrectedMemberships.push(change);
  }
  const archiveEndsBeforeBackup =
    issued?.lastEventSeq !== undefined && issued.lastEventSeq < restoredSeq;
  const latestC2 = await read.journal.latestC2Key();
  const c2KeyRotatedAfterBackup =
    issued?.c2KeyVersion !== undefined && issued.c2KeyVersion > (latestC2?.version ?? 0);

  // 4. The summary, for the audit trail and the subscribers.
  const summary = {
    topicsRotated,
    unreachableClients: unreachableClients.length,
    missingClients: missingClients.length,
    missingTopics: missingTopics.length,
    resurrectedClients: resurrectedClients.length,
    resurrectedTopics: resurrectedTopics.length,
    c2KeyRotatedAfterBackup,
    archiveEndsBeforeBackup,
    missingMemberships: missingMemberships.length,
    resurrectedMemberships: resurrectedMemberships.length,
  };
  await deps.store.transaction(async (tx) => {
    await audit(tx, ctx, {
      operation: 'ReconcileAfterRestore',
      subjectKind: 'deployment',
      subject: 'restore',
      details: { ...summary, eventSeqFloor },
    });
    await tx.journal.event({ type: 'c2.restore_reconciled', details: summary });
    // Deliveries were paused since restore.sh marked the database. Only now, with every topic
    // key above what was issued and the unreachable devices marked, may they go out (a failure
    // above leaves the mark: running the reconciliation again is harmless).
    await tx.journal.deleteSetting(RESTORE_PENDING_SETTING);
  });
  deps.kick.kick();
  return {
    topicsRotated,
    unreachableClients,
    missingClients,
    missingTopics,
    resurrectedClients,
    resurrectedTopics,
    c2KeyRotatedAfterBackup,
    eventSeqFloor,
    archiveEndsBeforeBackup,
    missingMemberships,
    resurrectedMemberships,
  };
}
