/** Adapting transport-free operations to @grpc/grpc-js handlers: context, errors, logging. */
import { randomUUID } from 'node:crypto';
import {
  Metadata,
  type handleUnaryCall,
  type ServerErrorResponse,
  type ServerUnaryCall,
  type ServerWritableStream,
} from '@grpc/grpc-js';
import { callerOf, type ApiDeps, type ApiLogger, type CallContext } from '../api-types.ts';
import { verifiedCertificate } from '../auth/client-certificate.ts';
import type { ProtoMessage } from '../codec/protos.ts';
import { describeFailure, type ApiFailure } from '../errors-map.ts';
import type { UnaryOperation } from '../operations/reference-ops.ts';
import { checkIdempotencyKey, elapsedMs } from '../transport-common.ts';
import { assertDecoded } from './undecodable-requests.ts';

type AnyCall =
  ServerUnaryCall<ProtoMessage, ProtoMessage> | ServerWritableStream<ProtoMessage, ProtoMessage>;

/** First text value of a metadata entry. */
function metadataValue(call: AnyCall, name: string): string | undefined {
  const [value] = call.metadata.get(name);
  return typeof value === 'string' ? value : undefined;
}

/**
 * Authenticates a call and reads its idempotency key (metadata `idempotency-key`).
 * @throws whatever `authenticate` throws; C2Error `C2_VALIDATION` for a malformed key or a
 *   request message that did not decode
 */
export async function callContext(
  deps: ApiDeps,
  call: AnyCall,
  requestId: string,
  operation: string,
): Promise<CallContext> {
  const peer = call.getPeer();
  const certificate = verifiedCertificate(call.getAuthContext().sslPeerCertificate);
  const { actor, role } = callerOf(
    await deps.authenticate({
      transport: 'grpc',
      operation,
      ...(certificate === undefined ? {} : { clientCertificate: certificate }),
      peer: peer === '' || peer === 'unknown' ? undefined : peer,
      header: (name) => metadataValue(call, name.toLowerCase()),
    }),
  );
  // After authentication: a caller without credentials learns nothing about its bytes.
  assertDecoded(call.request);
  const idempotencyKey = checkIdempotencyKey(metadataValue(call, 'idempotency-key'));
  return {
    actor,
    ...(role === undefined ? {} : { role }),
    requestId,
    ...(idempotencyKey === undefined ? {} : { idempotencyKey }),
    ...(deps.idempotencyPerActor ? { idempotencyScope: actor } : {}),
  };
}

/** Trailing metadata every response carries. */
export function trailers(requestId: string, failure?: ApiFailure): Metadata {
  const metadata = new Metadata();
  metadata.set('x-request-id', requestId);
  if (failure !== undefined) metadata.set('e4c2-error-code', failure.code);
  return metadata;
}

/** The gRPC error of a failure: status, safe message, and the stable code in the trailers. */
export function serviceError(failure: ApiFailure): ServerErrorResponse {
  return Object.assign(new Error(failure.message), {
    code: failure.grpc,
    details: failure.message,
    metadata: trailers(failure.requestId, failure),
  });
}

/** Logs a failed call: internal failures with their cause at error, the rest at info. */
export function logFailure(
  log: ApiLogger,
  failure: ApiFailure,
  err: unknown,
  fields: Record<string, unknown>,
): void {
  if (failure.internal) log.error({ ...fields, err, code: failure.code }, 'call failed');
  else log.info({ ...fields, code: failure.code, message: failure.message }, 'call rejected');
}

/** A unary handler running `operation`. */
export function unaryHandler(
  deps: ApiDeps,
  log: ApiLogger,
  rpc: string,
  operation: UnaryOperation,
): handleUnaryCall<ProtoMessage, ProtoMessage> {
  return (call, callback) => {
    const requestId = randomUUID();
    const started = performance.now();
    void (async () => {
      /** Who called, once authenticated: a refused or failed call is attributed too. */
      let actor: string | undefined;
      try {
        const ctx = await callContext(deps, call, requestId, rpc);
        actor = ctx.actor;
        const response = await operation(call.request, ctx);
        log.debug({ requestId, rpc, actor, ms: elapsedMs(started) }, 'call');
        callback(null, response, trailers(requestId));
      } catch (err) {
        const failure = describeFailure(err, requestId);
        logFailure(log, failure, err, {
          requestId,
          rpc,
          ...(actor === undefined ? {} : { actor }),
          ms: elapsedMs(started),
        });
        callback(serviceError(failure));
      }
    })();
  };
}
