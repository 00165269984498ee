/**
 * `rules ...` and `automation ...`: the automation rules API (`e4c2.v1.C2Automation`, see
 * docs/automation.md). Edits take `--expected-version`: the server refuses the edit if another
 * one came first (exit code of a conflict), so two operators never overwrite each other; add and
 * remove of triggers and targets are done on the server in one transaction (no read-modify-write).
 */
import type { AutomationMessage, AutomationRpcs, C2Api } from '../api.ts';
import { CliError } from '../errors.ts';
import { renderFields, renderTable } from '../output.ts';
import { UINT32_MAX, type CommandContext, type CommandSpec, type FlagSpec } from '../spec.ts';
import { ruleFromFile } from './rule-file.ts';
import { readLocalFile } from './shared.ts';

const RULE_ID: FlagSpec = {
  name: 'id',
  kind: 'string',
  value: 'RULE',
  description: 'rule id',
  required: true,
};
const EXPECTED_VERSION: FlagSpec = {
  name: 'expected-version',
  kind: 'integer',
  value: 'N',
  min: 1,
  max: UINT32_MAX,
  description: 'only if the rule is still at this version (optimistic concurrency)',
};

/** The C2's longest interval or key age (ten years of 366 days; `automation-rules.ts`). */
const MAX_TRIGGER_SECONDS = 10 * 366 * 24 * 3600;

/** Flags that describe one trigger. */
const TRIGGER_FLAGS: readonly FlagSpec[] = [
  { name: 'cron', kind: 'string', value: 'EXPR', description: 'cron expression (with --tz)' },
  { name: 'tz', kind: 'string', value: 'ZONE', description: 'IANA time zone of --cron' },
  {
    name: 'every',
    kind: 'integer',
    value: 'SECONDS',
    min: 1,
    max: MAX_TRIGGER_SECONDS,
    description: 'fixed interval',
  },
  {
    name: 'max-age',
    kind: 'integer',
    value: 'SECONDS',
    min: 1,
    max: MAX_TRIGGER_SECONDS,
    description: 'crypto period: rotate keys older than this',
  },
  {
    name: 'on-event',
    kind: 'string',
    value: 'EVENT',
    description: 'client.subscribed or client.unsubscribed (with --threshold)',
  },
  {
    name: 'threshold',
    kind: 'integer',
    value: 'N',
    min: 1,
    max: UINT32_MAX,
    description: 'events per firing',
  },
  {
    name: 'on-member-removed',
    kind: 'boolean',
    description: 'rotate a target topic when a member leaves it (forward secrecy)',
  },
];

/** Flags that describe one target. */
const TARGET_FLAGS: readonly FlagSpec[] = [
  { name: 'topic', kind: 'string', value: 'NAME', description: 'target topic (exact name)' },
  { name: 'topic-prefix', kind: 'string', value: 'PREFIX', description: 'topics by prefix' },
  {
    name: 'topic-pattern',
    kind: 'string',
    value: 'REGEX',
    description: 'topics whose whole name matches',
  },
  { name: 'client', kind: 'string', value: 'NAME', description: 'target client (exact name)' },
  { name: 'client-prefix', kind: 'string', value: 'PREFIX', description: 'clients by prefix' },
  {
    name: 'client-pattern',
    kind: 'string',
    value: 'REGEX',
    description: 'clients whose whole name matches',
  },
];

const RULE_FLAGS: readonly FlagSpec[] = [
  {
    name: 'action',
    kind: 'string',
    value: 'ACTION',
    description: 'rotate-topic-key, rotate-client-key, rotate-c2-key or resync-lagging',
  },
  {
    name: 'description',
    kind: 'string',
    value: 'TEXT',
    description: 'free text',
    allowEmpty: true,
  },
  ...TRIGGER_FLAGS,
  ...TARGET_FLAGS,
  {
    name: 'max-per-minute',
    kind: 'integer',
    value: 'N',
    min: 1,
    max: UINT32_MAX,
    description: 'rollout: devices per minute at most',
  },
  {
    name: 'abort-ratio',
    kind: 'string',
    value: 'RATIO',
    description: 'rollout: abort when failed/attempted devices exceeds this (0..1)',
  },
  {
    name: 'rollout-timeout',
    kind: 'integer',
    value: 'SECONDS',
    min: 1,
    max: UINT32_MAX,
    description: 'rollout: give up on targets not reached by then',
  },
  { name: 'disabled', kind: 'boolean', description: 'store the rule without running it' },
  {
    name: 'file',
    kind: 'string',
    value: 'FILE',
    description: 'the rule as JSON (RuleSpec of docs/automation.md) instead of the flags above',
  },
];

function api(ctx: CommandContext): NonNullable<C2Api['automation']> {
  const call = ctx.api.automation?.bind(ctx.api);
  if (call === undefined) throw CliError.input('this API client cannot reach the automation API');
  return call;
}

function call<M extends keyof AutomationRpcs>(
  ctx: CommandContext,
  method: M,
  request: AutomationRpcs[M]['request'],
): Promise<AutomationRpcs[M]['response']> {
  return api(ctx)(method, request);
}

/** The trigger the flags describe, or undefined when none is given. */
export function triggerFromFlags(ctx: CommandContext): AutomationMessage | undefined {
  const f = ctx.flags;
  const given = [
    f.has('cron'),
    f.has('every'),
    f.has('max-age'),
    f.has('on-event'),
    f.boolean('on-member-removed'),
  ].filter(Boolean).length;
  if (given === 0) return undefined;
  if (given > 1)
    throw CliError.input(
      'give one trigger: --cron, --every, --max-age, --on-event or --on-member-removed',
    );
  if (f.has('cron')) {
    const tz = f.optionalString('tz');
    if (tz === undefined)
      throw CliError.input('--cron needs --tz (an IANA time zone such as Europe/Berlin or UTC)');
    return { kind: 'cron', expr: f.string('cron'), time_zone: tz };
  }
  if (f.has('every')) return { kind: 'interval', every_seconds: f.integer('every', 0) };
  if (f.has('max-age')) return { kind: 'max-key-age', max_age_seconds: f.integer('max-age', 0) };
  if (f.has('on-event'))
    return { kind: 'event', event: f.string('on-event'), threshold: f.integer('threshold', 1) };
  return { kind: 'member-removed' };
}

/** The target the flags describe, or undefined when none is given. */
export function targetFromFlags(ctx: CommandContext): AutomationMessage | undefined {
  const found: AutomationMessage[] = [];
  for (const kind of ['topic', 'client'] as const) {
    const exact = ctx.flags.optionalString(kind);
    const prefix = ctx.flags.optionalString(`${kind}-prefix`);
    const pattern = ctx.flags.optionalString(`${kind}-pattern`);
    if (exact !== undefined) found.push({ kind, match: 'exact', expr: exact });
    if (prefix !== undefined) found.push({ kind, match: 'prefix', expr: prefix });
    if (pattern !== undefined) found.push({ kind, match: 'pattern', expr: pattern });
  }
  if (found.length > 1)
    throw CliError.input('give one target per command (add more with add-target)');
  return found[0];
}

async function ruleSpec(ctx: CommandContext): Promise<AutomationMessage> {
  const file = ctx.flags.optionalString('file');
  if (file !== undefined) {
    // The file is the whole rule: a flag beside it would be silently ignored.
    const beside = RULE_FLAGS.find((f) => f.name !== 'file' && ctx.flags.has(f.name));
    if (beside !== undefined) {
      throw CliError.input(`--file holds the whole rule: give --${beside.name} in the file`);
    }
    const text = Buffer.from(await readLocalFile(ctx, file, 'rule')).toString('utf8');
    return ruleFromFile(text, file);
  }
  const action = ctx.flags.optionalString('action');
  if (action === undefined) throw CliError.input('--action (or --file) is required');
  const trigger = triggerFromFlags(ctx);
  const target = targetFromFlags(ctx);
  const ratio = ctx.flags.optionalString('abort-ratio');
  const abortRatio = ratio === undefined ? 0 : Number(ratio);
  if (!Number.isFinite(abortRatio))
    throw CliError.input('--abort-ratio must be a number in (0, 1]');
  return {
    action,
    description: ctx.flags.optionalString('description') ?? '',
    triggers: trigger === undefined ? [] : [trigger],
    targets: target === undefined ? [] : [target],
    rollout: {
      max_devices_per_minute: ctx.flags.integer('max-per-minute', 0),
      abort_failure_ratio: abortRatio,
      timeout_seconds: ctx.flags.integer('rollout-timeout', 0),
    },
    disabled: ctx.flags.boolean('disabled'),
  };
}

function describeTrigger(t: AutomationMessage): string {
  switch (t['kind']) {
    case 'cron':
      return `cron "${field(t, 'expr')}" ${field(t, 'time_zone')}`;
    case 'interval':
      return `every ${field(t, 'every_seconds')} s`;
    case 'max-key-age':
      return `keys older than ${field(t, 'max_age_seconds')} s`;
    case 'event':
      return `every ${field(t, 'threshold')} × ${field(t, 'event')}`;
    default:
      return field(t, 'kind');
  }
}

/** A scalar field of a message as text ('' when absent). */
function field(message: AutomationMessage, key: string): string {
  const v = message[key];
  return typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean' ? String(v) : '';
}

/** A firing's failed calls by error code, as `C2_NOT_FOUND=2 C2_UNAVAILABLE=1`, or ''. */
function errorSummary(firing: AutomationMessage): string {
  const errors = firing['errors'];
  if (typeof errors !== 'object' || errors === null) return '';
  return Object.entries(errors as Record<string, unknown>)
    .filter(([, n]) => typeof n === 'number' && n > 0)
    .map(([code, n]) => `${code}=${String(n)}`)
    .sort()
    .join(' ');
}

const items = (rule: AutomationMessage, key: string): AutomationMessage[] =>
  Array.isArray(rule[key]) ? (rule[key] as AutomationMessage[]) : [];

/** The rollout policy in words: `at most 600 devices a minute, ...`, or `no limits`. */
function describeRollout(rule: AutomationMessage): string {
  const r = rule['rollout'];
  const policy = typeof r === 'object' && r !== null ? (r as AutomationMessage) : {};
  const parts: string[] = [];
  const perMinute = Number(field(policy, 'max_devices_per_minute') || 0);
  if (perMinute > 0) parts.push(`at most ${perMinute} devices a minute`);
  const ratio = Number(field(policy, 'abort_failure_ratio') || 0);
  if (ratio > 0) parts.push(`abort above ${ratio} failed devices`);
  const timeout = Number(field(policy, 'timeout_seconds') || 0);
  if (timeout > 0) parts.push(`time out after ${timeout} s`);
  return parts.length === 0 ? 'no limits' : parts.join(', ');
}

/**
 * A firing's failed calls by code, then why it failed as a whole when the leader could not run
 * it (`C2_FAILED_PRECONDITION=1: rotate-client-key cannot run on node worker-2: ...`), or ''.
 */
function failureSummary(firing: AutomationMessage): string {
  const reason = field(firing, 'reason');
  return [errorSummary(firing), reason].filter((part) => part !== '').join(': ');
}

/** The rule's newest firing in one line, or `none`. */
function describeLastFiring(firing: AutomationMessage | undefined): string {
  if (firing === undefined) return 'none';
  const errors = errorSummary(firing);
  const reason = field(firing, 'reason');
  return (
    `#${field(firing, 'id')} due ${field(firing, 'due_at')}: ${field(firing, 'status')}, ` +
    (field(firing, 'started_at') === '' ? '' : `started ${field(firing, 'started_at')}, `) +
    `${field(firing, 'done') || '0'} of ${field(firing, 'targets') || '0'} done` +
    (errors === '' ? '' : ` (${errors})`) +
    (reason === '' ? '' : `: ${reason}`)
  );
}

/**
 * A rule in human form; with `last`, also how it last fired (`rules get`: other verbs show the
 * rule they changed).
 */
function renderRule(
  rule: AutomationMessage,
  last?: { readonly firing: AutomationMessage | undefined },
): string {
  return (
    renderFields([
      ['id', field(rule, 'id')],
      ['version', field(rule, 'version')],
      ['action', field(rule, 'action')],
      ['enabled', field(rule, 'enabled')],
      ['description', field(rule, 'description')],
      ['rollout', describeRollout(rule)],
      ...(last === undefined
        ? []
        : ([['last firing', describeLastFiring(last.firing)]] as [string, string][])),
    ]) +
    items(rule, 'triggers')
      .map((t) => `trigger ${field(t, 'id')}: ${describeTrigger(t)}\n`)
      .join('') +
    items(rule, 'targets')
      .map(
        (t) =>
          `target ${field(t, 'id')}: ${field(t, 'kind')} ${field(t, 'match')} ${field(t, 'expr')}\n`,
      )
      .join('')
  );
}

const expected = (ctx: CommandContext): number => ctx.flags.integer('expected-version', 0);

const list: CommandSpec = {
  path: ['rules', 'list'],
  summary: 'List the automation rules',
  calls: ['e4c2.v1.C2Automation/ListRules'],
  flags: [],
  examples: ['rules list', 'rules list --json'],
  async run(ctx) {
    const { rules } = await call(ctx, 'ListRules', {});
    ctx.out.result(
      { rules },
      renderTable(
        ['ID', 'VERSION', 'ACTION', 'ENABLED', 'TRIGGERS', 'TARGETS'],
        rules.map((r) => [
          field(r, 'id'),
          field(r, 'version'),
          field(r, 'action'),
          field(r, 'enabled'),
          items(r, 'triggers').map(describeTrigger).join('; '),
          String(items(r, 'targets').length),
        ]),
      ),
    );
  },
};

const get: CommandSpec = {
  path: ['rules', 'get'],
  summary: 'Show one rule with its triggers and targets',
  calls: ['e4c2.v1.C2Automation/GetRule', 'e4c2.v1.C2Automation/ListFirings'],
  flags: [RULE_ID],
  examples: ['rules get --id 3'],
  async run(ctx) {
    const rule = await call(ctx, 'GetRule', { rule_id: ctx.flags.string('id') });
    // Human output also says how the rule last fired (JSON: the rule as the API gives it).
    const last = ctx.out.json
      ? undefined
      : {
          firing: (await call(ctx, 'ListFirings', { rule_id: field(rule, 'id'), limit: 1 }))
            .firings[0],
        };
    ctx.out.result(rule, renderRule(rule, last));
  },
};

const create: CommandSpec = {
  path: ['rules', 'create'],
  summary: 'Create a rule (one trigger and one target from flags, or a whole rule from --file)',
  description:
    'A new rule does not fire at once: its schedule starts now and its event counts start at ' +
    'the newest event. Add more triggers and targets with "rules add-trigger" and ' +
    '"rules add-target".',
  calls: ['e4c2.v1.C2Automation/CreateRule'],
  flags: RULE_FLAGS,
  examples: [
    'rules create --action rotate-topic-key --cron "0 3 * * *" --tz Europe/Berlin --topic-prefix plant/',
    'rules create --action rotate-topic-key --on-member-removed --topic-pattern "plant/.*"',
    'rules create --action rotate-client-key --max-age 2592000 --client-prefix sensor- --max-per-minute 600',
    'rules create --file rule.json',
  ],
  async run(ctx) {
    const rule = await call(ctx, 'CreateRule', { rule: await ruleSpec(ctx) });
    ctx.out.result(rule, renderRule(rule));
  },
};

const update: CommandSpec = {
  path: ['rules', 'update'],
  summary: 'Replace a rule (give --expected-version to refuse if someone else edited it first)',
  calls: ['e4c2.v1.C2Automation/UpdateRule'],
  flags: [RULE_ID, EXPECTED_VERSION, ...RULE_FLAGS],
  examples: ['rules update --id 3 --expected-version 2 --file rule.json'],
  async run(ctx) {
    const rule = await call(ctx, 'UpdateRule', {
      rule_id: ctx.flags.string('id'),
      expected_version: expected(ctx),
      rule: await ruleSpec(ctx),
    });
    ctx.out.result(rule, renderRule(rule));
  },
};

/**
 * `rules enable` and `rules disable`: the rule as it is, with only its state changed (a full
 * replace by hand needed the whole rule again, and `get --json` is not a RuleSpec). The write
 * names the version read, so an edit made meanwhile is refused rather than undone.
 */
function switchRule(enable: boolean): CommandSpec {
  const verb = enable ? 'enable' : 'disable';
  return {
    path: ['rules', verb],
    summary: enable
      ? 'Run a disabled rule again (from its next slot: missed ones are not made up)'
      : 'Stop a rule without deleting it (a running firing stops before its next target)',
    calls: ['e4c2.v1.C2Automation/GetRule', 'e4c2.v1.C2Automation/UpdateRule'],
    flags: [RULE_ID, EXPECTED_VERSION],
    examples: [`rules ${verb} --id 3`],
    async run(ctx) {
      const id = ctx.flags.string('id');
      const current = await call(ctx, 'GetRule', { rule_id: id });
      // The version given, else the one read: the server refuses the write if it moved on.
      const given = expected(ctx);
      const rule = await call(ctx, 'UpdateRule', {
        rule_id: id,
        expected_version: given !== 0 ? given : Number(field(current, 'version')),
        rule: {
          description: field(current, 'description'),
          action: field(current, 'action'),
          triggers: items(current, 'triggers'),
          targets: items(current, 'targets'),
          rollout: (current['rollout'] as AutomationMessage | undefined) ?? {},
          disabled: !enable,
        },
      });
      ctx.out.result(rule, renderRule(rule));
    },
  };
}

const remove: CommandSpec = {
  path: ['rules', 'delete'],
  summary: 'Delete a rule and its firing history',
  calls: ['e4c2.v1.C2Automation/DeleteRule'],
  flags: [RULE_ID, EXPECTED_VERSION],
  examples: ['rules delete --id 3'],
  async run(ctx) {
    const r = await call(ctx, 'DeleteRule', {
      rule_id: ctx.flags.string('id'),
      expected_version: expected(ctx),
    });
    ctx.out.result(r, `Rule ${r.rule_id} deleted\n`);
  },
};

const addTrigger: CommandSpec = {
  path: ['rules', 'add-trigger'],
  summary: 'Add a trigger to a rule (on the server, in one transaction)',
  calls: ['e4c2.v1.C2Automation/AddTrigger'],
  flags: [RULE_ID, EXPECTED_VERSION, ...TRIGGER_FLAGS],
  examples: ['rules add-trigger --id 3 --on-event client.unsubscribed --threshold 10'],
  async run(ctx) {
    const trigger = triggerFromFlags(ctx);
    if (trigger === undefined) throw CliError.input('describe the trigger (see --help)');
    const rule = await call(ctx, 'AddTrigger', {
      rule_id: ctx.flags.string('id'),
      expected_version: expected(ctx),
      trigger,
    });
    ctx.out.result(rule, renderRule(rule));
  },
};

const removeTrigger: CommandSpec = {
  path: ['rules', 'remove-trigger'],
  summary: 'Remove a trigger from a rule by its id',
  calls: ['e4c2.v1.C2Automation/RemoveTrigger'],
  flags: [
    RULE_ID,
    EXPECTED_VERSION,
    { name: 'trigger', kind: 'string', value: 'ID', description: 'trigger id', required: true },
  ],
  examples: ['rules remove-trigger --id 3 --trigger t-0a1b2c3d4e'],
  async run(ctx) {
    const rule = await call(ctx, 'RemoveTrigger', {
      rule_id: ctx.flags.string('id'),
      expected_version: expected(ctx),
      trigger_id: ctx.flags.string('trigger'),
    });
    ctx.out.result(rule, renderRule(rule));
  },
};

const addTarget: CommandSpec = {
  path: ['rules', 'add-target'],
  summary: 'Add a target to a rule (on the server, in one transaction)',
  calls: ['e4c2.v1.C2Automation/AddTarget'],
  flags: [RULE_ID, EXPECTED_VERSION, ...TARGET_FLAGS],
  examples: ['rules add-target --id 3 --topic-pattern "plant/[0-9]+/temp"'],
  async run(ctx) {
    const target = targetFromFlags(ctx);
    if (target === undefined) throw CliError.input('describe the target (see --help)');
    const rule = await call(ctx, 'AddTarget', {
      rule_id: ctx.flags.string('id'),
      expected_version: expected(ctx),
      target,
    });
    ctx.out.result(rule, renderRule(rule));
  },
};

const removeTarget: CommandSpec = {
  path: ['rules', 'remove-target'],
  summary: 'Remove a target from a rule by its id',
  calls: ['e4c2.v1.C2Automation/RemoveTarget'],
  flags: [
    RULE_ID,
    EXPECTED_VERSION,
    { name: 'target', kind: 'string', value: 'ID', description: 'target id', required: true },
  ],
  examples: ['rules remove-target --id 3 --target g-0a1b2c3d4e'],
  async run(ctx) {
    const rule = await call(ctx, 'RemoveTarget', {
      rule_id: ctx.flags.string('id'),
      expected_version: expected(ctx),
      target_id: ctx.flags.string('target'),
    });
    ctx.out.result(rule, renderRule(rule));
  },
};

const firings: CommandSpec = {
  path: ['rules', 'firings'],
  summary: 'Recent firings (of one rule with --id), newest first',
  calls: ['e4c2.v1.C2Automation/ListFirings'],
  flags: [
    { name: 'id', kind: 'string', value: 'RULE', description: 'only this rule' },
    {
      name: 'limit',
      kind: 'integer',
      value: 'N',
      min: 1,
      max: UINT32_MAX,
      description: 'at most N (default 50)',
    },
  ],
  examples: ['rules firings --id 3'],
  async run(ctx) {
    const r = await call(ctx, 'ListFirings', {
      rule_id: ctx.flags.optionalString('id') ?? '',
      limit: ctx.flags.integer('limit', 50),
    });
    ctx.out.result(
      r,
      renderTable(
        // SKIPPED: targets that were gone (or, for resync-lagging, not lagging); a rule whose
        // every firing only skips names nothing that exists.
        // TARGETS: subjects resolved; while a firing runs, DONE and the rest are its counts so far.
        // STATUS: the API's. A pending firing with a STARTED time is running, or was stopped by a
        // pause or a lost leadership until resumed: the API does not tell these apart, so
        // neither does this (it showed `running` for a firing a pause had stopped).
        [
          'ID',
          'RULE',
          'DUE',
          'STATUS',
          'TARGETS',
          'DONE',
          'FAILED',
          'SKIPPED',
          'ATTEMPTS',
          'STARTED',
          'FINISHED',
          'ERRORS',
        ],
        r.firings.map((f) => [
          field(f, 'id'),
          field(f, 'rule_id'),
          field(f, 'due_at'),
          field(f, 'status'),
          field(f, 'targets'),
          field(f, 'done'),
          field(f, 'failed'),
          field(f, 'skipped'),
          field(f, 'attempts'),
          field(f, 'started_at') || '-',
          field(f, 'finished_at') || '-',
          failureSummary(f),
        ]),
      ),
    );
  },
};

function renderStatus(s: AutomationMessage): string {
  return renderFields([
    ['paused', field(s, 'paused')],
    ['reason', field(s, 'pause_reason')],
    ['changed by', field(s, 'changed_by')],
    ['leader', field(s, 'leader_node')],
    ['epoch', field(s, 'leader_epoch')],
    ['heartbeat', field(s, 'leader_heartbeat_at')],
    ['pending firings', field(s, 'pending_firings')],
  ]);
}

const status: CommandSpec = {
  path: ['automation', 'status'],
  summary: 'Show whether automation is paused, which node leads it, and pending firings',
  calls: ['e4c2.v1.C2Automation/GetAutomationStatus'],
  flags: [],
  examples: ['automation status'],
  async run(ctx) {
    const s = await call(ctx, 'GetAutomationStatus', {});
    ctx.out.result(s, renderStatus(s));
  },
};

const pause: CommandSpec = {
  path: ['automation', 'pause'],
  summary: 'Pause automation cluster-wide (planned outage): nothing fires until resume',
  calls: ['e4c2.v1.C2Automation/PauseAutomation'],
  flags: [
    {
      name: 'reason',
      kind: 'string',
      value: 'TEXT',
      description: 'why (shown in status)',
      allowEmpty: true,
    },
  ],
  examples: ['automation pause --reason "broker upgrade"'],
  async run(ctx) {
    const s = await call(ctx, 'PauseAutomation', {
      reason: ctx.flags.optionalString('reason') ?? '',
    });
    ctx.out.result(s, renderStatus(s));
  },
};

const resume: CommandSpec = {
  path: ['automation', 'resume'],
  summary: 'Resume automation (missed slots follow the catch-up policy of docs/automation.md)',
  calls: ['e4c2.v1.C2Automation/ResumeAutomation'],
  flags: [],
  examples: ['automation resume'],
  async run(ctx) {
    const s = await call(ctx, 'ResumeAutomation', {});
    ctx.out.result(s, renderStatus(s));
  },
};

/** Every `rules` and `automation` command. */
export const RULE_COMMANDS: readonly CommandSpec[] = [
  list,
  get,
  create,
  update,
  switchRule(true),
  switchRule(false),
  remove,
  addTrigger,
  removeTrigger,
  addTarget,
  removeTarget,
  firings,
  status,
  pause,
  resume,
];
