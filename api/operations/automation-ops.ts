/**
 * The automation rules API (`e4c2.v1.C2Automation`) as transport-free operations, shared by the
 * gRPC server and the `/v1/automation/...` HTTP routes. Messages are mapped to the domain's rule
 * shape here; validation is the domain's (typed `C2_VALIDATION` errors naming the field).
 */
import type { AutomationService, AutomationStatus } from '../../cluster/domain/index.ts';
import { C2Error } from '../../cluster/errors.ts';
import type {
  AutomationControl,
  AutomationRuleRow,
  FiringRow,
  TargetSpec,
  TriggerSpec,
} from '../../cluster/storage/index.ts';
import type { ProtoMessage } from '../codec/protos.ts';
import { boolField, numberField, stringField } from './message-fields.ts';
import { requestContext, type UnaryOperation } from './reference-ops.ts';

/** The unary RPCs of `e4c2.v1.C2Automation`. */
export const AUTOMATION_UNARY_RPCS = [
  'ListRules',
  'GetRule',
  'CreateRule',
  'UpdateRule',
  'DeleteRule',
  'AddTrigger',
  'RemoveTrigger',
  'AddTarget',
  'RemoveTarget',
  'GetAutomationStatus',
  'PauseAutomation',
  'ResumeAutomation',
  'ListFirings',
] as const;

/** Name of an automation RPC. */
export type AutomationUnaryRpc = (typeof AUTOMATION_UNARY_RPCS)[number];

function sub(message: ProtoMessage, key: string): ProtoMessage {
  const value = message[key];
  return typeof value === 'object' && value !== null ? (value as ProtoMessage) : {};
}

/** A trigger message as the domain's input (only the fields of its kind). */
function triggerInput(t: ProtoMessage): Record<string, unknown> {
  const id = stringField(t, 'id');
  const kind = stringField(t, 'kind');
  const base = { ...(id === '' ? {} : { id }), kind };
  switch (kind) {
    case 'cron':
      return { ...base, expr: stringField(t, 'expr'), timeZone: stringField(t, 'time_zone') };
    case 'interval':
      return { ...base, everySeconds: numberField(t, 'every_seconds') };
    case 'max-key-age':
      return { ...base, maxAgeSeconds: numberField(t, 'max_age_seconds') };
    case 'event':
      return { ...base, event: stringField(t, 'event'), threshold: numberField(t, 'threshold') };
    default:
      return base;
  }
}

function targetInput(t: ProtoMessage): Record<string, unknown> {
  const id = stringField(t, 'id');
  const match = stringField(t, 'match');
  return {
    ...(id === '' ? {} : { id }),
    kind: stringField(t, 'kind'),
    match: match === '' ? 'exact' : match,
    expr: stringField(t, 'expr'),
  };
}

function list(message: ProtoMessage, key: string): ProtoMessage[] {
  const value = message[key];
  return Array.isArray(value) ? (value as ProtoMessage[]) : [];
}

/** A `RuleSpec` message as the domain's rule input. */
export function ruleInput(spec: ProtoMessage): Record<string, unknown> {
  const rollout = sub(spec, 'rollout');
  return {
    description: stringField(spec, 'description'),
    action: stringField(spec, 'action'),
    triggers: list(spec, 'triggers').map(triggerInput),
    targets: list(spec, 'targets').map(targetInput),
    rollout: {
      maxDevicesPerMinute: numberField(rollout, 'max_devices_per_minute'),
      abortFailureRatio: numberField(rollout, 'abort_failure_ratio'),
      timeoutSeconds: numberField(rollout, 'timeout_seconds'),
    },
    enabled: !boolField(spec, 'disabled'),
  };
}

function triggerMessage(t: TriggerSpec): ProtoMessage {
  return {
    id: t.id,
    kind: t.kind,
    expr: t.kind === 'cron' ? t.expr : '',
    time_zone: t.kind === 'cron' ? t.timeZone : '',
    every_seconds: t.kind === 'interval' ? t.everySeconds : 0,
    max_age_seconds: t.kind === 'max-key-age' ? t.maxAgeSeconds : 0,
    event: t.kind === 'event' ? t.event : '',
    threshold: t.kind === 'event' ? t.threshold : 0,
  };
}

const targetMessage = (t: TargetSpec): ProtoMessage => ({ ...t });

/** A stored rule as an `AutomationRule` message. */
export function ruleMessage(rule: AutomationRuleRow): ProtoMessage {
  return {
    id: rule.id,
    version: rule.version,
    description: rule.description,
    action: rule.action,
    triggers: rule.triggers.map(triggerMessage),
    targets: rule.targets.map(targetMessage),
    rollout: {
      max_devices_per_minute: rule.rollout.maxDevicesPerMinute ?? 0,
      abort_failure_ratio: rule.rollout.abortFailureRatio ?? 0,
      timeout_seconds: rule.rollout.timeoutSeconds ?? 0,
    },
    enabled: rule.enabled,
    created_at: rule.createdAt.toISOString(),
    updated_at: rule.updatedAt.toISOString(),
  };
}

function controlMessage(control: AutomationControl): ProtoMessage {
  return {
    paused: control.paused,
    pause_reason: control.reason,
    changed_by: control.changedBy,
    changed_at: control.changedAt?.toISOString() ?? '',
  };
}

function statusMessage(status: AutomationStatus): ProtoMessage {
  return {
    ...controlMessage(status.control),
    leader_node: status.leader.nodeId ?? '',
    leader_epoch: status.leader.epoch,
    leader_heartbeat_at: status.leader.heartbeatAt?.toISOString() ?? '',
    pending_firings: status.pendingFirings,
  };
}

const count = (result: Readonly<Record<string, unknown>>, key: string): number => {
  const v = result[key];
  return typeof v === 'number' ? v : 0;
};

/** A stable error code, as the firing runner records it (anything else in the record is dropped). */
const ERROR_CODE = /^[A-Z][A-Z0-9_]{0,63}$/;

/** A firing's failed calls by error code, from its stored result (written by the firing runner). */
function errorCounts(stored: unknown): Record<string, number> {
  const counts: Record<string, number> = {};
  if (typeof stored !== 'object' || stored === null) return counts;
  for (const [code, n] of Object.entries(stored)) {
    if (ERROR_CODE.test(code) && typeof n === 'number' && Number.isInteger(n) && n > 0) {
      counts[code] = n;
    }
  }
  return counts;
}

function firingMessage(f: FiringRow): ProtoMessage {
  return {
    id: f.id,
    rule_id: f.ruleId,
    due_at: f.dueAt.toISOString(),
    subject: f.subject,
    trigger_id: f.triggerId,
    rule_version: f.ruleVersion,
    status: f.status,
    coalesced: f.coalesced,
    attempts: f.attempts,
    planned_epoch: f.plannedEpoch,
    finished_epoch: f.finishedEpoch ?? '',
    started_at: f.startedAt?.toISOString() ?? '',
    finished_at: f.finishedAt?.toISOString() ?? '',
    targets: count(f.result, 'targets'),
    done: count(f.result, 'done'),
    failed: count(f.result, 'failed'),
    skipped: count(f.result, 'skipped'),
    devices: count(f.result, 'devices'),
    errors: errorCounts(f.result['errors']),
    failed_devices: count(f.result, 'failedDevices'),
    reason: typeof f.result['reason'] === 'string' ? f.result['reason'] : '',
  };
}

function unavailable(): never {
  throw new C2Error(
    'C2_FAILED_PRECONDITION',
    'automation is not available on this node (it has no automation store)',
  );
}

/**
 * Builds the operations of every automation RPC. Without a service (a node built without the
 * automation store) every call fails with `C2_FAILED_PRECONDITION`.
 */
export function automationOperations(
  service: AutomationService | undefined,
): Readonly<Record<AutomationUnaryRpc, UnaryOperation>> {
  const svc = (): AutomationService => service ?? unavailable();
  const expected = (req: ProtoMessage): number | undefined => {
    const v = numberField(req, 'expected_version');
    return v === 0 ? undefined : v;
  };
  return {
    ListRules: async () => ({ rules: (await svc().listRules()).map(ruleMessage) }),
    GetRule: async (req) => ruleMessage(await svc().getRule(stringField(req, 'rule_id'))),
    CreateRule: async (req, ctx) =>
      ruleMessage(await svc().createRule(requestContext(ctx), ruleInput(sub(req, 'rule')))),
    UpdateRule: async (req, ctx) =>
      ruleMessage(
        await svc().updateRule(
          requestContext(ctx),
          stringField(req, 'rule_id'),
          ruleInput(sub(req, 'rule')),
          expected(req),
        ),
      ),
    DeleteRule: async (req, ctx) => ({
      rule_id: await svc().deleteRule(
        requestContext(ctx),
        stringField(req, 'rule_id'),
        expected(req),
      ),
    }),
    AddTrigger: async (req, ctx) =>
      ruleMessage(
        await svc().addTrigger(
          requestContext(ctx),
          stringField(req, 'rule_id'),
          triggerInput(sub(req, 'trigger')),
          expected(req),
        ),
      ),
    RemoveTrigger: async (req, ctx) =>
      ruleMessage(
        await svc().removeTrigger(
          requestContext(ctx),
          stringField(req, 'rule_id'),
          stringField(req, 'trigger_id'),
          expected(req),
        ),
      ),
    AddTarget: async (req, ctx) =>
      ruleMessage(
        await svc().addTarget(
          requestContext(ctx),
          stringField(req, 'rule_id'),
          targetInput(sub(req, 'target')),
          expected(req),
        ),
      ),
    RemoveTarget: async (req, ctx) =>
      ruleMessage(
        await svc().removeTarget(
          requestContext(ctx),
          stringField(req, 'rule_id'),
          stringField(req, 'target_id'),
          expected(req),
        ),
      ),
    GetAutomationStatus: async () => statusMessage(await svc().status()),
    PauseAutomation: async (req, ctx) => {
      await svc().pause(requestContext(ctx), stringField(req, 'reason'));
      return statusMessage(await svc().status());
    },
    ResumeAutomation: async (_req, ctx) => {
      await svc().resume(requestContext(ctx));
      return statusMessage(await svc().status());
    },
    ListFirings: async (req) => {
      const ruleId = stringField(req, 'rule_id');
      const firings = await svc().listFirings(
        ruleId === '' ? undefined : ruleId,
        numberField(req, 'limit'),
      );
      return { firings: firings.map(firingMessage) };
    },
  };
}
