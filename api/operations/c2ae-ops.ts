/**
 * The reference automation engine's API (`pb.C2AutomationEngine`, `api/proto/c2ae.proto`) on our
 * rules, so its tools (the web UI's rule screens, scripts) keep working against this server.
 *
 * Mapping (docs/automation.md, "Reference C2AE API"):
 * - `KEY_ROTATION` with TOPIC targets is `rotate-topic-key`, with CLIENT targets
 *   `rotate-client-key`; a rule mixing both, or an `ANY` target, is refused (the reference could
 *   not rotate `ANY` either);
 * - `TIME_INTERVAL` settings `{"expr": "<cron>"}` become a cron trigger in UTC (the reference had no
 *   explicit zone); `EVENT` settings `{"eventType", "maxOccurrence"}` an event trigger;
 * - targets match exactly, as the reference's did;
 * - trigger and target ids are positions (1, 2, ...): an `UpdateRule` that keeps a trigger's id
 *   keeps its schedule and counter, as the reference kept its counters, and one that keeps a
 *   target's keeps our id and match kind of that target;
 * - `UpdateRule` is a full replace without a version check, as in the reference (our own API has
 *   `expectedVersion`); `lastExecuted` is the due time of the rule's latest firing.
 */
import type { AutomationService } from '../../cluster/domain/index.ts';
import { C2Error } from '../../cluster/errors.ts';
import type { AutomationRuleRow, TargetSpec, TriggerSpec } from '../../cluster/storage/index.ts';
import type { ProtoMessage } from '../codec/protos.ts';
import { numberField, stringField } from './message-fields.ts';
import { requestContext, type UnaryOperation } from './reference-ops.ts';

/** The RPCs of `pb.C2AutomationEngine`. */
export const C2AE_RPCS = [
  'ListRules',
  'GetRule',
  'AddRule',
  'UpdateRule',
  'DeleteRule',
  'HealthCheck',
] as const;

/** Name of a C2AE RPC. */
export type C2aeRpc = (typeof C2AE_RPCS)[number];

const REFERENCE_EVENTS: Readonly<Record<string, string>> = {
  CLIENT_SUBSCRIBED: 'client.subscribed',
  CLIENT_UNSUBSCRIBED: 'client.unsubscribed',
};

function invalid(field: string, message: string): C2Error {
  return new C2Error('C2_VALIDATION', message, { details: { field } });
}

function list(message: ProtoMessage, key: string): ProtoMessage[] {
  const value = message[key];
  return Array.isArray(value) ? (value as ProtoMessage[]) : [];
}

function settingsOf(trigger: ProtoMessage, field: string): Record<string, unknown> {
  const raw = trigger['settings'];
  const text = raw instanceof Uint8Array ? Buffer.from(raw).toString('utf8') : '';
  try {
    const parsed = JSON.parse(text) as unknown;
    if (typeof parsed === 'object' && parsed !== null) return parsed as Record<string, unknown>;
  } catch {
    // reported below
  }
  throw invalid(field, `${field} must be JSON settings`);
}

/** A reference trigger as our trigger input; `keepId` is the id of the trigger it replaces. */
function triggerInput(
  t: ProtoMessage,
  i: number,
  keepId: string | undefined,
): Record<string, unknown> {
  const field = `triggers[${i}].settings`;
  const base = keepId === undefined ? {} : { id: keepId };
  const settings = settingsOf(t, field);
  switch (stringField(t, 'type')) {
    case 'TIME_INTERVAL': {
      const zone = settings['timeZone'];
      return {
        ...base,
        kind: 'cron',
        expr: settings['expr'],
        timeZone: typeof zone === 'string' && zone !== '' ? zone : 'UTC',
      };
    }
    case 'EVENT': {
      const event = REFERENCE_EVENTS[String(settings['eventType'])];
      if (event === undefined)
        throw invalid(field, 'eventType must be CLIENT_SUBSCRIBED or CLIENT_UNSUBSCRIBED');
      return { ...base, kind: 'event', event, threshold: settings['maxOccurrence'] };
    }
    default: {
      // Our own trigger kinds, as this API returns them (UNDEFINED_TRIGGER with our settings).
      if (typeof settings['kind'] === 'string') return { ...settings, ...base };
      throw invalid(`triggers[${i}].type`, 'trigger type must be TIME_INTERVAL or EVENT');
    }
  }
}

/** A reference rule request as our rule input. */
function ruleInput(req: ProtoMessage, existing?: AutomationRuleRow): Record<string, unknown> {
  if (stringField(req, 'action') !== 'KEY_ROTATION')
    throw invalid('action', 'action must be KEY_ROTATION');
  const targets = list(req, 'targets').map((t, i) => {
    const type = stringField(t, 'type');
    if (type !== 'TOPIC' && type !== 'CLIENT')
      throw invalid(
        `targets[${i}].type`,
        'target type must be TOPIC or CLIENT (ANY cannot be rotated)',
      );
    const kind = type === 'TOPIC' ? 'topic' : 'client';
    // The reference's targets have no match kind: an update keeps the one of the target at the
    // same position (as triggers keep their ids), so a read-then-write of a prefix or pattern
    // rule leaves it a prefix or pattern rule; a new target matches exactly.
    // It keeps that target's id too, so a saved `rules remove-target --target <id>` still works.
    const before = existing?.targets[numberField(t, 'id') - 1];
    return {
      ...(before?.kind === kind ? { id: before.id, match: before.match } : { match: 'exact' }),
      kind,
      expr: stringField(t, 'expr'),
    };
  });
  const kinds = new Set(targets.map((t) => t.kind));
  if (kinds.size > 1)
    throw invalid('targets', 'a rule rotates either topics or clients: split it into two rules');
  const triggers = list(req, 'triggers').map((t, i) => {
    const position = numberField(t, 'id');
    return triggerInput(t, i, existing?.triggers[position - 1]?.id);
  });
  return {
    description: stringField(req, 'description'),
    action: kinds.has('client') ? 'rotate-client-key' : 'rotate-topic-key',
    triggers,
    targets,
    rollout: existing?.rollout ?? {},
    enabled: existing?.enabled ?? true,
  };
}

function triggerMessage(t: TriggerSpec, i: number): ProtoMessage {
  const json = (v: unknown): Uint8Array => new Uint8Array(Buffer.from(JSON.stringify(v), 'utf8'));
  if (t.kind === 'cron')
    return {
      id: i + 1,
      type: 'TIME_INTERVAL',
      settings: json({ expr: t.expr, timeZone: t.timeZone }),
    };
  if (t.kind === 'event')
    return {
      id: i + 1,
      type: 'EVENT',
      settings: json({
        eventType: t.event === 'client.subscribed' ? 'CLIENT_SUBSCRIBED' : 'CLIENT_UNSUBSCRIBED',
        maxOccurrence: t.threshold,
      }),
    };
  const { id: _id, ...rest } = t;
  return { id: i + 1, type: 'UNDEFINED_TRIGGER', settings: json(rest) };
}

const targetMessage = (t: TargetSpec, i: number): ProtoMessage => ({
  id: i + 1,
  type: t.kind === 'topic' ? 'TOPIC' : 'CLIENT',
  expr: t.expr,
});

function ruleId(value: number): string {
  if (!Number.isSafeInteger(value) || value < 1)
    throw invalid('ruleId', 'ruleId must be a positive integer');
  return String(value);
}

/** Builds the operations of `pb.C2AutomationEngine`. */
export function c2aeOperations(
  service: AutomationService | undefined,
): Readonly<Record<C2aeRpc, UnaryOperation>> {
  const svc = (): AutomationService => {
    if (service === undefined)
      throw new C2Error('C2_FAILED_PRECONDITION', 'automation is not available on this node');
    return service;
  };
  const ruleMessage = async (rule: AutomationRuleRow): Promise<ProtoMessage> => {
    // A rule deleted since it was read has no firings left (they go with it).
    const last = (
      await svc()
        .listFirings(rule.id, 1)
        .catch((err: unknown) => {
          if (C2Error.is(err, 'C2_NOT_FOUND')) return [];
          throw err;
        })
    )[0];
    const ms = last?.dueAt.getTime();
    return {
      id: Number(rule.id),
      description: rule.description,
      action: 'KEY_ROTATION',
      lastExecuted:
        ms === undefined
          ? null
          : { seconds: String(Math.floor(ms / 1000)), nanos: (ms % 1000) * 1_000_000 },
      triggers: rule.triggers.map(triggerMessage),
      targets: rule.targets.map(targetMessage),
    };
  };
  return {
    ListRules: async () => ({
      rules: await Promise.all((await svc().listRules()).map(ruleMessage)),
    }),
    GetRule: async (req) => ({
      rule: await ruleMessage(await svc().getRule(ruleId(numberField(req, 'ruleId')))),
    }),
    AddRule: async (req, ctx) => ({
      rule: await ruleMessage(await svc().createRule(requestContext(ctx), ruleInput(req))),
    }),
    UpdateRule: async (req, ctx) => {
      const id = ruleId(numberField(req, 'ruleId'));
      const existing = await svc().getRule(id);
      return {
        rule: await ruleMessage(
          await svc().updateRule(requestContext(ctx), id, ruleInput(req, existing)),
        ),
      };
    },
    DeleteRule: async (req, ctx) => {
      const id = ruleId(numberField(req, 'ruleId'));
      await svc().deleteRule(requestContext(ctx), id);
      return { ruleId: Number(id) };
    },
    HealthCheck: () => Promise.resolve({ Code: '0', Status: 'OK' }),
  };
}
