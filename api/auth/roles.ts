/**
 * API roles and which operations each may call. Operations are classified by their RPC method
 * name (the same name on gRPC and on the HTTP route that mirrors it). Anything not recognised
 * needs `admin`: a new RPC is closed to lesser roles until someone classifies it here.
 */

/** The roles of DESIGN §10, from least to most powerful. */
export const API_ROLES = ['read-only', 'operator', 'admin'] as const;

/** One API role. */
export type ApiRole = (typeof API_ROLES)[number];

/** Whether `value` names a role. */
export function isApiRole(value: unknown): value is ApiRole {
  return typeof value === 'string' && (API_ROLES as readonly string[]).includes(value);
}

/** Reads: lists, counts, gets, status and event streams. They reveal no key material. */
const READ_PREFIXES = ['Get', 'List', 'Count', 'Subscribe', 'Stream', 'Watch', 'Check', 'Health'];

/**
 * Day-to-day key operations: rotations, resyncs, membership and message protection. Creating
 * or removing identities and topics, the C2 key, automation rules and recovery stay `admin`.
 * `NewTopic` is here because the reference rotates with it too; its operation lets an operator
 * rotate an existing topic and refuses to create one (`reference-ops.ts`).
 */
const OPERATOR_METHODS = new Set([
  'ResetClient',
  'NewClientKey',
  'NewTopic',
  'NewTopicClient',
  'RemoveTopicClient',
  'LinkClient',
  'UnlinkClient',
  'SendClientPubKey',
  'RemoveClientPubKey',
  'ResetClientPubKeys',
  'ProtectMessage',
  'UnprotectMessage',
  'RotateClientKey',
  'RotateTopicKey',
  'ResyncClient',
]);

/** The bare method name of `pb.C2/NewClient`, `/e4c2.v1.C2Admin/GetTopic` or `GetTopic`. */
export function methodName(operation: string): string {
  const slash = operation.lastIndexOf('/');
  return slash < 0 ? operation : operation.slice(slash + 1);
}

/**
 * Whether `operation` is a liveness probe that needs no credentials: the reference `HealthCheck`
 * (`pb.C2`, `pb.C2AutomationEngine`; `GET /e4/health-check`, `GET /health-check`) answers a
 * constant, and the Docker HEALTHCHECKs written for the reference C2 send no credentials.
 */
export function isUnauthenticatedProbe(operation: string): boolean {
  return methodName(operation) === 'HealthCheck';
}

/** The least role allowed to call `operation` (a method name, qualified or not). */
export function requiredRole(operation: string): ApiRole {
  const method = methodName(operation);
  if (READ_PREFIXES.some((prefix) => method.startsWith(prefix))) return 'read-only';
  if (OPERATOR_METHODS.has(method)) return 'operator';
  return 'admin';
}

/** Whether `role` may call operations that need `needed`. */
export function roleAllows(role: ApiRole, needed: ApiRole): boolean {
  return API_ROLES.indexOf(role) >= API_ROLES.indexOf(needed);
}
