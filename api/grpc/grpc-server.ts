/**
 * The gRPC surface: `pb.C2` (the reference API, wire compatible), `e4c2.v1.C2Admin` (ours) and
 * `grpc.health.v1.Health`, on one @grpc/grpc-js server, over TLS when a certificate is given.
 */
import {
  Server,
  ServerCredentials,
  type handleUnaryCall,
  type UntypedServiceImplementation,
} from '@grpc/grpc-js';
import { grpcStatusName } from '../../cluster/telemetry/index.ts';
import type { ApiDeps } from '../api-types.ts';
import type { LoadedProtos, ProtoMessage } from '../codec/protos.ts';
import { ADMIN_UNARY_RPCS, type adminOperations } from '../operations/admin-ops.ts';
import { AUTOMATION_UNARY_RPCS, type automationOperations } from '../operations/automation-ops.ts';
import { C2AE_RPCS, type c2aeOperations } from '../operations/c2ae-ops.ts';
import { REFERENCE_UNARY_RPCS, type referenceOperations } from '../operations/reference-ops.ts';
import { formatHostPort, listenFailure, type BoundAddress } from '../transport-common.ts';
import { streamEvents, subscribeToEventStream, type StreamRegistry } from './event-streams.ts';
import { unaryHandler } from './grpc-calls.ts';
import { healthService } from './health-service.ts';
import { withTolerantDeserializers } from './undecodable-requests.ts';

/** Options of {@link GrpcApiServer.start}. */
export interface GrpcServerOptions {
  readonly host: string;
  readonly port: number;
  /** PEM certificate chain and key: TLS when given; with `clientCa`, mutual TLS is required. */
  readonly tls?: { readonly cert: Buffer; readonly key: Buffer; readonly clientCa?: Buffer };
  /** Largest message received, in bytes (larger calls fail with RESOURCE_EXHAUSTED). */
  readonly maxMessageBytes: number;
  readonly protos: LoadedProtos;
  readonly reference: ReturnType<typeof referenceOperations>;
  readonly admin: ReturnType<typeof adminOperations>;
  /** `e4c2.v1.C2Automation` (docs/automation.md), when given. */
  readonly automation?: ReturnType<typeof automationOperations>;
  /** The reference automation engine's `pb.C2AutomationEngine`, when given. */
  readonly c2ae?: ReturnType<typeof c2aeOperations>;
  readonly deps: ApiDeps;
}

/** A running gRPC listener. */
export class GrpcApiServer {
  readonly #streams: StreamRegistry;
  #closed: Promise<void> | undefined;

  private constructor(
    private readonly server: Server,
    streams: StreamRegistry,
    /** Where it listens (the real port when 0 was asked for). */
    readonly address: BoundAddress,
  ) {
    this.#streams = streams;
  }

  /**
   * Builds the services and binds.
   * @throws C2Error `C2_UNAVAILABLE` when the address cannot be bound (e.g. the port is in use)
   */
  static async start(options: GrpcServerOptions): Promise<GrpcApiServer> {
    const { deps, protos } = options;
    const log = deps.logger.child?.({ surface: 'grpc' }) ?? deps.logger;
    const streams: StreamRegistry = new Set();
    const server = new Server({
      'grpc.max_receive_message_length': options.maxMessageBytes,
    });

    const c2: UntypedServiceImplementation = {
      SubscribeToEventStream: subscribeToEventStream(deps, log, streams),
    };
    for (const rpc of REFERENCE_UNARY_RPCS)
      c2[rpc] = instrumented(
        deps,
        `pb.C2/${rpc}`,
        unaryHandler(deps, log, `pb.C2/${rpc}`, options.reference[rpc]),
      );
    server.addService(withTolerantDeserializers(protos.service('pb.C2')), c2);

    const admin: UntypedServiceImplementation = { StreamEvents: streamEvents(deps, log, streams) };
    for (const rpc of ADMIN_UNARY_RPCS)
      admin[rpc] = instrumented(
        deps,
        `e4c2.v1.C2Admin/${rpc}`,
        unaryHandler(deps, log, `e4c2.v1.C2Admin/${rpc}`, options.admin[rpc]),
      );
    server.addService(withTolerantDeserializers(protos.service('e4c2.v1.C2Admin')), admin);

    const automationOps = options.automation;
    if (automationOps !== undefined) {
      const automation: UntypedServiceImplementation = {};
      for (const rpc of AUTOMATION_UNARY_RPCS)
        automation[rpc] = instrumented(
          deps,
          `e4c2.v1.C2Automation/${rpc}`,
          unaryHandler(deps, log, `e4c2.v1.C2Automation/${rpc}`, automationOps[rpc]),
        );
      server.addService(
        withTolerantDeserializers(protos.service('e4c2.v1.C2Automation')),
        automation,
      );
    }
    const c2aeOps = options.c2ae;
    if (c2aeOps !== undefined) {
      const c2ae: UntypedServiceImplementation = {};
      for (const rpc of C2AE_RPCS)
        c2ae[rpc] = instrumented(
          deps,
          `pb.C2AutomationEngine/${rpc}`,
          unaryHandler(deps, log, `pb.C2AutomationEngine/${rpc}`, c2aeOps[rpc]),
        );
      server.addService(withTolerantDeserializers(protos.service('pb.C2AutomationEngine')), c2ae);
    }

    server.addService(protos.service('grpc.health.v1.Health'), healthService(deps, streams));

    const credentials =
      options.tls === undefined
        ? ServerCredentials.createInsecure()
        : ServerCredentials.createSsl(
            options.tls.clientCa ?? null,
            [{ cert_chain: options.tls.cert, private_key: options.tls.key }],
            options.tls.clientCa !== undefined,
          );
    const port = await new Promise<number>((resolve, reject) => {
      server.bindAsync(formatHostPort(options.host, options.port), credentials, (err, bound) => {
        if (err === null) {
          resolve(bound);
          return;
        }
        server.forceShutdown();
        reject(listenFailure('gRPC', options.host, options.port, err.message, err));
      });
    });
    return new GrpcApiServer(server, streams, { host: options.host, port });
  }

  /**
   * Ends the event streams, stops accepting calls, waits for in-flight calls, and after
   * `timeoutMs` cancels whatever is left. Idempotent.
   */
  close(timeoutMs: number): Promise<void> {
    this.#closed ??= new Promise<void>((resolve) => {
      for (const stream of this.#streams) stream.abort();
      const timer = setTimeout(() => {
        this.server.forceShutdown();
        resolve();
      }, timeoutMs);
      this.server.tryShutdown(() => {
        clearTimeout(timer);
        resolve();
      });
    });
    return this.#closed;
  }
}

/**
 * Runs a unary handler inside the call's server span (the root of a rotation's trace) and counts
 * it by method and status; the handler itself is unchanged when telemetry is off.
 */
function instrumented(
  deps: ApiDeps,
  rpc: string,
  handler: handleUnaryCall<ProtoMessage, ProtoMessage>,
): handleUnaryCall<ProtoMessage, ProtoMessage> {
  const telemetry = deps.telemetry;
  if (telemetry === undefined) return handler;
  telemetry.serves('grpc', rpc);
  return (call, callback) => {
    void telemetry.serve(
      'grpc',
      `grpc ${rpc}`,
      () =>
        new Promise((resolve) => {
          handler(call, (err, value, trailer, flags) => {
            callback(err, value, trailer, flags);
            resolve({ method: rpc, status: grpcStatusName(err?.code ?? 0) });
          });
        }),
    );
  };
}
