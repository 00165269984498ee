/**
 * `grpc.health.v1.Health`: Check answers SERVING when the readiness function reports ready (and
 * the node is not draining), NOT_SERVING otherwise. Watch is not implemented (UNIMPLEMENTED), as
 * the protocol allows; probes poll Check.
 */
import {
  status as GrpcStatus,
  type handleServerStreamingCall,
  type handleUnaryCall,
  type UntypedServiceImplementation,
} from '@grpc/grpc-js';
import type { ApiDeps } from '../api-types.ts';
import type { ProtoMessage } from '../codec/protos.ts';
import { stringField } from '../operations/message-fields.ts';

/** Service names Check knows ('' is the whole server). */
export const HEALTH_SERVICES: readonly string[] = [
  '',
  'pb.C2',
  'e4c2.v1.C2Admin',
  'grpc.health.v1.Health',
];

/** The implementation of `grpc.health.v1.Health`. */
export function healthService(deps: ApiDeps): UntypedServiceImplementation {
  const check: handleUnaryCall<ProtoMessage, ProtoMessage> = (call, callback) => {
    const service = stringField(call.request, 'service');
    if (!HEALTH_SERVICES.includes(service)) {
      callback({ code: GrpcStatus.NOT_FOUND, details: `unknown service ${service}` });
      return;
    }
    void deps.readiness().then((report) => {
      callback(null, { status: report.ready ? 'SERVING' : 'NOT_SERVING' });
    });
  };
  const watch: handleServerStreamingCall<ProtoMessage, ProtoMessage> = (call) => {
    call.emit('error', {
      code: GrpcStatus.UNIMPLEMENTED,
      details: 'Watch is not implemented; poll Check',
    });
  };
  return { Check: check, Watch: watch };
}
