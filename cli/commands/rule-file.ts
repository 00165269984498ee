/**
 * A rule file of `rules create|update --file`: the RuleSpec of the HTTP API's body (camelCase, as
 * `docs/automation.md` shows it) or of the gRPC message (snake_case). The CLI calls gRPC, whose
 * encoder silently drops fields it does not know, camelCase ones included: a documented rule lost
 * its time zone and was refused, and a misspelt field vanished. So every field is checked here
 * and renamed to the message's own name.
 */
import { CliError } from '../errors.ts';
import type { AutomationMessage } from '../api.ts';
import { UINT32_MAX } from '../spec.ts';

/**
 * The fields of one message: gRPC name, and the message of a nested object or list. `uint32`
 * fields are range-checked here: the gRPC encoder would wrap 4294967297 to 1 without a word.
 */
interface Shape {
  readonly [field: string]: Shape | 'value' | 'uint32';
}

const TRIGGER: Shape = {
  id: 'value',
  kind: 'value',
  expr: 'value',
  time_zone: 'value',
  every_seconds: 'uint32',
  max_age_seconds: 'uint32',
  event: 'value',
  threshold: 'uint32',
};
const TARGET: Shape = { id: 'value', kind: 'value', match: 'value', expr: 'value' };
const ROLLOUT: Shape = {
  max_devices_per_minute: 'uint32',
  abort_failure_ratio: 'value',
  timeout_seconds: 'uint32',
};
const RULE: Shape = {
  description: 'value',
  action: 'value',
  triggers: TRIGGER,
  targets: TARGET,
  rollout: ROLLOUT,
  disabled: 'value',
};

/** `timeZone` → `time_zone`; snake_case names stay as they are. */
function snakeCase(name: string): string {
  return name.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** A whole number from 0 to 2^32 - 1, as a number or its decimal text. */
function checkUint32(value: unknown, path: string, file: string): unknown {
  const n = typeof value === 'string' && value.trim() !== '' ? Number(value) : value;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 0 || n > UINT32_MAX)
    throw CliError.input(`${file}: ${path} must be a whole number from 0 to ${UINT32_MAX}`);
  return value;
}

function convert(value: unknown, shape: Shape, where: string, file: string): AutomationMessage {
  if (!isObject(value)) throw CliError.input(`${file}: ${where || 'the rule'} must be an object`);
  const out: Record<string, unknown> = {};
  for (const [key, field] of Object.entries(value)) {
    const name = snakeCase(key);
    const path = where === '' ? key : `${where}.${key}`;
    const inner = shape[name];
    if (inner === undefined) throw CliError.input(`${file}: unknown field ${path}`);
    if (name in out) throw CliError.input(`${file}: ${path} is given twice`);
    if (inner === 'uint32' && field !== null) out[name] = checkUint32(field, path, file);
    else if (inner === 'value' || inner === 'uint32' || field === null) out[name] = field;
    else if (name === 'rollout') out[name] = convert(field, inner, path, file);
    else {
      if (!Array.isArray(field)) throw CliError.input(`${file}: ${path} must be a list`);
      out[name] = field.map((item, i) => convert(item, inner, `${path}[${i}]`, file));
    }
  }
  return out;
}

/**
 * The rule of a file's text, in the gRPC message's field names.
 * @throws CliError exit 2 for text that is not JSON or a field the rule does not have
 */
export function ruleFromFile(text: string, file: string): AutomationMessage {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw CliError.input(`${file} is not JSON`);
  }
  // The HTTP body wraps the rule as {"rule": {...}}; a file may hold either.
  const wrapped =
    isObject(parsed) && Object.keys(parsed).length === 1 && isObject(parsed['rule'])
      ? parsed['rule']
      : parsed;
  return convert(asSpec(wrapped, file), RULE, '', file);
}

/** Fields a rule as read (`rules get --json`) has and a RuleSpec does not: set by the server. */
const READ_ONLY = new Set(['id', 'version', 'created_at', 'updated_at']);

/**
 * A rule as `rules get --json` prints it, made a RuleSpec (read-only fields dropped, `enabled`
 * turned into `disabled`), so that get, edit, update works; a RuleSpec passes unchanged.
 */
function asSpec(value: unknown, file: string): unknown {
  if (!isObject(value)) return value;
  const spec: Record<string, unknown> = {};
  for (const [key, field] of Object.entries(value)) {
    const name = snakeCase(key);
    if (READ_ONLY.has(name)) continue;
    if (name !== 'enabled') {
      spec[key] = field;
      continue;
    }
    if (typeof field !== 'boolean') throw CliError.input(`${file}: ${key} must be true or false`);
    if (Object.keys(value).some((k) => snakeCase(k) === 'disabled'))
      throw CliError.input(`${file}: give enabled or disabled, not both`);
    spec['disabled'] = !field;
  }
  return spec;
}
