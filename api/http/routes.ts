/**
 * Every HTTP route: the reference `/e4/...` routes exactly as grpc-gateway served them
 * (c2-reference.md §1.2), ours under `/v1`, and the probes. A route names the RPC whose request
 * message it builds from the path, the query string and the body, and whose operation it calls.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AdminUnaryRpc } from '../operations/admin-ops.ts';
import type { AutomationUnaryRpc } from '../operations/automation-ops.ts';
import type { C2aeRpc } from '../operations/c2ae-ops.ts';
import type { ReferenceUnaryRpc, UnaryOperation } from '../operations/reference-ops.ts';
import type { ErrorStyle } from './http-io.ts';
import { compilePath, type PathPattern } from './router.ts';

/** Methods the routes use. */
export type HttpMethod = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';

/** A route served by a unary operation. */
export interface OperationRoute {
  readonly kind: 'operation';
  readonly method: HttpMethod;
  readonly pattern: PathPattern;
  readonly style: ErrorStyle;
  /** `pb.C2/NewClient`, `e4c2.v1.C2Admin/GetClient`: for logs. */
  readonly rpc: string;
  readonly requestType: string;
  readonly responseType: string;
  /** `body: "*"`: the request message is the JSON body; otherwise unbound fields come from the query. */
  readonly body: boolean;
  /** Query parameter names that differ from the field they fill (`after` → `after_seq`). */
  readonly queryAliases: Readonly<Record<string, string>>;
  readonly operation: UnaryOperation;
}

/** A probe (`/healthz`, `/readyz`): no authentication, no body. */
export interface ProbeRoute {
  readonly kind: 'probe';
  readonly method: 'GET';
  readonly pattern: PathPattern;
  readonly style: ErrorStyle;
  handle(): Promise<{ readonly status: number; readonly body: unknown }>;
}

/** What a {@link StreamRoute} handler receives besides the request and the response. */
export interface StreamContext {
  readonly actor: string;
  readonly requestId: string;
  readonly query: URLSearchParams;
  /** Aborted when the server shuts down: the handler ends its response. */
  readonly closing: AbortSignal;
}

/** Writes a long-lived response itself (server-sent events). */
export type StreamHandler = (
  req: IncomingMessage,
  res: ServerResponse,
  ctx: StreamContext,
) => Promise<void>;

/** A long-lived, authenticated route whose handler writes the response (server-sent events). */
export interface StreamRoute {
  readonly kind: 'stream';
  readonly method: 'GET';
  readonly pattern: PathPattern;
  readonly style: ErrorStyle;
  /** For logs and authorization, like an RPC name. */
  readonly rpc: string;
  readonly handle: StreamHandler;
}

/** Any route. */
export type HttpRoute = OperationRoute | ProbeRoute | StreamRoute;

/** Path of the server-sent events stream (the web console's live view). */
export const EVENT_STREAM_PATH = '/v1/events/stream';

interface RouteSpec<R extends string> {
  readonly method: HttpMethod;
  readonly path: string;
  readonly rpc: R;
  readonly body?: boolean;
  readonly query?: Readonly<Record<string, string>>;
}

/** grpc-gateway routes of `pb.C2` (SubscribeToEventStream has none). */
const REFERENCE_ROUTES: readonly RouteSpec<ReferenceUnaryRpc>[] = [
  { method: 'POST', path: '/e4/client/{client.name}', rpc: 'NewClient', body: true },
  { method: 'DELETE', path: '/e4/client/{client.name}', rpc: 'RemoveClient' },
  { method: 'PUT', path: '/e4/client/{client.name}', rpc: 'ResetClient' },
  { method: 'PATCH', path: '/e4/client/{client.name}', rpc: 'NewClientKey', body: true },
  { method: 'POST', path: '/e4/topic/{topic=**}', rpc: 'NewTopic' },
  { method: 'DELETE', path: '/e4/topic/{topic=**}', rpc: 'RemoveTopic' },
  { method: 'PUT', path: '/e4/client/{client.name}/topic/{topic=**}', rpc: 'NewTopicClient' },
  {
    method: 'DELETE',
    path: '/e4/client/{client.name}/topic/{topic=**}',
    rpc: 'RemoveTopicClient',
  },
  { method: 'GET', path: '/e4/client/{client.name}/topics/count', rpc: 'CountTopicsForClient' },
  { method: 'GET', path: '/e4/client/{client.name}/topics', rpc: 'GetTopicsForClient' },
  { method: 'GET', path: '/e4/topic/{topic=**}/clients/count', rpc: 'CountClientsForTopic' },
  { method: 'GET', path: '/e4/topic/{topic=**}/clients', rpc: 'GetClientsForTopic' },
  { method: 'GET', path: '/e4/clients/count', rpc: 'CountClients' },
  { method: 'GET', path: '/e4/clients', rpc: 'GetClients' },
  { method: 'GET', path: '/e4/topics/count', rpc: 'CountTopics' },
  { method: 'GET', path: '/e4/topics', rpc: 'GetTopics' },
  {
    method: 'POST',
    path: '/e4/client/{targetClient.name}/link/{sourceClient.name}',
    rpc: 'LinkClient',
  },
  {
    method: 'DELETE',
    path: '/e4/client/{targetClient.name}/unlink/{sourceClient.name}',
    rpc: 'UnlinkClient',
  },
  { method: 'GET', path: '/e4/client/{client.name}/link/count', rpc: 'CountLinkedClients' },
  { method: 'GET', path: '/e4/client/{client.name}/link', rpc: 'GetLinkedClients' },
  { method: 'POST', path: '/e4/send-client-pubkey', rpc: 'SendClientPubKey', body: true },
  { method: 'POST', path: '/e4/remove-client-pubkey', rpc: 'RemoveClientPubKey', body: true },
  { method: 'POST', path: '/e4/reset-client-pubkeys', rpc: 'ResetClientPubKeys', body: true },
  { method: 'POST', path: '/e4/new-c2-key', rpc: 'NewC2Key', body: true },
  { method: 'POST', path: '/e4/protect-message', rpc: 'ProtectMessage', body: true },
  { method: 'POST', path: '/e4/unprotect-message', rpc: 'UnprotectMessage', body: true },
  { method: 'GET', path: '/e4/health-check', rpc: 'HealthCheck' },
  { method: 'GET', path: '/e4/crypto-mode', rpc: 'GetCryptoMode' },
];

/** Our routes, mirroring `e4c2.v1.C2Admin`; names in paths are URL-encoded single segments. */
const ADMIN_ROUTES: readonly RouteSpec<AdminUnaryRpc>[] = [
  { method: 'GET', path: '/v1/clients', rpc: 'ListClients' },
  { method: 'GET', path: '/v1/clients/{name}', rpc: 'GetClient' },
  { method: 'DELETE', path: '/v1/clients/{name}', rpc: 'RemoveClient' },
  { method: 'POST', path: '/v1/clients/{name}/rotate', rpc: 'RotateClientKey', body: true },
  { method: 'POST', path: '/v1/clients/{name}/resync', rpc: 'ResyncClient', body: true },
  { method: 'GET', path: '/v1/topics', rpc: 'ListTopics' },
  { method: 'GET', path: '/v1/topics/{name}', rpc: 'GetTopic' },
  { method: 'POST', path: '/v1/topics/{name}/rotate', rpc: 'RotateTopicKey', body: true },
  { method: 'POST', path: '/v1/topics/{name}', rpc: 'NewTopic', body: true },
  { method: 'GET', path: '/v1/topics/{name}/rollout', rpc: 'GetRotationStatus' },
  { method: 'GET', path: '/v1/topics/{name}/traffic', rpc: 'GetTopicTraffic' },
  { method: 'GET', path: '/v1/c2-public-key', rpc: 'GetC2PublicKey' },
  { method: 'GET', path: '/v1/events', rpc: 'ListEvents', query: { after: 'after_seq' } },
  { method: 'POST', path: '/v1/admin/reconcile-restore', rpc: 'ReconcileAfterRestore', body: true },
  { method: 'GET', path: '/v1/admin/restore-status', rpc: 'GetRestoreStatus' },
];

/** Request and response message types of the admin RPCs that do not follow `<Rpc>Request`. */
const ADMIN_TYPES: Readonly<Record<AdminUnaryRpc, readonly [string, string]>> = {
  GetClient: ['GetClientRequest', 'ClientDetails'],
  ListClients: ['ListRequest', 'ListClientsResponse'],
  RemoveClient: ['RemoveClientRequest', 'RemoveClientResponse'],
  RotateClientKey: ['RotateClientKeyRequest', 'RotateClientKeyResponse'],
  ResyncClient: ['ResyncClientRequest', 'ResyncClientResponse'],
  GetTopic: ['GetTopicRequest', 'TopicDetails'],
  ListTopics: ['ListRequest', 'ListTopicsResponse'],
  RotateTopicKey: ['RotateTopicKeyRequest', 'RotateTopicKeyResponse'],
  NewTopic: ['NewTopicRequest', 'NewTopicResponse'],
  GetRotationStatus: ['GetRotationStatusRequest', 'RotationStatus'],
  GetC2PublicKey: ['GetC2PublicKeyRequest', 'C2PublicKey'],
  ListEvents: ['ListEventsRequest', 'ListEventsResponse'],
  ReconcileAfterRestore: ['ReconcileAfterRestoreRequest', 'ReconcileAfterRestoreResponse'],
  GetRestoreStatus: ['GetRestoreStatusRequest', 'RestoreStatus'],
  GetTopicTraffic: ['GetTopicTrafficRequest', 'TopicTraffic'],
};

/** Routes of `e4c2.v1.C2Automation` (docs/automation.md). */
const AUTOMATION_ROUTES: readonly RouteSpec<AutomationUnaryRpc>[] = [
  { method: 'GET', path: '/v1/automation/rules', rpc: 'ListRules' },
  { method: 'POST', path: '/v1/automation/rules', rpc: 'CreateRule', body: true },
  { method: 'GET', path: '/v1/automation/rules/{rule_id}', rpc: 'GetRule' },
  { method: 'PUT', path: '/v1/automation/rules/{rule_id}', rpc: 'UpdateRule', body: true },
  { method: 'DELETE', path: '/v1/automation/rules/{rule_id}', rpc: 'DeleteRule' },
  {
    method: 'POST',
    path: '/v1/automation/rules/{rule_id}/triggers',
    rpc: 'AddTrigger',
    body: true,
  },
  {
    method: 'DELETE',
    path: '/v1/automation/rules/{rule_id}/triggers/{trigger_id}',
    rpc: 'RemoveTrigger',
  },
  { method: 'POST', path: '/v1/automation/rules/{rule_id}/targets', rpc: 'AddTarget', body: true },
  {
    method: 'DELETE',
    path: '/v1/automation/rules/{rule_id}/targets/{target_id}',
    rpc: 'RemoveTarget',
  },
  { method: 'GET', path: '/v1/automation/status', rpc: 'GetAutomationStatus' },
  { method: 'POST', path: '/v1/automation/pause', rpc: 'PauseAutomation', body: true },
  { method: 'POST', path: '/v1/automation/resume', rpc: 'ResumeAutomation', body: true },
  { method: 'GET', path: '/v1/automation/firings', rpc: 'ListFirings' },
];

/** The reference automation engine's routes (grpc-gateway of `pb.C2AutomationEngine`). */
const C2AE_ROUTES: readonly (RouteSpec<C2aeRpc> & { readonly types: readonly [string, string] })[] =
  [
    {
      method: 'GET',
      path: '/rules',
      rpc: 'ListRules',
      types: ['ListRulesRequest', 'RulesResponse'],
    },
    {
      method: 'GET',
      path: '/rules/{ruleId}',
      rpc: 'GetRule',
      types: ['GetRuleRequest', 'RuleResponse'],
    },
    {
      method: 'POST',
      path: '/rules',
      rpc: 'AddRule',
      body: true,
      types: ['AddRuleRequest', 'RuleResponse'],
    },
    {
      method: 'PUT',
      path: '/rules',
      rpc: 'UpdateRule',
      body: true,
      types: ['UpdateRuleRequest', 'RuleResponse'],
    },
    {
      method: 'DELETE',
      path: '/rules/{ruleId}',
      rpc: 'DeleteRule',
      types: ['DeleteRuleRequest', 'DeleteRuleResponse'],
    },
    {
      method: 'GET',
      path: '/health-check',
      rpc: 'HealthCheck',
      types: ['HealthCheckRequest', 'HealthCheckResponse'],
    },
  ];

/** Message types of the automation RPCs. */
const AUTOMATION_TYPES: Readonly<Record<AutomationUnaryRpc, readonly [string, string]>> = {
  ListRules: ['ListRulesRequest', 'ListRulesResponse'],
  GetRule: ['GetRuleRequest', 'AutomationRule'],
  CreateRule: ['CreateRuleRequest', 'AutomationRule'],
  UpdateRule: ['UpdateRuleRequest', 'AutomationRule'],
  DeleteRule: ['DeleteRuleRequest', 'DeleteRuleResponse'],
  AddTrigger: ['AddTriggerRequest', 'AutomationRule'],
  RemoveTrigger: ['RemoveTriggerRequest', 'AutomationRule'],
  AddTarget: ['AddTargetRequest', 'AutomationRule'],
  RemoveTarget: ['RemoveTargetRequest', 'AutomationRule'],
  GetAutomationStatus: ['GetAutomationStatusRequest', 'AutomationStatus'],
  PauseAutomation: ['PauseAutomationRequest', 'AutomationStatus'],
  ResumeAutomation: ['ResumeAutomationRequest', 'AutomationStatus'],
  ListFirings: ['ListFiringsRequest', 'ListFiringsResponse'],
};

/** What {@link buildRoutes} needs. */
export interface RouteSources {
  readonly reference: Readonly<Record<ReferenceUnaryRpc, UnaryOperation>>;
  readonly admin: Readonly<Record<AdminUnaryRpc, UnaryOperation>>;
  /** The automation routes, when given. */
  readonly automation?: Readonly<Record<AutomationUnaryRpc, UnaryOperation>>;
  /** The reference automation engine's routes (`/rules`), when given. */
  readonly c2ae?: Readonly<Record<C2aeRpc, UnaryOperation>>;
  readonly liveness: () => Promise<{ readonly status: number; readonly body: unknown }>;
  readonly readiness: () => Promise<{ readonly status: number; readonly body: unknown }>;
  /** Serves {@link EVENT_STREAM_PATH} (server-sent events) when given. */
  readonly eventStream?: StreamHandler;
}

/** The full route table, in matching order. */
export function buildRoutes(sources: RouteSources): readonly HttpRoute[] {
  const routes: HttpRoute[] = [
    {
      kind: 'probe',
      method: 'GET',
      pattern: compilePath('/healthz'),
      style: 'v1',
      handle: sources.liveness,
    },
    {
      kind: 'probe',
      method: 'GET',
      pattern: compilePath('/readyz'),
      style: 'v1',
      handle: sources.readiness,
    },
  ];
  const add = (
    spec: RouteSpec<string>,
    style: ErrorStyle,
    rpc: string,
    types: readonly [string, string],
    operation: UnaryOperation,
  ): void => {
    routes.push({
      kind: 'operation',
      method: spec.method,
      pattern: compilePath(spec.path),
      style,
      rpc,
      requestType: types[0],
      responseType: types[1],
      body: spec.body === true,
      queryAliases: spec.query ?? {},
      operation,
    });
  };
  for (const spec of REFERENCE_ROUTES)
    add(
      spec,
      'gateway',
      `pb.C2/${spec.rpc}`,
      [`pb.${spec.rpc}Request`, `pb.${spec.rpc}Response`],
      sources.reference[spec.rpc],
    );
  for (const spec of ADMIN_ROUTES) {
    const [request, response] = ADMIN_TYPES[spec.rpc];
    add(
      spec,
      'v1',
      `e4c2.v1.C2Admin/${spec.rpc}`,
      [`e4c2.v1.${request}`, `e4c2.v1.${response}`],
      sources.admin[spec.rpc],
    );
  }
  const automation = sources.automation;
  if (automation !== undefined)
    for (const spec of AUTOMATION_ROUTES) {
      const [request, response] = AUTOMATION_TYPES[spec.rpc];
      add(
        spec,
        'v1',
        `e4c2.v1.C2Automation/${spec.rpc}`,
        [`e4c2.v1.${request}`, `e4c2.v1.${response}`],
        automation[spec.rpc],
      );
    }
  const c2ae = sources.c2ae;
  if (c2ae !== undefined)
    for (const spec of C2AE_ROUTES)
      add(
        { ...spec, query: {} },
        'gateway',
        `pb.C2AutomationEngine/${spec.rpc}`,
        [`pb.${spec.types[0]}`, `pb.${spec.types[1]}`],
        c2ae[spec.rpc],
      );
  if (sources.eventStream !== undefined) {
    routes.push({
      kind: 'stream',
      method: 'GET',
      pattern: compilePath(EVENT_STREAM_PATH),
      style: 'v1',
      rpc: 'e4c2.v1.C2Admin/StreamEvents',
      handle: sources.eventStream,
    });
  }
  return routes;
}

/** Every reference route as `METHOD template` (for the docs test). */
export const REFERENCE_ROUTE_LIST: readonly string[] = REFERENCE_ROUTES.map(
  (r) => `${r.method} ${r.path}`,
);

/** Every v1 route as `METHOD template`. */
export const ADMIN_ROUTE_LIST: readonly string[] = ADMIN_ROUTES.map((r) => `${r.method} ${r.path}`);

/** Every automation route as `METHOD template`. */
export const AUTOMATION_ROUTE_LIST: readonly string[] = AUTOMATION_ROUTES.map(
  (r) => `${r.method} ${r.path}`,
);
