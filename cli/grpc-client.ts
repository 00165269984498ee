/**
 * {@link C2Api} over gRPC: one channel to the server (plaintext, or TLS with host-name check
 * against a given certificate or the system roots, optionally presenting a client certificate),
 * the reference `pb.C2` and our `e4c2.v1.C2Admin` loaded from `api/proto/*.proto`, the standard
 * health service, a deadline on every unary call, idempotency metadata on mutating reference
 * calls, and a bounded retry of calls that never got an answer (UNAVAILABLE), which the
 * idempotency key makes safe.
 */
import { fileURLToPath } from 'node:url';
import {
  Client,
  credentials,
  Metadata,
  status as GrpcStatus,
  type ChannelCredentials,
  type ChannelOptions,
  type ClientReadableStream,
} from '@grpc/grpc-js';
import {
  fromJSON,
  loadSync,
  type MethodDefinition,
  type PackageDefinition,
} from '@grpc/proto-loader';
import type {
  AdminRpcs,
  AutomationRpcs,
  C2Api,
  CallOptions,
  EventRecord,
  EventStream,
  HealthStatus,
  ReferenceEvent,
  ReferenceRpcs,
} from './api.ts';
import { isGrpcStatusError } from './errors.ts';

/** How to secure the channel. */
export type TlsOptions =
  | { readonly kind: 'insecure' }
  | {
      readonly kind: 'tls';
      /** PEM of the server certificate or its CA; undefined: the system's trusted roots. */
      readonly rootCerts?: Uint8Array;
      /** Name to check the certificate against instead of the endpoint's host. */
      readonly servername?: string;
      /** This client's certificate and key (PEM), for a server that requires mutual TLS. */
      readonly clientCert?: { readonly certChain: Uint8Array; readonly privateKey: Uint8Array };
    };

/** Bounded retry of calls that got no answer. */
export interface RetryPolicy {
  /** Delays before the second, third, ... attempt, in milliseconds (`[]`: no retry). */
  readonly delaysMs: readonly number[];
}

/** Options of {@link GrpcC2Api.connect}. */
export interface ConnectionOptions {
  /** `host:port`. */
  readonly endpoint: string;
  readonly tls: TlsOptions;
  /** Deadline of each unary call, and of the connection wait of streams, in milliseconds. */
  readonly timeoutMs: number;
  /** Sent as the gRPC user agent, e.g. `e4c2-cli/0.1.0`. */
  readonly userAgent: string;
  /** Cancels in-flight calls when aborted. */
  readonly signal?: AbortSignal;
  /** Default: two retries, 250 ms and 750 ms apart. */
  readonly retry?: RetryPolicy;
  /** API bearer token, sent as `authorization: Bearer …` metadata on every call. */
  readonly token?: string;
}

/** The reference methods that change state: they carry the `idempotency-key` metadata. */
const PROTO_DIR = fileURLToPath(new URL('../api/proto/', import.meta.url));
const REFERENCE_SERVICE = 'pb.C2';
const ADMIN_SERVICE = 'e4c2.v1.C2Admin';
const AUTOMATION_SERVICE = 'e4c2.v1.C2Automation';
const HEALTH_SERVICE = 'grpc.health.v1.Health';
const DEFAULT_RETRY: RetryPolicy = { delaysMs: [250, 750] };

const LOADER_OPTIONS = {
  keepCase: true,
  longs: String,
  enums: String,
  defaults: true,
  oneofs: true,
} as const;

/** The standard health service (grpc/grpc doc/health-checking.md) as a protobufjs descriptor. */
const HEALTH_DESCRIPTOR: Parameters<typeof fromJSON>[0] = {
  nested: {
    grpc: {
      nested: {
        health: {
          nested: {
            v1: {
              nested: {
                HealthCheckRequest: { fields: { service: { type: 'string', id: 1 } } },
                HealthCheckResponse: {
                  fields: { status: { type: 'ServingStatus', id: 1 } },
                  nested: {
                    ServingStatus: {
                      values: { UNKNOWN: 0, SERVING: 1, NOT_SERVING: 2, SERVICE_UNKNOWN: 3 },
                    },
                  },
                },
                Health: {
                  methods: {
                    Check: {
                      requestType: 'HealthCheckRequest',
                      responseType: 'HealthCheckResponse',
                      comment: '',
                    },
                  },
                },
              },
            },
          },
        },
      },
    },
  },
};

type AnyMethod = MethodDefinition<object, object>;

function methodOf(definitions: PackageDefinition, service: string, name: string): AnyMethod {
  const definition = definitions[service];
  if (definition === undefined || 'format' in definition) {
    throw new Error(`service ${service} is missing from the loaded protos`);
  }
  const method = definition[name];
  if (method === undefined) throw new Error(`method ${service}/${name} is missing`);
  return method;
}

function loadDefinitions(): PackageDefinition {
  return {
    ...loadSync(['c2.proto', 'e4c2_v1.proto', 'automation_v1.proto'], {
      ...LOADER_OPTIONS,
      includeDirs: [PROTO_DIR],
    }),
    ...fromJSON(HEALTH_DESCRIPTOR, LOADER_OPTIONS),
  };
}

function channelCredentials(tls: TlsOptions): ChannelCredentials {
  if (tls.kind === 'insecure') return credentials.createInsecure();
  return credentials.createSsl(
    tls.rootCerts === undefined ? null : Buffer.from(tls.rootCerts),
    tls.clientCert === undefined ? null : Buffer.from(tls.clientCert.privateKey),
    tls.clientCert === undefined ? null : Buffer.from(tls.clientCert.certChain),
  );
}

function channelOptions(options: ConnectionOptions): ChannelOptions {
  const servername = options.tls.kind === 'tls' ? options.tls.servername : undefined;
  return {
    'grpc.primary_user_agent': options.userAgent,
    ...(servername === undefined
      ? {}
      : { 'grpc.ssl_target_name_override': servername, 'grpc.default_authority': servername }),
  };
}

/**
 * Runs `attempt` and, while it fails with UNAVAILABLE (no answer), runs it again after each of
 * `delaysMs`. Other failures, and any failure once `signal` is aborted, are thrown at once.
 */
export async function withRetry<T>(
  attempt: () => Promise<T>,
  delaysMs: readonly number[],
  sleep: (ms: number) => Promise<void>,
  signal?: AbortSignal,
): Promise<T> {
  for (let i = 0; ; i++) {
    try {
      return await attempt();
    } catch (err) {
      const delay = delaysMs[i];
      const retryable = isGrpcStatusError(err) && err.code === GrpcStatus.UNAVAILABLE;
      if (!retryable || delay === undefined || signal?.aborted === true) throw err;
      await sleep(delay);
    }
  }
}

async function* iterate<T>(call: ClientReadableStream<object>): AsyncGenerator<T> {
  for await (const item of call as AsyncIterable<unknown>) yield item as T;
}

/** {@link C2Api} on a real gRPC channel. Create with {@link GrpcC2Api.connect}; `close()` it. */
export class GrpcC2Api implements C2Api {
  private closed = false;

  private constructor(
    private readonly client: Client,
    private readonly definitions: PackageDefinition,
    private readonly options: ConnectionOptions,
  ) {}

  /**
   * Prepares a channel to `options.endpoint`; nothing is dialed until the first call.
   * @throws Error when the protos under api/proto cannot be loaded
   */
  static connect(options: ConnectionOptions): GrpcC2Api {
    const client = new Client(
      options.endpoint,
      channelCredentials(options.tls),
      channelOptions(options),
    );
    return new GrpcC2Api(client, loadDefinitions(), options);
  }

  /** @inheritdoc */
  reference<M extends keyof ReferenceRpcs>(
    method: M,
    request: ReferenceRpcs[M]['request'],
    options: CallOptions = {},
  ): Promise<ReferenceRpcs[M]['response']> {
    const metadata = this.metadata();
    if (options.idempotencyKey !== undefined) {
      metadata.set('idempotency-key', options.idempotencyKey);
    }
    return this.unary(methodOf(this.definitions, REFERENCE_SERVICE, method), request, metadata);
  }

  /** @inheritdoc */
  admin<M extends keyof AdminRpcs>(
    method: M,
    request: AdminRpcs[M]['request'],
  ): Promise<AdminRpcs[M]['response']> {
    return this.unary(methodOf(this.definitions, ADMIN_SERVICE, method), request, this.metadata());
  }

  /** @inheritdoc */
  automation<M extends keyof AutomationRpcs>(
    method: M,
    request: AutomationRpcs[M]['request'],
  ): Promise<AutomationRpcs[M]['response']> {
    // Automation's changes carry no idempotency key: one that went through before its answer
    // was lost would be made twice by a retry (a second rule). Reads are retried as any call.
    const reads = /^(List|Get)/.test(method);
    return this.unary(
      methodOf(this.definitions, AUTOMATION_SERVICE, method),
      request,
      this.metadata(),
      reads ? undefined : [],
    );
  }

  /** @inheritdoc */
  referenceEvents(): EventStream<ReferenceEvent> {
    return this.stream(methodOf(this.definitions, REFERENCE_SERVICE, 'SubscribeToEventStream'), {});
  }

  /** @inheritdoc */
  adminEvents(afterSeq: string): EventStream<EventRecord> {
    return this.stream(methodOf(this.definitions, ADMIN_SERVICE, 'StreamEvents'), {
      after_seq: afterSeq,
    });
  }

  /** @inheritdoc */
  health(): Promise<HealthStatus> {
    return this.unary(
      methodOf(this.definitions, HEALTH_SERVICE, 'Check'),
      { service: '' },
      this.metadata(),
    );
  }

  /** @inheritdoc */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.client.close();
  }

  /** Fresh metadata for one call, with the bearer token when there is one. */
  private metadata(): Metadata {
    const metadata = new Metadata();
    if (this.options.token !== undefined)
      metadata.set('authorization', `Bearer ${this.options.token}`);
    return metadata;
  }

  /** @param delaysMs - the retry's delays (default: the connection's policy; `[]`: none) */
  private unary<Res>(
    method: AnyMethod,
    request: object,
    metadata: Metadata,
    delaysMs: readonly number[] = (this.options.retry ?? DEFAULT_RETRY).delaysMs,
  ): Promise<Res> {
    const sleep = (ms: number): Promise<void> =>
      new Promise((resolve) => {
        setTimeout(resolve, ms);
      });
    return withRetry(
      () => this.unaryOnce<Res>(method, request, metadata),
      delaysMs,
      sleep,
      this.options.signal,
    );
  }

  private unaryOnce<Res>(method: AnyMethod, request: object, metadata: Metadata): Promise<Res> {
    return new Promise<Res>((resolve, reject) => {
      const signal = this.options.signal;
      const call = this.client.makeUnaryRequest<object, object>(
        method.path,
        method.requestSerialize,
        method.responseDeserialize,
        request,
        metadata,
        { deadline: Date.now() + this.options.timeoutMs },
        (err, value) => {
          signal?.removeEventListener('abort', cancel);
          if (err !== null) reject(err);
          else resolve(value as Res);
        },
      );
      function cancel(): void {
        call.cancel();
      }
      if (signal?.aborted === true) call.cancel();
      else signal?.addEventListener('abort', cancel, { once: true });
    });
  }

  private stream<T>(method: AnyMethod, request: object): EventStream<T> {
    const call = this.client.makeServerStreamRequest<object, object>(
      method.path,
      method.requestSerialize,
      method.responseDeserialize,
      request,
      this.metadata(),
    );
    const connected = new Promise<void>((resolve) => {
      this.client.waitForReady(Date.now() + this.options.timeoutMs, (err) => {
        if (err === undefined) resolve();
      });
    });
    return {
      connected,
      cancel: () => {
        call.cancel();
      },
      [Symbol.asyncIterator]: () => iterate<T>(call),
    };
  }
}
