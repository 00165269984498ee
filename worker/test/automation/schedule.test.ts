import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { cronSlots, planSchedule, type TimeTrigger } from '../../automation/schedule.ts';

const iso = (dates: readonly Date[]): string[] => dates.map((d) => d.toISOString());
const cron = (expr: string, timeZone: string): TimeTrigger => ({
  id: 't-1',
  kind: 'cron',
  expr,
  timeZone,
});
const MIN = 60_000;

void describe('cron slots in explicit time zones', () => {
  void it('evaluates the expression in the given zone, not UTC', () => {
    const slots = cronSlots(
      '0 0 * * *',
      'America/New_York',
      new Date('2026-01-01T00:00:00Z'),
      new Date('2026-01-03T00:00:00Z'),
      10,
    );
    assert.deepEqual(iso(slots), ['2026-01-01T05:00:00.000Z', '2026-01-02T05:00:00.000Z']);
  });

  void it('spring forward: 02:30 that does not exist fires once, at 03:30 local', () => {
    const slots = cronSlots(
      '30 2 * * *',
      'Europe/Berlin',
      new Date('2026-03-28T12:00:00Z'),
      new Date('2026-03-30T12:00:00Z'),
      10,
    );
    // 2026-03-29 01:30Z is 03:30 CEST; the next day is back to 02:30 local (00:30Z).
    assert.deepEqual(iso(slots), ['2026-03-29T01:30:00.000Z', '2026-03-30T00:30:00.000Z']);
  });

  void it('fall back: 02:30 that happens twice fires once, at its first occurrence', () => {
    const slots = cronSlots(
      '30 2 * * *',
      'Europe/Berlin',
      new Date('2026-10-24T12:00:00Z'),
      new Date('2026-10-26T12:00:00Z'),
      10,
    );
    // 00:30Z is 02:30 CEST (first); 01:30Z (02:30 CET, the repeat) is not a slot.
    assert.deepEqual(iso(slots), ['2026-10-25T00:30:00.000Z', '2026-10-26T01:30:00.000Z']);
  });

  void it('step expressions keep firing through the repeated hour (distinct instants)', () => {
    const slots = cronSlots(
      '*/30 * * * *',
      'Europe/Berlin',
      new Date('2026-10-25T00:00:00Z'),
      new Date('2026-10-25T02:00:00Z'),
      10,
    );
    assert.deepEqual(iso(slots), [
      '2026-10-25T00:30:00.000Z',
      '2026-10-25T01:00:00.000Z',
      '2026-10-25T01:30:00.000Z',
      '2026-10-25T02:00:00.000Z',
    ]);
  });

  void it('a 6-field expression has seconds first', () => {
    const slots = cronSlots(
      '*/20 * * * * *',
      'UTC',
      new Date('2026-01-01T00:00:00Z'),
      new Date('2026-01-01T00:01:00Z'),
      10,
    );
    assert.equal(slots.length, 3);
    assert.equal(slots[0]?.toISOString(), '2026-01-01T00:00:20.000Z');
  });
});

void describe('planSchedule', () => {
  const start = new Date('2026-05-01T10:00:00Z');

  void it('owes nothing before the first slot (a new rule does not fire at once)', () => {
    const plan = planSchedule(
      { id: 't', kind: 'interval', everySeconds: 60 },
      start,
      new Date(start.getTime() + 59_999),
      15 * MIN,
    );
    assert.deepEqual(plan, { slots: [] });
  });

  void it('owes the slot exactly at its due time, and moves the cursor to it', () => {
    const plan = planSchedule(
      { id: 't', kind: 'interval', everySeconds: 60 },
      start,
      new Date(start.getTime() + MIN),
      15 * MIN,
    );
    assert.deepEqual(iso(plan.slots), ['2026-05-01T10:01:00.000Z']);
    assert.equal(plan.cursor?.toISOString(), '2026-05-01T10:01:00.000Z');
    assert.equal(plan.coalesced, undefined);
  });

  void it('fires each slot missed within the catch-up window one by one', () => {
    const plan = planSchedule(
      { id: 't', kind: 'interval', everySeconds: 60 },
      start,
      new Date(start.getTime() + 3 * MIN + 5000),
      15 * MIN,
    );
    assert.deepEqual(iso(plan.slots), [
      '2026-05-01T10:01:00.000Z',
      '2026-05-01T10:02:00.000Z',
      '2026-05-01T10:03:00.000Z',
    ]);
  });

  void it('coalesces slots older than the window into one firing at the newest of them', () => {
    // Hourly, away for 10 h, window 90 min: slots 11:00..18:00 are old (8), 19:00 and 20:00 are recent.
    const plan = planSchedule(
      cron('0 * * * *', 'UTC'),
      start,
      new Date('2026-05-01T20:00:00Z'),
      90 * MIN,
    );
    assert.deepEqual(plan.coalesced, { dueAt: new Date('2026-05-01T18:00:00Z'), count: 8 });
    assert.deepEqual(iso(plan.slots), ['2026-05-01T19:00:00.000Z', '2026-05-01T20:00:00.000Z']);
    assert.equal(plan.cursor?.toISOString(), '2026-05-01T20:00:00.000Z');
  });

  void it('interval coalescing matches the cron one', () => {
    const plan = planSchedule(
      { id: 't', kind: 'interval', everySeconds: 3600 },
      start,
      new Date('2026-05-01T20:00:00Z'),
      90 * MIN,
    );
    assert.deepEqual(plan.coalesced, { dueAt: new Date('2026-05-01T18:00:00Z'), count: 8 });
    assert.deepEqual(iso(plan.slots), ['2026-05-01T19:00:00.000Z', '2026-05-01T20:00:00.000Z']);
  });

  void it('planning again from the new cursor owes nothing (no double firing)', () => {
    const trigger = cron('*/5 * * * *', 'Europe/Berlin');
    const now = new Date('2026-05-01T10:17:00Z');
    const first = planSchedule(trigger, start, now, 15 * MIN);
    assert.equal(first.slots.length, 3);
    assert.ok(first.cursor, 'a cursor');
    assert.deepEqual(planSchedule(trigger, first.cursor, now, 15 * MIN), { slots: [] });
  });

  void it('a per-second cron far behind is bounded: one coalesced firing', () => {
    const plan = planSchedule(
      cron('* * * * * *', 'UTC'),
      start,
      new Date(start.getTime() + 3 * 3600_000),
      2 * 3600_000,
    );
    assert.ok(plan.coalesced, 'old slots are coalesced');
    assert.equal(plan.slots.length, 0);
    assert.equal(plan.cursor?.getTime(), start.getTime() + 3 * 3600_000);
  });
});
