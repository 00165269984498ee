/**
 * The automation part of a scenario: an interval rule rotating a topic of its own (no members,
 * outside the workload), created through the balancer before the faults; at the end the rule is
 * deleted, its last firing waited for, and the firings and the topic's version are read back
 * for the A1 check (automation-check.ts).
 */
import { httpJson } from '../bin/test/support/http-json.ts';
import {
  AUTOMATION_RECOVERY_MS,
  type AutomationObservation,
  type ObservedFiring,
} from './automation-check.ts';

/** Seconds between the rule's slots: short, so a run of a few seconds has several. */
export const AUTOMATION_INTERVAL_SECONDS = 1;

/** The rule: rotate `topic` every interval. */
function ruleSpec(topic: string): Record<string, unknown> {
  return {
    description: `chaos: rotate ${topic} every ${AUTOMATION_INTERVAL_SECONDS} s`,
    action: 'rotate-topic-key',
    triggers: [{ kind: 'interval', everySeconds: AUTOMATION_INTERVAL_SECONDS }],
    targets: [{ kind: 'topic', match: 'exact', expr: topic }],
  };
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** A rule under observation. */
export class AutomationProbe {
  private constructor(
    private readonly base: string,
    private readonly ruleId: string,
    private readonly topic: string,
  ) {}

  /**
   * Creates the topic and the rule, retrying while the cluster settles.
   * @throws Error when the API refuses for 20 s
   */
  static async start(base: string, topic: string): Promise<AutomationProbe> {
    const deadline = Date.now() + 20_000;
    for (;;) {
      const created = await httpJson(base, 'POST', `/e4/topic/${encodeURIComponent(topic)}`).catch(
        () => undefined,
      );
      if (created?.status === 200 || created?.status === 409) break;
      if (Date.now() > deadline) throw new Error(`cannot create the automation topic ${topic}`);
      await sleep(500);
    }
    for (;;) {
      const rule = await httpJson(base, 'POST', '/v1/automation/rules', {
        body: { rule: ruleSpec(topic) },
      }).catch(() => undefined);
      const id = rule?.json['id'];
      if (rule?.status === 200 && typeof id === 'string')
        return new AutomationProbe(base, id, topic);
      if (Date.now() > deadline) throw new Error('cannot create the automation rule');
      await sleep(500);
    }
  }

  /**
   * Waits until the engine has had time to catch up after the heal (`healedAt`, wall clock ms),
   * so that A1 can require every slot due until shortly before the end, then disables the rule
   * (no new slots; a firing not yet past its target stops, aborted), waits for its firings to
   * end, reads them and the topic's version back, then deletes the rule.
   */
  async finish(timeoutMs: number, healedAt: number): Promise<AutomationObservation> {
    await sleep(Math.max(0, healedAt + AUTOMATION_RECOVERY_MS + 2000 - Date.now()));
    const deadline = Date.now() + timeoutMs;
    let disabledAt = Date.now();
    for (;;) {
      disabledAt = Date.now();
      const res = await httpJson(this.base, 'PUT', `/v1/automation/rules/${this.ruleId}`, {
        body: { expectedVersion: 1, rule: { ...ruleSpec(this.topic), disabled: true } },
      }).catch(() => undefined);
      if (res?.status === 200) break;
      if (Date.now() > deadline)
        throw new Error(`cannot disable the automation rule (HTTP ${res?.status ?? 'none'})`);
      await sleep(500);
    }
    let firings: ObservedFiring[] = [];
    for (;;) {
      const res = await httpJson(
        this.base,
        'GET',
        `/v1/automation/firings?ruleId=${this.ruleId}&limit=1000`,
      ).catch(() => undefined);
      const list = res?.json['firings'];
      if (res?.status === 200 && Array.isArray(list)) {
        firings = (list as Array<Record<string, unknown>>).map((f) => ({
          id: String(f['id']),
          dueAt: String(f['dueAt']),
          status: String(f['status']),
          coalesced: Number(f['coalesced'] ?? 0),
          done: Number(f['done'] ?? 0),
        }));
        if (firings.every((f) => f.status !== 'pending') || Date.now() > deadline) break;
      } else if (Date.now() > deadline) throw new Error('cannot read the automation firings');
      await sleep(500);
    }
    const topic = await httpJson(this.base, 'GET', `/v1/topics/${encodeURIComponent(this.topic)}`);
    const version = Number(topic.json['keyVersion'] ?? 0);
    await httpJson(this.base, 'DELETE', `/v1/automation/rules/${this.ruleId}`).catch(
      () => undefined,
    );
    return {
      intervalMs: AUTOMATION_INTERVAL_SECONDS * 1000,
      firings,
      finalKeyVersion: version,
      healedAt: new Date(healedAt).toISOString(),
      disabledAt: new Date(disabledAt).toISOString(),
    };
  }
}
