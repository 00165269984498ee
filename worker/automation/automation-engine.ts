/**
 * The automation engine. Every node with the worker role runs one; the leader election picks the
 * one that acts. Each tick, the leader:
 *
 * 1. reads the pause switch (paused: plans and starts nothing; followers read it too, for the
 *    metric only);
 * 2. plans: for each enabled rule, in one transaction fenced by its epoch, works out what is due
 *    (time slots, keys past their age, event thresholds, members removed) and records one firing
 *    per (rule, due time, subject); the UNIQUE key makes a second plan of the same slot a no-op,
 *    and the trigger cursors move in the same transaction. The schedules of disabled rules move
 *    on without firing (paused or not), so enabling one does not fire the slots it missed;
 * 3. starts the pending firings, oldest first, including those a previous leader left unfinished,
 *    and records each outcome (fenced again). Rules run side by side, each one firing at a time
 *    in due order, so a firing waiting on its rollout rate holds back neither the planning nor
 *    the other rules; the tick does not wait for them.
 *
 * A firing is therefore planned once (the record), and its effects happen once (idempotent C2
 * calls keyed by firing and subject), whichever leader plans, runs or resumes it.
 */
import type { FiringRow, TriggerSpec, TriggerStateRow } from '../../cluster/storage/index.ts';
import type {
  AutomationRuleRow,
  FiringSnapshot,
  NewFiring,
  PgAutomationStore,
} from '../../cluster/storage/index.ts';
import type { LeaderElection, Leadership } from '../../cluster/coordination/leader-election.ts';
import type { AutomationCapabilities } from '../../cluster/domain/index.ts';
import { FiringPool } from './firing-pool.ts';
import {
  isLastingRefusal,
  resolveTargets,
  type AutomationC2,
  type FiringOutcome,
} from './firing-runner.ts';
import type { Sleep } from './rollout-policy.ts';
import { planSchedule, type TimeTrigger } from './schedule.ts';
import { countEvents, memberRemovals, settledEvents } from './trigger-evaluation.ts';

/** Observes the engine (metrics); every method optional. */
export interface AutomationObserver {
  leader?(isLeader: boolean): void;
  paused?(isPaused: boolean): void;
  firing?(outcome: FiringOutcome['status'] | 'planned' | 'interrupted' | 'deferred'): void;
  /** A firing ended (its outcome is recorded): for the log, so that a failure is not silent. */
  finished?(firing: Pick<FiringRow, 'id' | 'ruleId' | 'dueAt'>, outcome: FiringOutcome): void;
}

/** Options of {@link AutomationEngine}. */
export interface AutomationEngineOptions {
  readonly store: PgAutomationStore;
  readonly c2: AutomationC2;
  readonly election: LeaderElection;
  /**
   * What this node can run: a firing whose action cannot run here (a rule accepted by an API node
   * with other settings) ends `failed` with the reason, naming `nodeId`. Default: not checked.
   */
  readonly capabilities?: AutomationCapabilities;
  /** This node's id (for such reasons). */
  readonly nodeId?: string;
  /** Milliseconds since the epoch (tests inject one). Default `Date.now`. */
  readonly clock?: () => number;
  /** Pause between ticks. Default 1000 ms. */
  readonly tickMs?: number;
  /** Missed slots older than this are coalesced into one firing. Default 15 minutes. */
  readonly catchUpWindowMs?: number;
  /** How often keys are checked against `max-key-age` triggers. Default 30 000 ms. */
  readonly keyAgeScanMs?: number;
  /** Events read per trigger per tick. Default 1000. */
  readonly eventBatch?: number;
  /** Firings running at once at most (each of another rule). Default 8. */
  readonly maxConcurrentFirings?: number;
  readonly sleep?: Sleep;
  readonly observer?: AutomationObserver;
  readonly onError?: (err: unknown, context: string) => void;
}

/** What one tick did (for tests and logs). */
export interface TickReport {
  readonly role: 'follower' | 'paused' | 'leader';
  readonly planned: number;
  /** Rules whose pending firings started running in the background. */
  readonly started: number;
}

/** Default catch-up window. */
export const DEFAULT_CATCH_UP_WINDOW_MS = 15 * 60_000;

const isTimeTrigger = (t: TriggerSpec): t is TimeTrigger =>
  t.kind === 'cron' || t.kind === 'interval';

const abortableSleep: Sleep = (ms, signal) =>
  new Promise((resolve) => {
    if (signal.aborted) {
      resolve();
      return;
    }
    const timer = setTimeout(done, ms);
    function done(): void {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });

function snapshotOf(
  rule: AutomationRuleRow,
  subjects?: FiringSnapshot['subjects'],
): FiringSnapshot {
  return {
    action: rule.action,
    targets: rule.targets,
    rollout: rule.rollout,
    ...(subjects === undefined ? {} : { subjects }),
  };
}

/** The automation engine of one node. */
export class AutomationEngine {
  readonly #o: AutomationEngineOptions;
  readonly #clock: () => number;
  readonly #tickMs: number;
  readonly #window: number;
  readonly #keyAgeScanMs: number;
  #lastKeyAgeScan = -Infinity;
  readonly #pool: FiringPool;
  #timer: NodeJS.Timeout | undefined;
  #tick: Promise<unknown> | undefined;
  #abort = new AbortController();
  #stopped = true;
  #wasLeader = false;
  #wasPaused: boolean | undefined;

  constructor(options: AutomationEngineOptions) {
    this.#o = options;
    this.#clock = options.clock ?? Date.now;
    this.#tickMs = options.tickMs ?? 1000;
    this.#window = options.catchUpWindowMs ?? DEFAULT_CATCH_UP_WINDOW_MS;
    this.#keyAgeScanMs = options.keyAgeScanMs ?? 30_000;
    this.#pool = new FiringPool({
      store: options.store,
      c2: options.c2,
      clock: this.#clock,
      sleep: options.sleep ?? abortableSleep,
      maxConcurrent: options.maxConcurrentFirings ?? 8,
      ...(options.capabilities === undefined ? {} : { capabilities: options.capabilities }),
      ...(options.nodeId === undefined ? {} : { nodeId: options.nodeId }),
      leads: (leadership) => this.#leads(leadership),
      signal: () => this.#abort.signal,
      observe: (outcome) => this.#o.observer?.firing?.(outcome),
      finished: (firing, outcome) => this.#o.observer?.finished?.(firing, outcome),
      ...(options.onError === undefined ? {} : { onError: options.onError }),
    });
  }

  /** The scheduler tick in force. */
  get tickMs(): number {
    return this.#tickMs;
  }

  /** Whether this node leads now. */
  get isLeader(): boolean {
    return this.#o.election.current() !== undefined;
  }

  /** Starts the election and the tick loop. */
  start(): void {
    if (!this.#stopped) return;
    this.#stopped = false;
    this.#abort = new AbortController();
    this.#o.election.start();
    this.#schedule(0);
  }

  /** Stops ticking, interrupts the running firings (they stay pending) and steps down. */
  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    this.#abort.abort();
    await this.#tick;
    await this.idle();
    await this.#o.election.stop();
    this.#observeLeader(false);
  }

  /** Resolves once no firing runs on this node. */
  idle(): Promise<void> {
    return this.#pool.idle();
  }

  /** One tick: plan and start firings if this node leads and automation is not paused. */
  async tick(): Promise<TickReport> {
    const leadership = this.#o.election.current();
    this.#observeLeader(leadership !== undefined);
    if (leadership === undefined) {
      // A follower reads the switch too, for its c2_automation_paused only: a former leader kept
      // the value it last saw as leader (paused) after a resume, and the others never showed a
      // pause. Its failure is the leader's to report (the database away): nothing depends on it.
      await this.#o.store.read.control().then(
        (control) => {
          this.#observePaused(control.paused);
        },
        () => undefined,
      );
      return { role: 'follower', planned: 0, started: 0 };
    }
    const control = await this.#o.store.read.control();
    this.#observePaused(control.paused);
    if (control.paused) {
      // Catch-up after the pause is owed to enabled rules only.
      await this.#holdDisabled(leadership.epoch, await this.#o.store.read.listRules());
      return { role: 'paused', planned: 0, started: 0 };
    }
    const planned = await this.plan(leadership);
    const started = await this.#pool.start(leadership);
    return { role: 'leader', planned, started };
  }

  /** Plans every enabled rule. @returns the firings recorded */
  async plan(leadership: Leadership): Promise<number> {
    const now = this.#clock();
    const scanKeys = now - this.#lastKeyAgeScan >= this.#keyAgeScanMs;
    let planned = 0;
    const rules = await this.#o.store.read.listRules();
    await this.#holdDisabled(leadership.epoch, rules);
    for (const listed of rules) {
      if (!listed.enabled || listed.triggers.length === 0) continue;
      try {
        planned += await this.#planRule(leadership.epoch, listed.id, now, scanKeys);
      } catch (err) {
        this.#o.onError?.(err, `planning rule ${listed.id}`);
        if (this.#o.election.current() === undefined) break;
      }
    }
    if (scanKeys) this.#lastKeyAgeScan = now;
    for (let i = 0; i < planned; i++) this.#o.observer?.firing?.('planned');
    return planned;
  }

  #leads(leadership: Leadership): boolean {
    return this.#o.election.current()?.epoch === leadership.epoch && !this.#abort.signal.aborted;
  }

  /**
   * Moves the time triggers of disabled rules to their newest slot without recording firings:
   * a disabled rule owes nothing, and once enabled it fires at its next slot (like a new rule).
   */
  async #holdDisabled(epoch: string, rules: readonly AutomationRuleRow[]): Promise<void> {
    const now = new Date(this.#clock());
    const moved = (rule: AutomationRuleRow, states: Map<string, TriggerStateRow>) =>
      rule.triggers.filter(isTimeTrigger).flatMap((t) => {
        const state = states.get(t.id);
        if (state === undefined) return []; // none yet: planning starts it at the rule's edit
        const cursor = planSchedule(t, state.cursorAt ?? rule.updatedAt, now, this.#window).cursor;
        return cursor === undefined ? [] : [{ ...state, cursorAt: cursor }];
      });
    for (const listed of rules) {
      if (listed.enabled || !listed.triggers.some(isTimeTrigger)) continue;
      try {
        // Read first: most ticks nothing moves, and then no transaction is needed.
        if (moved(listed, await this.#o.store.read.triggerStates(listed.id)).length === 0) continue;
        await this.#o.store.fenced(epoch, async (tx) => {
          const rule = await tx.rule(listed.id, 'share');
          if (rule === undefined || rule.enabled) return;
          for (const state of moved(rule, await tx.triggerStates(rule.id)))
            await tx.saveTriggerState(rule.id, state);
        });
      } catch (err) {
        this.#o.onError?.(err, `holding disabled rule ${listed.id}`);
        if (this.#o.election.current() === undefined) break;
      }
    }
  }

  async #planRule(epoch: string, ruleId: string, now: number, scanKeys: boolean): Promise<number> {
    // Key ages are read outside the transaction (they need the C2 service); the firing key
    // (subject = name and version) keeps a rescan from planning the same rotation twice.
    const rule0 = await this.#o.store.read.rule(ruleId);
    if (rule0 === undefined) return 0;
    let keyAgeFirings: NewFiring[] = [];
    try {
      if (scanKeys) keyAgeFirings = await this.#keyAgeFirings(rule0, now);
    } catch (err) {
      // A refusal that repeats at every scan (a target pattern over its time budget) must not
      // keep the rule's other triggers from being planned; it is reported at every scan.
      if (!isLastingRefusal(err)) throw err;
      this.#o.onError?.(err, `planning rule ${ruleId}: max-key-age targets`);
    }
    return this.#o.store.fenced(epoch, async (tx) => {
      const rule = await tx.rule(ruleId, 'share');
      if (rule?.enabled !== true) return 0;
      const states = await tx.triggerStates(rule.id);
      const firings: NewFiring[] = [];
      const base = (trigger: TriggerSpec) => ({
        ruleId: rule.id,
        triggerId: trigger.id,
        ruleVersion: rule.version,
      });
      for (const trigger of rule.triggers) {
        const state = states.get(trigger.id) ?? {
          triggerId: trigger.id,
          cursorAt: rule.updatedAt,
          eventSeq: await tx.lastEventSeq(),
          counter: 0,
        };
        switch (trigger.kind) {
          case 'cron':
          case 'interval': {
            const p = planSchedule(
              trigger,
              state.cursorAt ?? rule.updatedAt,
              new Date(now),
              this.#window,
            );
            if (p.coalesced !== undefined)
              firings.push({
                ...base(trigger),
                dueAt: p.coalesced.dueAt,
                subject: '',
                snapshot: snapshotOf(rule),
                coalesced: p.coalesced.count,
              });
            for (const slot of p.slots)
              firings.push({
                ...base(trigger),
                dueAt: slot,
                subject: '',
                snapshot: snapshotOf(rule),
                coalesced: 1,
              });
            if (p.cursor !== undefined)
              await tx.saveTriggerState(rule.id, { ...state, cursorAt: p.cursor });
            break;
          }
          case 'event':
          case 'member-removed': {
            const batch = await tx.eventsAfter(state.eventSeq, this.#o.eventBatch ?? 1000);
            const settled = settledEvents(state.eventSeq, batch, now);
            if (trigger.kind === 'event') {
              const counted = countEvents(trigger, rule.targets, settled.events, state.counter);
              for (const f of counted.firings)
                firings.push({
                  ...base(trigger),
                  dueAt: f.at,
                  subject: `event:${f.seq}`,
                  snapshot: snapshotOf(rule),
                  coalesced: 1,
                });
              if (settled.cursor !== state.eventSeq || counted.counter !== state.counter)
                await tx.saveTriggerState(rule.id, {
                  ...state,
                  eventSeq: settled.cursor,
                  counter: counted.counter,
                });
            } else {
              for (const f of memberRemovals(rule.targets, settled.events))
                firings.push({
                  ...base(trigger),
                  dueAt: f.at,
                  subject: `event:${f.seq}`,
                  snapshot: snapshotOf(rule, { kind: 'topic', names: [f.topic ?? ''] }),
                  coalesced: 1,
                });
              if (settled.cursor !== state.eventSeq)
                await tx.saveTriggerState(rule.id, { ...state, eventSeq: settled.cursor });
            }
            break;
          }
          case 'max-key-age':
            for (const f of keyAgeFirings)
              if (f.triggerId === trigger.id)
                firings.push({
                  ...f,
                  ruleVersion: rule.version,
                  snapshot: { ...f.snapshot, targets: rule.targets, rollout: rule.rollout },
                });
            break;
        }
      }
      let recorded = 0;
      for (const f of firings) if (await tx.insertFiring(f, epoch)) recorded += 1;
      return recorded;
    });
  }

  /** Firings owed by `max-key-age` triggers: one per target whose current key is too old. */
  async #keyAgeFirings(rule: AutomationRuleRow, now: number): Promise<NewFiring[]> {
    const triggers = rule.triggers.filter(
      (t): t is Extract<TriggerSpec, { kind: 'max-key-age' }> => t.kind === 'max-key-age',
    );
    if (triggers.length === 0) return [];
    const kind = rule.action === 'rotate-topic-key' ? 'topic' : 'client';
    const out: NewFiring[] = [];
    for (const name of await resolveTargets(this.#o.c2, kind, rule.targets)) {
      const details = await (
        kind === 'topic' ? this.#o.c2.getTopic(name) : this.#o.c2.getClient(name)
      ).catch(() => undefined);
      const current = details?.keys.find((k) => k.version === details.keyVersion);
      if (details === undefined || current === undefined) continue;
      const created = Date.parse(current.createdAt);
      for (const t of triggers) {
        const dueAt = created + t.maxAgeSeconds * 1000;
        if (dueAt > now) continue;
        out.push({
          ruleId: rule.id,
          triggerId: t.id,
          ruleVersion: rule.version,
          dueAt: new Date(dueAt),
          subject: `${kind}:${name}:v${details.keyVersion}`,
          snapshot: snapshotOf(rule, { kind, names: [name] }),
          coalesced: 1,
        });
      }
    }
    return out;
  }

  #observePaused(paused: boolean): void {
    if (this.#wasPaused === paused) return;
    this.#wasPaused = paused;
    this.#o.observer?.paused?.(paused);
  }

  #observeLeader(isLeader: boolean): void {
    if (isLeader === this.#wasLeader) return;
    this.#wasLeader = isLeader;
    this.#o.observer?.leader?.(isLeader);
  }

  #schedule(delayMs: number): void {
    if (this.#stopped) return;
    this.#timer = setTimeout(() => {
      const run = this.tick()
        .catch((err: unknown) => {
          this.#o.onError?.(err, 'automation tick');
        })
        .finally(() => {
          this.#tick = undefined;
          this.#schedule(this.#tickMs);
        });
      this.#tick = run;
    }, delayMs);
  }
}

/** For tests: the firings of a rule in due order. */
export async function firingsOf(store: PgAutomationStore, ruleId: string): Promise<FiringRow[]> {
  return (await store.read.listFirings(ruleId, 1000)).reverse();
}
