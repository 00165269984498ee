/**
 * `grpc.health.v1.Health`: Check answers SERVING when the readiness function reports ready (and
 * the node is not draining), NOT_SERVING otherwise. Watch sends the status at once and then each
 * change, polling readiness; it ends with OK when the server shuts down (the stream registry).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import {
  status as GrpcStatus,
  type handleServerStreamingCall,
  type handleUnaryCall,
  type UntypedServiceImplementation,
} from '@grpc/grpc-js';
import type { ApiDeps } from '../api-types.ts';
import type { ProtoMessage } from '../codec/protos.ts';
import { stringField } from '../operations/message-fields.ts';
import type { StreamRegistry } from './event-streams.ts';

/** Service names Check knows ('' is the whole server). */
export const HEALTH_SERVICES: readonly string[] = [
  '',
  'pb.C2',
  'e4c2.v1.C2Admin',
  'e4c2.v1.C2Automation',
  'pb.C2AutomationEngine',
  'grpc.health.v1.Health',
];

/** How often Watch re-reads readiness. */
export const HEALTH_WATCH_INTERVAL_MS = 1000;

async function servingStatus(deps: ApiDeps, service: string): Promise<string> {
  if (!HEALTH_SERVICES.includes(service)) return 'SERVICE_UNKNOWN';
  return (await deps.readiness()).ready ? 'SERVING' : 'NOT_SERVING';
}

/** The implementation of `grpc.health.v1.Health`. */
export function healthService(
  deps: ApiDeps,
  streams: StreamRegistry,
  watchIntervalMs = HEALTH_WATCH_INTERVAL_MS,
): UntypedServiceImplementation {
  const check: handleUnaryCall<ProtoMessage, ProtoMessage> = (call, callback) => {
    const service = stringField(call.request, 'service');
    if (!HEALTH_SERVICES.includes(service)) {
      // The name is the caller's, of any length: the status message travels in a trailer, and
      // one too big for HTTP/2's header limits left the call, and the connection, hanging.
      const shown =
        service.length > 64 ? `${service.slice(0, 64)}… (${service.length} characters)` : service;
      callback({ code: GrpcStatus.NOT_FOUND, details: `unknown service ${shown}` });
      return;
    }
    void servingStatus(deps, service).then((status) => {
      callback(null, { status });
    });
  };
  // As the protocol says: an unknown service is answered SERVICE_UNKNOWN, not an error, since it
  // may be registered later; the stream stays open.
  const watch: handleServerStreamingCall<ProtoMessage, ProtoMessage> = (call) => {
    const service = stringField(call.request, 'service');
    const controller = new AbortController();
    // A function, not the property: the flag changes while we await.
    const aborted = (): boolean => controller.signal.aborted;
    streams.add(controller);
    call.on('cancelled', () => {
      controller.abort();
    });
    void (async () => {
      let last: string | undefined;
      try {
        while (!aborted()) {
          const status = await servingStatus(deps, service);
          if (status !== last && !aborted()) {
            call.write({ status });
            last = status;
          }
          await sleep(watchIntervalMs, undefined, { signal: controller.signal }).catch(
            () => undefined,
          );
        }
      } finally {
        streams.delete(controller);
        call.end();
      }
    })();
  };
  return { Check: check, Watch: watch };
}
