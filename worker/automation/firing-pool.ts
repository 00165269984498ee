/**
 * The leader's firings, run side by side in the background of the tick: each rule's pending
 * firings one at a time, in due order, and at most `maxConcurrent` rules at once. A slow firing
 * (waiting for its rollout rate, up to the rollout timeout) thus holds back only the later
 * firings of its own rule, never the planning nor another rule (a member-removed rotation due
 * meanwhile). Every start and finish is fenced by the leader's epoch, as before.
 */
import type { Leadership } from '../../cluster/coordination/leader-election.ts';
import type { AutomationCapabilities } from '../../cluster/domain/index.ts';
import type { FiringRow, PgAutomationStore } from '../../cluster/storage/index.ts';
import {
  FiringDeferred,
  FiringInterrupted,
  runFiring,
  type AutomationC2,
  type FiringOutcome,
} from './firing-runner.ts';
import type { Sleep } from './rollout-policy.ts';

/**
 * Pending firings read per tick. Generous, so that a rule with a long backlog (the list is in due
 * order) does not hide the firings of the other rules behind it.
 */
const PENDING_BATCH = 1000;

/** What a {@link FiringPool} needs from its engine. */
export interface FiringPoolOptions {
  readonly store: PgAutomationStore;
  readonly c2: AutomationC2;
  readonly clock: () => number;
  readonly sleep: Sleep;
  readonly maxConcurrent: number;
  /** What this node can run (see {@link FiringContext.capabilities}); default: not checked. */
  readonly capabilities?: AutomationCapabilities;
  /** This node's id, named in the reason of a firing it cannot run. */
  readonly nodeId?: string;
  /** Whether `leadership` is still this node's and the engine is not stopping. */
  readonly leads: (leadership: Leadership) => boolean;
  /** The engine's stop signal (a firing it interrupts stays pending). */
  readonly signal: () => AbortSignal;
  readonly observe: (outcome: FiringOutcome['status'] | 'interrupted' | 'deferred') => void;
  /** A firing ended and its outcome was recorded. */
  readonly finished?: (firing: FiringRow, outcome: FiringOutcome) => void;
  readonly onError?: (err: unknown, context: string) => void;
}

/** The firings running on this node. */
export class FiringPool {
  readonly #o: FiringPoolOptions;
  /** The rules whose firings run now, with the run. */
  readonly #running = new Map<string, Promise<void>>();

  constructor(options: FiringPoolOptions) {
    this.#o = options;
  }

  /**
   * Starts the pending firings of the rules that have none running here (up to the bound).
   * @returns how many rules started
   */
  async start(leadership: Leadership): Promise<number> {
    if (this.#running.size >= this.#o.maxConcurrent) return 0;
    const byRule = new Map<string, FiringRow[]>();
    for (const firing of await this.#o.store.read.pendingFirings(PENDING_BATCH)) {
      if (this.#running.has(firing.ruleId)) continue; // one firing at a time per rule
      const list = byRule.get(firing.ruleId) ?? [];
      list.push(firing);
      byRule.set(firing.ruleId, list);
    }
    let started = 0;
    for (const [ruleId, firings] of byRule) {
      if (this.#running.size >= this.#o.maxConcurrent || !this.#o.leads(leadership)) break;
      const run = this.#run(leadership, firings)
        .catch((err: unknown) => {
          this.#o.onError?.(err, `running firings of rule ${ruleId}`);
        })
        .finally(() => {
          this.#running.delete(ruleId);
        });
      this.#running.set(ruleId, run);
      started += 1;
    }
    return started;
  }

  /** Resolves once no firing runs. */
  async idle(): Promise<void> {
    while (this.#running.size > 0) await Promise.all(this.#running.values());
  }

  /** Runs firings of one rule in order, until done or leadership, the pause or an error stop it. */
  async #run(leadership: Leadership, firings: readonly FiringRow[]): Promise<void> {
    const { store } = this.#o;
    for (const firing of firings) {
      if (!this.#o.leads(leadership)) return;
      if (!(await store.fenced(leadership.epoch, (tx) => tx.startFiring(firing.id)))) continue;
      const started = firing.startedAt ?? new Date(this.#o.clock());
      let outcome: FiringOutcome;
      try {
        outcome = await runFiring(
          { ...firing, startedAt: started },
          {
            c2: this.#o.c2,
            clock: this.#o.clock,
            sleep: this.#o.sleep,
            signal: this.#o.signal(),
            ...(this.#o.capabilities === undefined ? {} : { capabilities: this.#o.capabilities }),
            ...(this.#o.nodeId === undefined ? {} : { nodeId: this.#o.nodeId }),
            shouldYield: async () =>
              !this.#o.leads(leadership) || (await store.read.control()).paused,
            // Disabled or deleted (its record went with it): the rest of the firing is not owed.
            shouldStop: async () => (await store.read.rule(firing.ruleId))?.enabled !== true,
            // Fenced like its outcome; a failure only delays what operators see (and a lost
            // leadership is noticed by shouldYield before the next target).
            onProgress: async (progress) => {
              try {
                await store.fenced(leadership.epoch, (tx) =>
                  tx.saveFiringProgress(firing.id, { ...progress }),
                );
              } catch (err) {
                // Deposed meanwhile: the fence refused the write, and the next leader reruns it.
                if (this.#o.leads(leadership))
                  this.#o.onError?.(err, `saving the progress of firing ${firing.id}`);
              }
            },
          },
        );
      } catch (err) {
        if (err instanceof FiringInterrupted) {
          this.#o.observe('interrupted');
          return;
        }
        if (err instanceof FiringDeferred) {
          // Stays pending: run again from the next tick on; the subjects done answer from the
          // idempotency journal.
          this.#o.observe('deferred');
          this.#o.onError?.(err, `firing ${firing.id} of rule ${firing.ruleId} deferred`);
          return;
        }
        this.#o.onError?.(err, `running firing ${firing.id}`);
        return; // stays pending: retried next tick (its C2 calls are idempotent)
      }
      await store.fenced(leadership.epoch, (tx) =>
        tx.finishFiring(firing.id, outcome.status, { ...outcome.result }, leadership.epoch),
      );
      this.#o.observe(outcome.status);
      this.#o.finished?.(firing, outcome);
    }
  }
}
