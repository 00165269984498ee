/**
 * PostgreSQL storage of the automation engine (migration 0005): rules with an optimistic
 * concurrency version, per-trigger state, the firing record keyed by (rule, due time, subject),
 * the leader epoch that fences a deposed leader's writes, and the pause switch.
 */
import type pg from 'pg';
import { C2Error } from '../errors.ts';
import {
  date,
  dateOrNull,
  firstRow,
  int,
  rows,
  str,
  strOrNull,
  touched,
  type Row,
} from './pg-rows.ts';
import { translatingFailures, withTransaction, type Queryable } from './pool.ts';

/** What a rule does when it fires. */
export type AutomationAction =
  'rotate-topic-key' | 'rotate-client-key' | 'rotate-c2-key' | 'resync-lagging';

/** Event types an event trigger can count. */
export type CountedEvent = 'client.subscribed' | 'client.unsubscribed';

/** When a rule fires. Every trigger has an id, stable across edits (its state is keyed by it). */
export type TriggerSpec =
  /** A cron expression (5 or 6 fields) evaluated in an explicit IANA time zone. */
  | { readonly id: string; readonly kind: 'cron'; readonly expr: string; readonly timeZone: string }
  /** Every `everySeconds`, counted from the trigger's creation. */
  | { readonly id: string; readonly kind: 'interval'; readonly everySeconds: number }
  /** Crypto period: fires for each target whose current key is older than `maxAgeSeconds`. */
  | { readonly id: string; readonly kind: 'max-key-age'; readonly maxAgeSeconds: number }
  /** Every `threshold` matching events of one type (counted from the durable event log). */
  | {
      readonly id: string;
      readonly kind: 'event';
      readonly event: CountedEvent;
      readonly threshold: number;
    }
  /** Forward secrecy: a member left a target topic; that topic is rotated. */
  | { readonly id: string; readonly kind: 'member-removed' };

/** Which topics or clients a rule acts on. */
export interface TargetSpec {
  readonly id: string;
  readonly kind: 'topic' | 'client';
  /** `exact` name, name `prefix`, or `pattern`: a regular expression matched against the whole name. */
  readonly match: 'exact' | 'prefix' | 'pattern';
  readonly expr: string;
}

/** How an automated rotation is rolled out. Absent fields: no limit. */
export interface RolloutPolicy {
  /** Devices affected per minute at most (a topic rotation affects its members). */
  readonly maxDevicesPerMinute?: number;
  /** Abort the firing when failed / attempted devices exceeds this ratio (0..1). */
  readonly abortFailureRatio?: number;
  /** Give up on targets not reached within this many seconds of the firing's start. */
  readonly timeoutSeconds?: number;
}

/** The editable part of a rule. */
export interface RuleDraft {
  readonly description: string;
  readonly action: AutomationAction;
  readonly triggers: readonly TriggerSpec[];
  readonly targets: readonly TargetSpec[];
  readonly rollout: RolloutPolicy;
  readonly enabled: boolean;
}

/** A stored rule. */
export interface AutomationRuleRow extends RuleDraft {
  readonly id: string;
  readonly version: number;
  readonly createdAt: Date;
  readonly updatedAt: Date;
}

/** Where one trigger stands. */
export interface TriggerStateRow {
  readonly triggerId: string;
  /** Time triggers: the last due slot planned (null: none yet, start from the trigger's creation). */
  readonly cursorAt: Date | null;
  /** Event triggers: the last `events.seq` consumed. */
  readonly eventSeq: string;
  /** Event triggers: matching events since the last firing. */
  readonly counter: number;
}

/** The rule as a firing acts on it (frozen when the firing is planned). */
export interface FiringSnapshot {
  readonly action: AutomationAction;
  readonly targets: readonly TargetSpec[];
  readonly rollout: RolloutPolicy;
  /** For firings about one subject (a key past its age, a topic a member left): the names. */
  readonly subjects?: { readonly kind: 'topic' | 'client'; readonly names: readonly string[] };
}

/** Terminal and open firing states. */
export type FiringStatus = 'pending' | 'succeeded' | 'failed' | 'aborted' | 'timed_out';

/** A firing to record. */
export interface NewFiring {
  readonly ruleId: string;
  readonly dueAt: Date;
  /** '' for schedule firings; `topic:<name>:v<n>`, `event:<seq>` for per-subject firings. */
  readonly subject: string;
  readonly triggerId: string;
  readonly ruleVersion: number;
  readonly snapshot: FiringSnapshot;
  readonly coalesced: number;
}

/** A recorded firing. */
export interface FiringRow extends NewFiring {
  readonly id: string;
  readonly status: FiringStatus;
  readonly plannedEpoch: string;
  readonly finishedEpoch: string | null;
  readonly attempts: number;
  readonly result: Readonly<Record<string, unknown>>;
  readonly plannedAt: Date;
  readonly startedAt: Date | null;
  readonly finishedAt: Date | null;
}

/** The pause switch. */
export interface AutomationControl {
  readonly paused: boolean;
  readonly reason: string;
  readonly changedBy: string;
  readonly changedAt: Date | null;
}

/** The leader record (the fence). */
export interface LeaderRecord {
  readonly epoch: string;
  readonly nodeId: string | null;
  readonly acquiredAt: Date | null;
  readonly heartbeatAt: Date | null;
}

/** An event as the engine counts it. */
export interface CountableEvent {
  readonly seq: string;
  readonly at: Date;
  readonly type: string;
  readonly clientName: string | null;
  readonly topic: string | null;
}

function ruleRow(r: Row): AutomationRuleRow {
  return {
    id: str(r, 'id'),
    description: str(r, 'description'),
    action: str(r, 'action') as AutomationAction,
    triggers: r['triggers'] as TriggerSpec[],
    targets: r['targets'] as TargetSpec[],
    rollout: r['rollout'] as RolloutPolicy,
    enabled: r['enabled'] === true,
    version: int(r, 'version'),
    createdAt: date(r, 'created_at'),
    updatedAt: date(r, 'updated_at'),
  };
}

function firingRow(r: Row): FiringRow {
  return {
    id: str(r, 'id'),
    ruleId: str(r, 'rule_id'),
    dueAt: date(r, 'due_at'),
    subject: str(r, 'subject'),
    triggerId: str(r, 'trigger_id'),
    ruleVersion: int(r, 'rule_version'),
    snapshot: r['snapshot'] as FiringSnapshot,
    coalesced: int(r, 'coalesced'),
    status: str(r, 'status') as FiringStatus,
    plannedEpoch: str(r, 'planned_epoch'),
    finishedEpoch: strOrNull(r, 'finished_epoch'),
    attempts: int(r, 'attempts'),
    result: (r['result'] ?? {}) as Record<string, unknown>,
    plannedAt: date(r, 'planned_at'),
    startedAt: dateOrNull(r, 'started_at'),
    finishedAt: dateOrNull(r, 'finished_at'),
  };
}

const json = (v: unknown): string => JSON.stringify(v);

/** Queries of the automation tables on one query runner (the pool or a transaction). */
export class PgAutomation {
  /** @param db - a transaction client or the pool */
  constructor(private readonly db: Queryable) {}

  async listRules(): Promise<AutomationRuleRow[]> {
    return (await rows(this.db, 'SELECT * FROM automation_rules ORDER BY id')).map(ruleRow);
  }

  /** A rule; `lock` holds it until the transaction ends (`share`: edits wait, readers do not). */
  async rule(id: string, lock: boolean | 'share' = false): Promise<AutomationRuleRow | undefined> {
    const clause = lock === 'share' ? ' FOR SHARE' : lock ? ' FOR UPDATE' : '';
    const row = await firstRow(this.db, `SELECT * FROM automation_rules WHERE id = $1${clause}`, [
      id,
    ]);
    return row && ruleRow(row);
  }

  async insertRule(draft: RuleDraft): Promise<AutomationRuleRow> {
    const row = await firstRow(
      this.db,
      `INSERT INTO automation_rules (description, action, triggers, targets, rollout, enabled)
       VALUES ($1, $2, $3, $4, $5, $6) RETURNING *`,
      [
        draft.description,
        draft.action,
        json(draft.triggers),
        json(draft.targets),
        json(draft.rollout),
        draft.enabled,
      ],
    );
    if (row === undefined) throw new Error('INSERT ... RETURNING returned no row');
    return ruleRow(row);
  }

  /**
   * Replaces a rule if its version is still `expectedVersion` (compare-and-set).
   * @returns the new row, or undefined when no row matched (missing, or another edit won)
   */
  async updateRule(
    id: string,
    expectedVersion: number,
    draft: RuleDraft,
  ): Promise<AutomationRuleRow | undefined> {
    const row = await firstRow(
      this.db,
      `UPDATE automation_rules
          SET description = $3, action = $4, triggers = $5, targets = $6, rollout = $7,
              enabled = $8, version = version + 1, updated_at = now()
        WHERE id = $1 AND version = $2 RETURNING *`,
      [
        id,
        expectedVersion,
        draft.description,
        draft.action,
        json(draft.triggers),
        json(draft.targets),
        json(draft.rollout),
        draft.enabled,
      ],
    );
    return row && ruleRow(row);
  }

  /** Deletes a rule (at `expectedVersion` when given). @returns whether a row was deleted */
  async deleteRule(id: string, expectedVersion?: number): Promise<boolean> {
    return (
      (await touched(
        this.db,
        `DELETE FROM automation_rules WHERE id = $1 AND ($2::integer IS NULL OR version = $2)`,
        [id, expectedVersion ?? null],
      )) > 0
    );
  }

  async triggerStates(ruleId: string): Promise<Map<string, TriggerStateRow>> {
    const found = await rows(this.db, 'SELECT * FROM automation_trigger_state WHERE rule_id = $1', [
      ruleId,
    ]);
    return new Map(
      found.map((r) => [
        str(r, 'trigger_id'),
        {
          triggerId: str(r, 'trigger_id'),
          cursorAt: dateOrNull(r, 'cursor_at'),
          eventSeq: str(r, 'event_seq'),
          counter: int(r, 'counter'),
        },
      ]),
    );
  }

  async saveTriggerState(ruleId: string, state: TriggerStateRow): Promise<void> {
    await this.db.query(
      `INSERT INTO automation_trigger_state (rule_id, trigger_id, cursor_at, event_seq, counter)
       VALUES ($1, $2, $3, $4, $5)
       ON CONFLICT (rule_id, trigger_id) DO UPDATE
         SET cursor_at = $3, event_seq = $4, counter = $5, updated_at = now()`,
      [ruleId, state.triggerId, state.cursorAt, state.eventSeq, state.counter],
    );
  }

  /** Drops the state of triggers a rule no longer has. */
  async pruneTriggerStates(ruleId: string, keep: readonly string[]): Promise<void> {
    await this.db.query(
      'DELETE FROM automation_trigger_state WHERE rule_id = $1 AND NOT (trigger_id = ANY($2))',
      [ruleId, keep],
    );
  }

  /**
   * Records a firing unless one exists for the same (rule, due time, subject).
   * @returns whether this call recorded it
   */
  async insertFiring(firing: NewFiring, epoch: string): Promise<boolean> {
    return (
      (await touched(
        this.db,
        `INSERT INTO automation_firings
           (rule_id, due_at, subject, trigger_id, rule_version, snapshot, coalesced, planned_epoch)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
         ON CONFLICT (rule_id, due_at, subject) DO NOTHING`,
        [
          firing.ruleId,
          firing.dueAt,
          firing.subject,
          firing.triggerId,
          firing.ruleVersion,
          json(firing.snapshot),
          firing.coalesced,
          epoch,
        ],
      )) > 0
    );
  }

  /** Open firings, oldest due first (including those a previous leader left unfinished). */
  async pendingFirings(limit: number): Promise<FiringRow[]> {
    return (
      await rows(
        this.db,
        `SELECT * FROM automation_firings WHERE status = 'pending' ORDER BY due_at, id LIMIT $1`,
        [limit],
      )
    ).map(firingRow);
  }

  /** How many firings are open (the partial index of open firings answers it). */
  async countPendingFirings(): Promise<number> {
    const [row] = await rows(
      this.db,
      `SELECT count(*)::int AS n FROM automation_firings WHERE status = 'pending'`,
    );
    return row === undefined ? 0 : int(row, 'n');
  }

  /** Counts an attempt at running a pending firing. @returns false when it is no longer pending */
  async startFiring(id: string): Promise<boolean> {
    return (
      (await touched(
        this.db,
        `UPDATE automation_firings SET attempts = attempts + 1, started_at = coalesce(started_at, now())
          WHERE id = $1 AND status = 'pending'`,
        [id],
      )) > 0
    );
  }

  /**
   * Records the counts so far of a firing still running (its outcome replaces them at the end).
   * @returns false when it was not pending any more
   */
  async saveFiringProgress(id: string, result: Record<string, unknown>): Promise<boolean> {
    return (
      (await touched(
        this.db,
        `UPDATE automation_firings SET result = $2 WHERE id = $1 AND status = 'pending'`,
        [id, json(result)],
      )) > 0
    );
  }

  /** Closes a pending firing. @returns false when it was not pending any more */
  async finishFiring(
    id: string,
    status: Exclude<FiringStatus, 'pending'>,
    result: Record<string, unknown>,
    epoch: string,
  ): Promise<boolean> {
    return (
      (await touched(
        this.db,
        `UPDATE automation_firings
            SET status = $2, result = $3, finished_epoch = $4, finished_at = now()
          WHERE id = $1 AND status = 'pending'`,
        [id, status, json(result), epoch],
      )) > 0
    );
  }

  /** Recent firings, newest first; of one rule when `ruleId` is given. */
  async listFirings(ruleId: string | undefined, limit: number): Promise<FiringRow[]> {
    return (
      await rows(
        this.db,
        `SELECT * FROM automation_firings WHERE ($1::bigint IS NULL OR rule_id = $1)
          ORDER BY due_at DESC, id DESC LIMIT $2`,
        [ruleId ?? null, limit],
      )
    ).map(firingRow);
  }

  async control(): Promise<AutomationControl> {
    const row = await firstRow(this.db, 'SELECT * FROM automation_control WHERE id = 1');
    if (row === undefined) throw new Error('automation_control has no row (migration 0005)');
    return {
      paused: row['paused'] === true,
      reason: str(row, 'reason'),
      changedBy: str(row, 'changed_by'),
      changedAt: dateOrNull(row, 'changed_at'),
    };
  }

  async setPaused(paused: boolean, reason: string, actor: string): Promise<AutomationControl> {
    await this.db.query(
      `UPDATE automation_control SET paused = $1, reason = $2, changed_by = $3, changed_at = now()
        WHERE id = 1`,
      [paused, reason, actor],
    );
    return this.control();
  }

  async leader(): Promise<LeaderRecord> {
    const row = await firstRow(this.db, 'SELECT * FROM automation_leader WHERE id = 1');
    if (row === undefined) throw new Error('automation_leader has no row (migration 0005)');
    return {
      epoch: str(row, 'epoch'),
      nodeId: strOrNull(row, 'node_id'),
      acquiredAt: dateOrNull(row, 'acquired_at'),
      heartbeatAt: dateOrNull(row, 'heartbeat_at'),
    };
  }

  /**
   * Makes `nodeId` the leader with a new epoch. Waits for transactions of the previous leader
   * that hold the fence (`FOR SHARE`), so none of them commits after the bump.
   * @returns the new epoch
   */
  async claimEpoch(nodeId: string): Promise<string> {
    const row = await firstRow(
      this.db,
      `UPDATE automation_leader SET epoch = epoch + 1, node_id = $1, acquired_at = now(),
              heartbeat_at = now()
        WHERE id = 1 RETURNING epoch`,
      [nodeId],
    );
    if (row === undefined) throw new Error('automation_leader has no row (migration 0005)');
    return str(row, 'epoch');
  }

  /** Records the leader's heartbeat. @returns false when `epoch` is no longer current */
  async heartbeat(epoch: string): Promise<boolean> {
    return (
      (await touched(
        this.db,
        'UPDATE automation_leader SET heartbeat_at = now() WHERE id = 1 AND epoch = $1',
        [epoch],
      )) > 0
    );
  }

  /**
   * The fence: holds the leader row shared until the transaction ends, so no new leader can
   * claim an epoch before this transaction commits.
   * @throws C2Error `C2_CONFLICT` when `epoch` is not the current one (this node was deposed)
   */
  async assertEpoch(epoch: string): Promise<void> {
    const row = await firstRow(
      this.db,
      'SELECT epoch FROM automation_leader WHERE id = 1 FOR SHARE',
    );
    if (row === undefined || str(row, 'epoch') !== epoch) {
      throw new C2Error('C2_CONFLICT', 'this node is no longer the automation leader', {
        details: { epoch, current: row === undefined ? '' : str(row, 'epoch') },
      });
    }
  }

  /** The newest event sequence number (0 when none). */
  async lastEventSeq(): Promise<string> {
    const row = await firstRow(this.db, 'SELECT coalesce(max(seq), 0) AS seq FROM events');
    return row === undefined ? '0' : str(row, 'seq');
  }

  /** Events after `seq`, in seq order (every type: the caller needs the gaps too). */
  async eventsAfter(seq: string, limit: number): Promise<CountableEvent[]> {
    return (
      await rows(
        this.db,
        'SELECT seq, at, type, client_name, topic FROM events WHERE seq > $1 ORDER BY seq LIMIT $2',
        [seq, limit],
      )
    ).map((r) => ({
      seq: str(r, 'seq'),
      at: date(r, 'at'),
      type: str(r, 'type'),
      clientName: strOrNull(r, 'client_name'),
      topic: strOrNull(r, 'topic'),
    }));
  }
}

/** The automation store: reads on the pool, transactions, and fenced transactions. */
export class PgAutomationStore {
  readonly read: PgAutomation;

  /** @param pool - a pool whose search_path holds the migrated schema (owned by the caller) */
  constructor(private readonly pool: pg.Pool) {
    // Reads, like transactions, report a lost or silent database as C2_UNAVAILABLE.
    this.read = new PgAutomation(translatingFailures(pool));
  }

  transaction<T>(work: (tx: PgAutomation) => Promise<T>): Promise<T> {
    return withTransaction(this.pool, (client) => work(new PgAutomation(client)));
  }

  /**
   * A transaction that first checks the leader epoch (and holds the fence until commit): a
   * deposed leader's write fails with `C2_CONFLICT` and changes nothing.
   */
  fenced<T>(epoch: string, work: (tx: PgAutomation) => Promise<T>): Promise<T> {
    return this.transaction(async (tx) => {
      await tx.assertEpoch(epoch);
      return work(tx);
    });
  }
}
