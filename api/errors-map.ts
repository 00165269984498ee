/**
 * The one table that turns a {@link C2ErrorCode} into a gRPC status and an HTTP status, and the
 * functions both API surfaces use to describe a failure to a client.
 *
 * Internal failures (a bug, the key vault, anything that is not a {@link C2Error} on purpose)
 * reach clients only as "internal error; see the server logs (request id X)": their message and
 * cause can carry driver text, so they go to the log, never on the wire.
 */
import { status as GrpcStatus } from '@grpc/grpc-js';
import { C2Error, C2ErrorCode, type C2ErrorDetails } from '../cluster/errors.ts';

/** How one error code is reported on each surface. */
export interface ErrorMapping {
  /** gRPC status code. */
  readonly grpc: GrpcStatus;
  /** HTTP status code. */
  readonly http: number;
  /** False: the message and details stay in the logs and the client gets a generic message. */
  readonly expose: boolean;
}

/**
 * Every C2 error code and its statuses. FAILED_PRECONDITION is HTTP 400, as grpc-gateway maps it
 * (the reference HTTP API was a grpc-gateway), not 412: 412 is about HTTP conditional headers.
 */
export const ERROR_MAP: Readonly<Record<C2ErrorCode, ErrorMapping>> = Object.freeze({
  C2_VALIDATION: { grpc: GrpcStatus.INVALID_ARGUMENT, http: 400, expose: true },
  C2_NOT_FOUND: { grpc: GrpcStatus.NOT_FOUND, http: 404, expose: true },
  C2_ALREADY_EXISTS: { grpc: GrpcStatus.ALREADY_EXISTS, http: 409, expose: true },
  C2_CONFLICT: { grpc: GrpcStatus.ABORTED, http: 409, expose: true },
  C2_CRYPTO_MODE: { grpc: GrpcStatus.FAILED_PRECONDITION, http: 400, expose: true },
  C2_FAILED_PRECONDITION: { grpc: GrpcStatus.FAILED_PRECONDITION, http: 400, expose: true },
  C2_UNAUTHENTICATED: { grpc: GrpcStatus.UNAUTHENTICATED, http: 401, expose: true },
  C2_PERMISSION_DENIED: { grpc: GrpcStatus.PERMISSION_DENIED, http: 403, expose: true },
  C2_UNAVAILABLE: { grpc: GrpcStatus.UNAVAILABLE, http: 503, expose: true },
  C2_CONFIG: { grpc: GrpcStatus.INTERNAL, http: 500, expose: false },
  C2_KEY_VAULT: { grpc: GrpcStatus.INTERNAL, http: 500, expose: false },
  C2_INTERNAL: { grpc: GrpcStatus.INTERNAL, http: 500, expose: false },
});

/** A failure as a client sees it, on either surface. */
export interface ApiFailure {
  readonly code: C2ErrorCode;
  /** Safe to send: the C2Error message, or the generic internal message. */
  readonly message: string;
  /** Client-safe details (never present for internal failures). */
  readonly details?: C2ErrorDetails;
  readonly grpc: GrpcStatus;
  readonly http: number;
  /** True for failures whose real cause is only in the logs. */
  readonly internal: boolean;
  /** Correlates the response with the server's log line. */
  readonly requestId: string;
}

/** The message every internal failure carries to the client. */
export function internalMessage(requestId: string): string {
  return `internal error; see the server logs (request id ${requestId})`;
}

/**
 * Describes any thrown value for a client. A {@link C2Error} with an exposed code keeps its
 * message and details; everything else becomes a generic `C2_INTERNAL`.
 */
export function describeFailure(err: unknown, requestId: string): ApiFailure {
  const known = C2Error.is(err) ? err : undefined;
  const code = known?.code ?? C2ErrorCode.C2_INTERNAL;
  const mapping = ERROR_MAP[code];
  if (known === undefined || !mapping.expose) {
    return {
      code,
      message: internalMessage(requestId),
      grpc: mapping.grpc,
      http: mapping.http,
      internal: true,
      requestId,
    };
  }
  return {
    code,
    message: known.message,
    ...(known.details === undefined ? {} : { details: known.details }),
    grpc: mapping.grpc,
    http: mapping.http,
    internal: false,
    requestId,
  };
}

/**
 * A failure found by the transport itself (an unknown route, a body over the limit) rather than
 * by the domain: the code says what kind it is, the statuses can be more precise than the table.
 */
export function transportFailure(
  code: C2ErrorCode,
  message: string,
  requestId: string,
  overrides: { readonly http?: number; readonly grpc?: GrpcStatus; details?: C2ErrorDetails } = {},
): ApiFailure {
  const mapping = ERROR_MAP[code];
  return {
    code,
    message,
    ...(overrides.details === undefined ? {} : { details: overrides.details }),
    grpc: overrides.grpc ?? mapping.grpc,
    http: overrides.http ?? mapping.http,
    internal: false,
    requestId,
  };
}
