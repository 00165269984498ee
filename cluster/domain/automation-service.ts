/**
 * Use-cases of the automation rules API: list, get, create, update (optimistic concurrency),
 * delete, add and remove triggers and targets, the pause switch, the engine status and the firing
 * history. Every edit is one transaction; an edit with an expected version that another edit
 * already moved past fails with `C2_CONFLICT` and changes nothing (no lost updates, unlike the
 * reference CLI's read-modify-write).
 */
import { C2Error } from '../errors.ts';
import type {
  AutomationControl,
  AutomationRuleRow,
  FiringRow,
  LeaderRecord,
  PgAutomation,
  PgAutomationStore,
  RuleDraft,
} from '../storage/pg-automation.ts';
import {
  checkCoherence,
  checkExpectedVersion,
  checkRuleDraft,
  checkRuleId,
  checkTarget,
  checkTrigger,
  MAX_TARGETS,
  MAX_TRIGGERS,
} from './automation-rules.ts';
import { type AutomationCapabilities, checkRunnable } from './automation-capabilities.ts';
import type { RequestContext } from './ports.ts';
import { hasControlCharacter } from './validation.ts';

/** The engine status shown by the API. */
export interface AutomationStatus {
  readonly control: AutomationControl;
  readonly leader: LeaderRecord;
  /** Firings planned and not finished yet. */
  readonly pendingFirings: number;
}

function notFoundRule(id: string): C2Error {
  return new C2Error('C2_NOT_FOUND', 'rule not found', { details: { ruleId: id } });
}

function conflict(id: string, expected: number, current: number): C2Error {
  return new C2Error(
    'C2_CONFLICT',
    `rule ${id} is at version ${current}, not ${expected}: re-read it and retry`,
    { details: { ruleId: id, expectedVersion: expected, currentVersion: current } },
  );
}

function withoutKeys(row: AutomationRuleRow): RuleDraft {
  return {
    description: row.description,
    action: row.action,
    triggers: row.triggers,
    targets: row.targets,
    rollout: row.rollout,
    enabled: row.enabled,
  };
}

/** The automation rules service; API adapters call this. */
export class AutomationService {
  /**
   * @param store - the automation tables
   * @param capabilities - what the deployment can run: an enabled rule that could never succeed
   *   is refused when written
   */
  constructor(
    private readonly store: PgAutomationStore,
    private readonly capabilities: AutomationCapabilities,
  ) {}

  listRules(): Promise<AutomationRuleRow[]> {
    return this.store.read.listRules();
  }

  /** @throws C2Error `C2_NOT_FOUND`, `C2_VALIDATION` */
  async getRule(ruleId: unknown): Promise<AutomationRuleRow> {
    const id = checkRuleId(ruleId);
    const row = await this.store.read.rule(id);
    if (row === undefined) throw notFoundRule(id);
    return row;
  }

  /**
   * Creates a rule. Schedules start now (a new rule does not fire at once, unlike the
   * reference), event counts start at the newest event.
   * @throws C2Error `C2_VALIDATION`; `C2_FAILED_PRECONDITION` or `C2_CRYPTO_MODE` for an enabled
   *   rule that could never succeed here (see {@link checkRunnable})
   */
  createRule(_ctx: RequestContext, input: unknown): Promise<AutomationRuleRow> {
    const draft = checkRunnable(checkRuleDraft(input), this.capabilities);
    return this.store.transaction(async (tx) => {
      const row = await tx.insertRule(draft);
      await initStates(tx, row);
      return row;
    });
  }

  /**
   * Replaces a rule. With `expectedVersion`, only if the rule is still at that version.
   * Triggers that keep their id keep their schedule and counters.
   * @throws C2Error `C2_NOT_FOUND`, `C2_CONFLICT`, `C2_VALIDATION`; as {@link createRule} for a
   *   rule that could never succeed here (every edit that leaves the rule enabled checks it)
   */
  updateRule(
    _ctx: RequestContext,
    ruleId: unknown,
    input: unknown,
    expectedVersion?: unknown,
  ): Promise<AutomationRuleRow> {
    const id = checkRuleId(ruleId);
    const draft = checkRuleDraft(input);
    const expected = checkExpectedVersion(expectedVersion);
    return this.edit(id, expected, () => draft);
  }

  /** @throws C2Error `C2_NOT_FOUND`, `C2_CONFLICT`, `C2_VALIDATION` */
  async deleteRule(
    _ctx: RequestContext,
    ruleId: unknown,
    expectedVersion?: unknown,
  ): Promise<string> {
    const id = checkRuleId(ruleId);
    const expected = checkExpectedVersion(expectedVersion);
    await this.store.transaction(async (tx) => {
      const row = await tx.rule(id, true);
      if (row === undefined) throw notFoundRule(id);
      if (expected !== undefined && row.version !== expected)
        throw conflict(id, expected, row.version);
      await tx.deleteRule(id);
    });
    return id;
  }

  /** Adds a trigger (server side, in one transaction). @throws C2Error as {@link updateRule} */
  addTrigger(
    _ctx: RequestContext,
    ruleId: unknown,
    trigger: unknown,
    expectedVersion?: unknown,
  ): Promise<AutomationRuleRow> {
    const id = checkRuleId(ruleId);
    const spec = checkTrigger(trigger);
    return this.edit(id, checkExpectedVersion(expectedVersion), (d) => {
      if (d.triggers.length >= MAX_TRIGGERS)
        throw new C2Error('C2_VALIDATION', `a rule has at most ${MAX_TRIGGERS} triggers`, {
          details: { field: 'trigger' },
        });
      return { ...d, triggers: [...d.triggers, spec] };
    });
  }

  /** Removes a trigger by id. @throws C2Error as {@link updateRule} */
  removeTrigger(
    _ctx: RequestContext,
    ruleId: unknown,
    triggerId: unknown,
    expectedVersion?: unknown,
  ): Promise<AutomationRuleRow> {
    const id = checkRuleId(ruleId);
    return this.edit(id, checkExpectedVersion(expectedVersion), (d) => {
      if (!d.triggers.some((t) => t.id === triggerId))
        throw new C2Error('C2_NOT_FOUND', 'trigger not found', {
          details: { ruleId: id, triggerId: String(triggerId) },
        });
      return { ...d, triggers: d.triggers.filter((t) => t.id !== triggerId) };
    });
  }

  /** Adds a target. @throws C2Error as {@link updateRule} */
  addTarget(
    _ctx: RequestContext,
    ruleId: unknown,
    target: unknown,
    expectedVersion?: unknown,
  ): Promise<AutomationRuleRow> {
    const id = checkRuleId(ruleId);
    const spec = checkTarget(target);
    return this.edit(id, checkExpectedVersion(expectedVersion), (d) => {
      if (d.targets.length >= MAX_TARGETS)
        throw new C2Error('C2_VALIDATION', `a rule has at most ${MAX_TARGETS} targets`, {
          details: { field: 'target' },
        });
      return { ...d, targets: [...d.targets, spec] };
    });
  }

  /** Removes a target by id. @throws C2Error as {@link updateRule} */
  removeTarget(
    _ctx: RequestContext,
    ruleId: unknown,
    targetId: unknown,
    expectedVersion?: unknown,
  ): Promise<AutomationRuleRow> {
    const id = checkRuleId(ruleId);
    return this.edit(id, checkExpectedVersion(expectedVersion), (d) => {
      if (!d.targets.some((t) => t.id === targetId))
        throw new C2Error('C2_NOT_FOUND', 'target not found', {
          details: { ruleId: id, targetId: String(targetId) },
        });
      return { ...d, targets: d.targets.filter((t) => t.id !== targetId) };
    });
  }

  /** The pause switch, the leader and the open firings. */
  async status(): Promise<AutomationStatus> {
    const [control, leader, pending] = await Promise.all([
      this.store.read.control(),
      this.store.read.leader(),
      // Counted, not listed: a backlog (automation paused for a day, a catch-up) can pass any
      // page size, and a page's length stopped at it.
      this.store.read.countPendingFirings(),
    ]);
    return { control, leader, pendingFirings: pending };
  }

  /** Pauses automation cluster-wide (planned outage): nothing is planned or run until resume. */
  pause(ctx: RequestContext, reason: unknown): Promise<AutomationControl> {
    const why = typeof reason === 'string' ? reason.slice(0, 512) : '';
    // NUL cannot be stored (a 500), and escapes would reach the terminals that show the reason.
    if (hasControlCharacter(why))
      return Promise.reject(
        new C2Error('C2_VALIDATION', 'reason must not contain control characters', {
          details: { field: 'reason' },
        }),
      );
    return this.store.read.setPaused(true, why, ctx.actor);
  }

  /** Resumes automation; missed slots follow the catch-up policy (docs/automation.md). */
  resume(ctx: RequestContext): Promise<AutomationControl> {
    return this.store.read.setPaused(false, '', ctx.actor);
  }

  /**
   * Recent firings (newest first), of one rule or all.
   * @throws C2Error `C2_VALIDATION`; `C2_NOT_FOUND` for a rule that does not exist (an empty list
   *   would read as "it never fired", and a mistyped id would go unnoticed)
   */
  async listFirings(ruleId: unknown, limit: unknown): Promise<FiringRow[]> {
    const id =
      ruleId === undefined || ruleId === '' || ruleId === null ? undefined : checkRuleId(ruleId);
    const n = limit === undefined || limit === 0 || limit === null ? 50 : Number(limit);
    if (!Number.isSafeInteger(n) || n < 1 || n > 1000)
      throw new C2Error('C2_VALIDATION', 'limit must be between 1 and 1000', {
        details: { field: 'limit' },
      });
    const firings = await this.store.read.listFirings(id, n);
    // Only an empty answer needs the check: a rule with firings exists (they go with it).
    if (id !== undefined && firings.length === 0 && (await this.store.read.rule(id)) === undefined)
      throw notFoundRule(id);
    return firings;
  }

  private edit(
    id: string,
    expected: number | undefined,
    change: (draft: RuleDraft) => RuleDraft,
  ): Promise<AutomationRuleRow> {
    return this.store.transaction(async (tx) => {
      const row = await tx.rule(id, true);
      if (row === undefined) throw notFoundRule(id);
      if (expected !== undefined && row.version !== expected)
        throw conflict(id, expected, row.version);
      const draft = checkRunnable(checkCoherence(change(withoutKeys(row))), this.capabilities);
      const updated = await tx.updateRule(id, row.version, draft);
      if (updated === undefined) throw conflict(id, row.version, row.version + 1);
      await tx.pruneTriggerStates(
        id,
        updated.triggers.map((t) => t.id),
      );
      await initStates(tx, updated);
      if (!row.enabled && updated.enabled) await restartSchedules(tx, updated);
      return updated;
    });
  }
}

/**
 * Moves the time triggers of a rule being enabled to its newest slot at the enabling (intervals
 * keep their grid), so that it fires from its next slot, like a new rule: a disabled rule owes
 * nothing. The leader moves them on while the rule is disabled, but only while an engine runs: a
 * rule enabled after every worker was down fired, on their return, the slots of its disabled days.
 */
async function restartSchedules(tx: PgAutomation, rule: AutomationRuleRow): Promise<void> {
  const states = await tx.triggerStates(rule.id);
  const enabledAt = rule.updatedAt.getTime();
  for (const trigger of rule.triggers) {
    const state = states.get(trigger.id);
    const from = state?.cursorAt?.getTime();
    if (state === undefined || from === undefined || from >= enabledAt) continue;
    let cursor: number;
    if (trigger.kind === 'interval') {
      const every = trigger.everySeconds * 1000;
      cursor = from + Math.floor((enabledAt - from) / every) * every;
    } else if (trigger.kind === 'cron') {
      cursor = enabledAt; // its slots are instants of their own: the next one after the enabling
    } else continue;
    if (cursor > from) await tx.saveTriggerState(rule.id, { ...state, cursorAt: new Date(cursor) });
  }
}

/** Starts the state of triggers that have none: schedules from now, event counts from the newest event. */
async function initStates(tx: PgAutomation, rule: AutomationRuleRow): Promise<void> {
  const states = await tx.triggerStates(rule.id);
  const missing = rule.triggers.filter((t) => !states.has(t.id));
  if (missing.length === 0) return;
  const seq = await tx.lastEventSeq();
  // The database clock of the change (not this node's): schedules start when the trigger did.
  const now = rule.updatedAt;
  for (const t of missing)
    await tx.saveTriggerState(rule.id, {
      triggerId: t.id,
      cursorAt: now,
      eventSeq: seq,
      counter: 0,
    });
}
