/**
 * Requests whose bytes are not the protobuf message they claim to be. grpc-js answers a request
 * its deserializer cannot read with INTERNAL "Error deserializing request" and none of our
 * trailers, which reads as a server bug; the caller sent bad input. So the deserializers of our
 * services never throw: they mark the request, and the handler refuses it as `C2_VALIDATION`.
 */
import type { ServiceDefinition } from '@grpc/grpc-js';
import { C2Error } from '../../cluster/errors.ts';
import type { ProtoMessage } from '../codec/protos.ts';

/** The key of the mark an undecodable request carries. */
const UNDECODABLE = Symbol('undecodable request');

/** `service` with deserializers that mark undecodable requests instead of throwing. */
export function withTolerantDeserializers(service: ServiceDefinition): ServiceDefinition {
  const tolerant: Record<string, ServiceDefinition[string]> = {};
  for (const [name, method] of Object.entries(service)) {
    tolerant[name] = {
      ...method,
      requestDeserialize: (bytes: Buffer): unknown => {
        try {
          return method.requestDeserialize(bytes);
        } catch {
          return { [UNDECODABLE]: true };
        }
      },
    };
  }
  return tolerant;
}

/** @throws C2Error `C2_VALIDATION` when `request` did not decode */
export function assertDecoded(request: ProtoMessage): void {
  if (UNDECODABLE in request) {
    throw new C2Error('C2_VALIDATION', 'the request message is not valid protobuf for this call', {
      details: { field: 'message' },
    });
  }
}
