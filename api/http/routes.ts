/**
 * Every HTTP route: the reference `/e4/...` routes exactly as grpc-gateway served them
 * (c2-reference.md §1.2), ours under `/v1`, and the probes. A route names the RPC whose request
 * message it builds from the path, the query string and the body, and whose operation it calls.
 */
import type { AdminUnaryRpc } from '../operations/admin-ops.ts';
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

/** Any route. */
export type HttpRoute = OperationRoute | ProbeRoute;

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
  { method: 'GET', path: '/v1/topics/{name}/rollout', rpc: 'GetRotationStatus' },
  { method: 'GET', path: '/v1/c2-public-key', rpc: 'GetC2PublicKey' },
  { method: 'GET', path: '/v1/events', rpc: 'ListEvents', query: { after: 'after_seq' } },
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
  GetRotationStatus: ['GetRotationStatusRequest', 'RotationStatus'],
  GetC2PublicKey: ['GetC2PublicKeyRequest', 'C2PublicKey'],
  ListEvents: ['ListEventsRequest', 'ListEventsResponse'],
};

/** What {@link buildRoutes} needs. */
export interface RouteSources {
  readonly reference: Readonly<Record<ReferenceUnaryRpc, UnaryOperation>>;
  readonly admin: Readonly<Record<AdminUnaryRpc, UnaryOperation>>;
  readonly liveness: () => Promise<{ readonly status: number; readonly body: unknown }>;
  readonly readiness: () => Promise<{ readonly status: number; readonly body: unknown }>;
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
  for (const spec of REFERENCE_ROUTES) {
    routes.push({
      kind: 'operation',
      method: spec.method,
      pattern: compilePath(spec.path),
      style: 'gateway',
      rpc: `pb.C2/${spec.rpc}`,
      requestType: `pb.${spec.rpc}Request`,
      responseType: `pb.${spec.rpc}Response`,
      body: spec.body === true,
      queryAliases: spec.query ?? {},
      operation: sources.reference[spec.rpc],
    });
  }
  for (const spec of ADMIN_ROUTES) {
    const [request, response] = ADMIN_TYPES[spec.rpc];
    routes.push({
      kind: 'operation',
      method: spec.method,
      pattern: compilePath(spec.path),
      style: 'v1',
      rpc: `e4c2.v1.C2Admin/${spec.rpc}`,
      requestType: `e4c2.v1.${request}`,
      responseType: `e4c2.v1.${response}`,
      body: spec.body === true,
      queryAliases: spec.query ?? {},
      operation: sources.admin[spec.rpc],
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
