/**
 * Due slots of time triggers (cron in an explicit time zone, fixed intervals), and the catch-up
 * policy: slots missed within the catch-up window fire one by one, older ones are coalesced into
 * a single firing. Pure functions of (trigger, cursor, now): the engine's clock is injected.
 *
 * Daylight-saving behaviour is cron-parser's (v5), pinned by the tests: a wall-clock time that does
 * not exist (spring forward, e.g. 02:30 in Europe/Berlin on 2026-03-29) fires once, one hour
 * later (03:30 local); a wall-clock time that happens twice (fall back, 02:30 on 2026-10-25) fires
 * once, at its first occurrence. Minute- and hour-step expressions keep firing through the
 * repeated hour, since those slots are distinct instants.
 */
import { CronExpressionParser } from 'cron-parser';
import type { TriggerSpec } from '../../cluster/storage/index.ts';

/** A time trigger. */
export type TimeTrigger = Extract<TriggerSpec, { kind: 'cron' } | { kind: 'interval' }>;

/** Most slots planned one by one in a single call; more are coalesced. */
export const MAX_SLOTS_PER_PLAN = 1000;
/** Most cron iterations spent counting old slots (the count is then reported as at least this). */
const MAX_COUNT_ITERATIONS = 10_000;

/** What is due for one trigger. */
export interface SchedulePlan {
  /** Old slots merged into one firing at the newest of them, with how many were merged. */
  readonly coalesced?: { readonly dueAt: Date; readonly count: number };
  /** Slots to fire one by one, oldest first. */
  readonly slots: readonly Date[];
  /** The new cursor (the newest slot planned), or undefined when nothing was due. */
  readonly cursor?: Date;
}

/** The first `limit` cron slots strictly after `after` and at or before `until`. */
export function cronSlots(
  expr: string,
  timeZone: string,
  after: Date,
  until: Date,
  limit: number,
): Date[] {
  const it = CronExpressionParser.parse(expr, { tz: timeZone, currentDate: after });
  const out: Date[] = [];
  while (out.length < limit) {
    const next = it.next().toDate();
    if (next.getTime() > until.getTime()) break;
    out.push(next);
  }
  return out;
}

/** The newest cron slot at or before `at`, if it is after `after`. */
function lastCronSlot(expr: string, timeZone: string, after: Date, at: Date): Date | undefined {
  const it = CronExpressionParser.parse(expr, {
    tz: timeZone,
    currentDate: new Date(at.getTime() + 1),
  });
  const prev = it.prev().toDate();
  return prev.getTime() > after.getTime() ? prev : undefined;
}

function intervalPlan(everyMs: number, cursor: Date, now: Date, windowStart: number): SchedulePlan {
  const base = cursor.getTime();
  const total = Math.floor((now.getTime() - base) / everyMs);
  if (total < 1) return { slots: [] };
  const slot = (k: number): Date => new Date(base + k * everyMs);
  let oldCount = Math.max(0, Math.min(total, Math.ceil((windowStart - base) / everyMs) - 1));
  // Keep the one-by-one part bounded: the excess joins the coalesced firing.
  oldCount = Math.max(oldCount, total - MAX_SLOTS_PER_PLAN);
  const slots: Date[] = [];
  for (let k = oldCount + 1; k <= total; k++) slots.push(slot(k));
  return {
    ...(oldCount > 0 ? { coalesced: { dueAt: slot(oldCount), count: oldCount } } : {}),
    slots,
    cursor: slot(total),
  };
}

function cronPlan(
  trigger: Extract<TimeTrigger, { kind: 'cron' }>,
  cursor: Date,
  now: Date,
  windowStart: number,
): SchedulePlan {
  const boundary = new Date(Math.max(windowStart - 1, cursor.getTime()));
  let coalesced: SchedulePlan['coalesced'];
  if (boundary.getTime() > cursor.getTime()) {
    const lastOld = lastCronSlot(trigger.expr, trigger.timeZone, cursor, boundary);
    if (lastOld !== undefined) {
      const count = cronSlots(
        trigger.expr,
        trigger.timeZone,
        cursor,
        lastOld,
        MAX_COUNT_ITERATIONS,
      ).length;
      coalesced = { dueAt: lastOld, count: Math.max(1, count) };
    }
  }
  const from = coalesced?.dueAt ?? cursor;
  let slots = cronSlots(trigger.expr, trigger.timeZone, from, now, MAX_SLOTS_PER_PLAN + 1);
  if (slots.length > MAX_SLOTS_PER_PLAN) {
    // More recent slots than we plan one by one (a per-second cron): merge all but the newest.
    const newest = lastCronSlot(trigger.expr, trigger.timeZone, from, now) ?? slots.at(-1);
    if (newest === undefined) return { slots: [] };
    return {
      coalesced: { dueAt: newest, count: (coalesced?.count ?? 0) + MAX_SLOTS_PER_PLAN },
      slots: [],
      cursor: newest,
    };
  }
  if (coalesced === undefined && slots.length === 0) return { slots: [] };
  slots = slots.filter((s) => s.getTime() > from.getTime());
  return {
    ...(coalesced === undefined ? {} : { coalesced }),
    slots,
    cursor: slots.at(-1) ?? coalesced?.dueAt ?? cursor,
  };
}

/**
 * What a time trigger owes between its cursor (the last slot already planned) and `now`.
 * Slots older than `now - catchUpWindowMs` are coalesced into one firing (a leader that was away
 * for a week does not rotate 168 times for an hourly rule); newer slots fire one by one, so a
 * failover shorter than the window changes nothing.
 */
export function planSchedule(
  trigger: TimeTrigger,
  cursor: Date,
  now: Date,
  catchUpWindowMs: number,
): SchedulePlan {
  if (now.getTime() <= cursor.getTime()) return { slots: [] };
  const windowStart = now.getTime() - catchUpWindowMs;
  return trigger.kind === 'interval'
    ? intervalPlan(trigger.everySeconds * 1000, cursor, now, windowStart)
    : cronPlan(trigger, cursor, now, windowStart);
}
