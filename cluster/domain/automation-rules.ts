/**
 * Validation of automation rules: triggers, targets, rollout policy and the combinations that make
 * sense (a topic rotation acts on topics, `member-removed` only rotates topics, ...). Input comes
 * from the API as plain objects; everything is checked here, so the engine only ever sees rules
 * it can run.
 */
import { randomBytes } from 'node:crypto';
import { CronExpressionParser } from 'cron-parser';
import { C2Error } from '../errors.ts';
import type {
  AutomationAction,
  CountedEvent,
  RolloutPolicy,
  RuleDraft,
  TargetSpec,
  TriggerSpec,
} from '../storage/pg-automation.ts';
import { assertPatternIsFast, boundedFilter } from './bounded-pattern.ts';
import { checkClientName, checkTopicName, hasControlCharacter } from './validation.ts';

/** The actions a rule can take. */
export const AUTOMATION_ACTIONS: readonly AutomationAction[] = [
  'rotate-topic-key',
  'rotate-client-key',
  'rotate-c2-key',
  'resync-lagging',
];
/** The trigger kinds. */
export const TRIGGER_KINDS = [
  'cron',
  'interval',
  'max-key-age',
  'event',
  'member-removed',
] as const;
/** Events an `event` trigger can count. */
export const COUNTED_EVENTS: readonly CountedEvent[] = ['client.subscribed', 'client.unsubscribed'];

/** Most triggers and targets per rule. */
export const MAX_TRIGGERS = 16;
export const MAX_TARGETS = 64;
const MAX_EXPR = 512;
const MAX_DESCRIPTION = 1024;
/** Ten years: longer periods are a typo. */
const MAX_SECONDS = 10 * 366 * 24 * 3600;
const ID_RE = /^[A-Za-z0-9_-]{1,40}$/;

function invalid(field: string, message: string): C2Error {
  return new C2Error('C2_VALIDATION', message, { details: { field } });
}

function record(value: unknown, field: string): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    throw invalid(field, `${field} must be an object`);
  return value as Record<string, unknown>;
}

function text(value: unknown, field: string, max: number, allowEmpty = false): string {
  if (typeof value !== 'string') throw invalid(field, `${field} must be a string`);
  if ((!allowEmpty && value.length === 0) || value.length > max)
    throw invalid(field, `${field} must be ${allowEmpty ? 0 : 1}..${max} characters`);
  // Free text may have lines and tabs; nothing may hold NUL (PostgreSQL refuses it: a 500) or
  // escape sequences that the CLI would print to the operator's terminal.
  if (hasControlCharacter(value, field.endsWith('description') ? '\n\t' : ''))
    throw invalid(field, `${field} must not contain control characters`);
  return value;
}

function integer(value: unknown, field: string, min: number, max: number): number {
  const n = typeof value === 'string' && /^\d+$/.test(value) ? Number(value) : value;
  if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < min || n > max)
    throw invalid(field, `${field} must be an integer between ${min} and ${max}`);
  return n;
}

function oneOf<T extends string>(value: unknown, field: string, allowed: readonly T[]): T {
  if (typeof value !== 'string' || !(allowed as readonly string[]).includes(value))
    throw invalid(field, `${field} must be one of ${allowed.join(', ')}`);
  return value as T;
}

/** A stable id for a new trigger or target. */
export function newSpecId(prefix: 't' | 'g'): string {
  return `${prefix}-${randomBytes(5).toString('hex')}`;
}

function specId(value: unknown, field: string, prefix: 't' | 'g'): string {
  if (value === undefined || value === null || value === '') return newSpecId(prefix);
  if (typeof value !== 'string' || !ID_RE.test(value))
    throw invalid(field, `${field} must be 1..40 letters, digits, '-' or '_'`);
  return value;
}

/**
 * A valid IANA time zone name.
 * @throws C2Error `C2_VALIDATION`
 */
export function checkTimeZone(value: unknown, field = 'timeZone'): string {
  // Absent over HTTP and gRPC alike reads as '' (the proto default).
  if (value === undefined || value === '')
    throw invalid(field, `${field} is required: an IANA time zone such as UTC or Europe/Berlin`);
  const zone = text(value, field, 64);
  try {
    new Intl.DateTimeFormat('en', { timeZone: zone });
  } catch {
    throw invalid(field, `${field} must be an IANA time zone such as UTC or Europe/Berlin`);
  }
  return zone;
}

/**
 * A cron expression cron-parser accepts: 5 fields (minute first) or 6 (second first).
 * @throws C2Error `C2_VALIDATION`
 */
export function checkCron(value: unknown, timeZone: string, field = 'expr'): string {
  const expr = text(value, field, 128).trim();
  const fields = expr.split(/\s+/).length;
  if (fields !== 5 && fields !== 6)
    throw invalid(field, `${field} must have 5 fields (minute first) or 6 (second first)`);
  try {
    CronExpressionParser.parse(expr, { tz: timeZone, currentDate: new Date(0) }).next();
  } catch (cause) {
    // cron-parser says which field is wrong (`Invalid explicit day of month definition` for
    // 30 February, `Constraint error, got value 61 expected range 0-59`).
    const why = cause instanceof Error ? ` (${cause.message.slice(0, 200)})` : '';
    throw new C2Error('C2_VALIDATION', `${field} is not a valid cron expression${why}`, {
      details: { field },
      cause,
    });
  }
  return expr;
}

/** Parses one trigger. @throws C2Error `C2_VALIDATION` */
export function checkTrigger(value: unknown, field = 'trigger'): TriggerSpec {
  const t = record(value, field);
  const id = specId(t['id'], `${field}.id`, 't');
  const kind = oneOf(t['kind'], `${field}.kind`, TRIGGER_KINDS);
  switch (kind) {
    case 'cron': {
      const timeZone = checkTimeZone(t['timeZone'], `${field}.timeZone`);
      return { id, kind, expr: checkCron(t['expr'], timeZone, `${field}.expr`), timeZone };
    }
    case 'interval':
      return {
        id,
        kind,
        everySeconds: integer(t['everySeconds'], `${field}.everySeconds`, 1, MAX_SECONDS),
      };
    case 'max-key-age':
      return {
        id,
        kind,
        maxAgeSeconds: integer(t['maxAgeSeconds'], `${field}.maxAgeSeconds`, 1, MAX_SECONDS),
      };
    case 'event':
      return {
        id,
        kind,
        event: oneOf(t['event'], `${field}.event`, COUNTED_EVENTS),
        threshold: integer(t['threshold'], `${field}.threshold`, 1, 1_000_000),
      };
    case 'member-removed':
      return { id, kind };
  }
}

/** Selects names for a target. */
export interface TargetMatcher {
  /**
   * The names of `names` the target selects, in their order.
   * @throws C2Error `C2_VALIDATION` when a pattern takes longer than its time bound
   */
  filter(names: readonly string[]): string[];
}

/** The matcher of a target; a pattern compiles here. @throws SyntaxError for a bad pattern */
export function targetMatcher(target: TargetSpec, field = `target ${target.id}`): TargetMatcher {
  switch (target.match) {
    case 'exact':
      return { filter: (names) => names.filter((name) => name === target.expr) };
    case 'prefix':
      return { filter: (names) => names.filter((name) => name.startsWith(target.expr)) };
    case 'pattern': {
      const re = compilePattern(target.expr);
      return { filter: (names) => boundedFilter(re, names, `${field} pattern`) };
    }
  }
}

function compilePattern(expr: string): RegExp {
  return new RegExp(`^(?:${expr})$`, 'u');
}

/** Parses one target. @throws C2Error `C2_VALIDATION` */
export function checkTarget(value: unknown, field = 'target'): TargetSpec {
  const t = record(value, field);
  const target: TargetSpec = {
    id: specId(t['id'], `${field}.id`, 'g'),
    kind: oneOf(t['kind'], `${field}.kind`, ['topic', 'client'] as const),
    match: oneOf(t['match'] ?? 'exact', `${field}.match`, ['exact', 'prefix', 'pattern'] as const),
    expr: text(t['expr'], `${field}.expr`, MAX_EXPR),
  };
  // An exact target no topic or client could have (`a/+`) would be skipped at every firing.
  if (target.match === 'exact') {
    if (target.kind === 'topic') checkTopicName(target.expr, `${field}.expr`);
    else checkClientName(target.expr, `${field}.expr`);
  }
  if (target.match === 'pattern') {
    let re: RegExp;
    try {
      re = compilePattern(target.expr);
    } catch (cause) {
      throw new C2Error('C2_VALIDATION', `${field}.expr is not a valid regular expression`, {
        details: { field: `${field}.expr` },
        cause,
      });
    }
    assertPatternIsFast(re, `${field}.expr`);
  }
  return target;
}

/** Parses a rollout policy (absent fields: no limit). @throws C2Error `C2_VALIDATION` */
export function checkRollout(value: unknown, field = 'rollout'): RolloutPolicy {
  if (value === undefined || value === null) return {};
  const r = record(value, field);
  const policy: {
    maxDevicesPerMinute?: number;
    abortFailureRatio?: number;
    timeoutSeconds?: number;
  } = {};
  if (r['maxDevicesPerMinute'] !== undefined && r['maxDevicesPerMinute'] !== 0)
    policy.maxDevicesPerMinute = integer(
      r['maxDevicesPerMinute'],
      `${field}.maxDevicesPerMinute`,
      1,
      10_000_000,
    );
  if (r['abortFailureRatio'] !== undefined && r['abortFailureRatio'] !== 0) {
    const ratio = r['abortFailureRatio'];
    if (typeof ratio !== 'number' || !(ratio > 0 && ratio <= 1))
      throw invalid(`${field}.abortFailureRatio`, `${field}.abortFailureRatio must be in (0, 1]`);
    policy.abortFailureRatio = ratio;
  }
  if (r['timeoutSeconds'] !== undefined && r['timeoutSeconds'] !== 0)
    policy.timeoutSeconds = integer(r['timeoutSeconds'], `${field}.timeoutSeconds`, 1, MAX_SECONDS);
  return policy;
}

/** The target kind each action acts on (`none`: the C2 key has no targets). */
export function actionTargetKind(action: AutomationAction): 'topic' | 'client' | 'none' {
  switch (action) {
    case 'rotate-topic-key':
      return 'topic';
    case 'rotate-client-key':
    case 'resync-lagging':
      return 'client';
    case 'rotate-c2-key':
      return 'none';
  }
}

/**
 * Checks that triggers, targets and action fit together, and that ids are unique.
 * @param field - the rule's name in error details, as the API's request names it
 * @throws C2Error `C2_VALIDATION`
 */
export function checkCoherence(draft: RuleDraft, field = 'rule'): RuleDraft {
  const kind = actionTargetKind(draft.action);
  draft.targets.forEach((t, i) => {
    const at = `${field}.targets[${i}]`;
    if (kind === 'none')
      throw invalid(at, `${draft.action} takes no targets (it acts on the C2 key)`);
    if (t.kind !== kind)
      throw invalid(`${at}.kind`, `${draft.action} acts on ${kind} targets only`);
  });
  draft.triggers.forEach((t, i) => {
    const at = `${field}.triggers[${i}].kind`;
    if (t.kind === 'member-removed' && draft.action !== 'rotate-topic-key')
      throw invalid(at, 'member-removed triggers rotate topic keys only');
    if (
      t.kind === 'max-key-age' &&
      draft.action !== 'rotate-topic-key' &&
      draft.action !== 'rotate-client-key'
    )
      throw invalid(at, 'max-key-age triggers rotate topic or client keys only');
  });
  // The second use of an id is the one named.
  const places = [
    ...draft.triggers.map((t, i) => ({ id: t.id, at: `${field}.triggers[${i}].id` })),
    ...draft.targets.map((t, i) => ({ id: t.id, at: `${field}.targets[${i}].id` })),
  ];
  const dup = places.find((p, i) => places.findIndex((q) => q.id === p.id) !== i);
  if (dup !== undefined) throw invalid(dup.at, `id ${dup.id} is used twice in the rule`);
  return draft;
}

/**
 * Parses a whole rule.
 * @param field - its name in error details (`rule.triggers[0].kind`), as the API's request
 *   names it, so that the codec's errors and these name a field the same way
 * @throws C2Error `C2_VALIDATION`
 */
export function checkRuleDraft(value: unknown, field = 'rule'): RuleDraft {
  const r = record(value, field);
  const triggers = r['triggers'] ?? [];
  const targets = r['targets'] ?? [];
  if (!Array.isArray(triggers) || triggers.length > MAX_TRIGGERS)
    throw invalid(
      `${field}.triggers`,
      `${field}.triggers must be a list of at most ${MAX_TRIGGERS}`,
    );
  if (!Array.isArray(targets) || targets.length > MAX_TARGETS)
    throw invalid(`${field}.targets`, `${field}.targets must be a list of at most ${MAX_TARGETS}`);
  const enabled = r['enabled'] ?? true;
  if (typeof enabled !== 'boolean')
    throw invalid(`${field}.enabled`, `${field}.enabled must be a boolean`);
  return checkCoherence(
    {
      description: text(r['description'] ?? '', `${field}.description`, MAX_DESCRIPTION, true),
      action: oneOf(r['action'], `${field}.action`, AUTOMATION_ACTIONS),
      triggers: triggers.map((t: unknown, i) => checkTrigger(t, `${field}.triggers[${i}]`)),
      targets: targets.map((t: unknown, i) => checkTarget(t, `${field}.targets[${i}]`)),
      rollout: checkRollout(r['rollout'], `${field}.rollout`),
      enabled,
    },
    field,
  );
}

/** A rule id (a decimal number). @throws C2Error `C2_VALIDATION` */
export function checkRuleId(value: unknown): string {
  const id = typeof value === 'number' ? String(value) : value;
  if (typeof id !== 'string' || !/^[1-9]\d{0,17}$/.test(id))
    throw invalid('ruleId', 'ruleId must be a positive integer');
  return id;
}

/** An expected version: undefined (unconditional) or a positive integer. @throws C2Error `C2_VALIDATION` */
export function checkExpectedVersion(value: unknown): number | undefined {
  if (value === undefined || value === null || value === 0 || value === '0' || value === '')
    return undefined;
  return integer(value, 'expectedVersion', 1, 2 ** 31 - 1);
}
