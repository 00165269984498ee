/**
 * The API node: the reference gRPC service `pb.C2` and its `/e4/...` HTTP routes, our
 * `e4c2.v1.C2Admin` service and its `/v1/...` routes, grpc.health.v1, `/healthz` and `/readyz`.
 */
export {
  ApiServer,
  DEFAULT_MAX_MESSAGE_BYTES,
  REQUEST_ENVELOPE_BYTES,
  transportLimits,
  type ApiServerOptions,
} from './api-server.ts';
export {
  anonymousAuthenticate,
  type ApiLogger,
  type AuthRequest,
  type Authenticate,
  type CallContext,
  type DependencyState,
  type ReadinessReport,
} from './api-types.ts';
export {
  describeFailure,
  ERROR_MAP,
  internalMessage,
  type ApiFailure,
  type ErrorMapping,
} from './errors-map.ts';
export { loadProtos, PROTO_DIR, PROTO_FILES, type LoadedProtos } from './codec/protos.ts';
export { ADMIN_ROUTE_LIST, REFERENCE_ROUTE_LIST } from './http/routes.ts';
export type { BoundAddress } from './transport-common.ts';
