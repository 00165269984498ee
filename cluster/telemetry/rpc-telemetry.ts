/**
 * Instrumentation of API calls, shared by the gRPC and HTTP servers: one server span per call
 * (the root of a rotation's trace), the request counter and latency histogram, and the rotation
 * counter. Method labels are RPC names or route templates, a fixed set: never a path with a
 * device or topic name in it.
 */
import { SpanKind, SpanStatusCode, type Span, type Tracer } from '@opentelemetry/api';
import type { C2Metrics, CallOutcome, RotationKind, RpcTransport } from './metrics.ts';
import { inSpan, noopTracer } from './tracing.ts';

/** RPCs that rotate a key, by the kind of key (the name after the service's `/`). */
const ROTATIONS: Readonly<Record<string, RotationKind>> = {
  RotateTopicKey: 'topic',
  RotateClientKey: 'client',
  NewClientKey: 'client',
  NewC2Key: 'c2',
};

/** gRPC status names by number (the label values of gRPC calls). */
const GRPC_STATUS = [
  'OK',
  'CANCELLED',
  'UNKNOWN',
  'INVALID_ARGUMENT',
  'DEADLINE_EXCEEDED',
  'NOT_FOUND',
  'ALREADY_EXISTS',
  'PERMISSION_DENIED',
  'RESOURCE_EXHAUSTED',
  'FAILED_PRECONDITION',
  'ABORTED',
  'OUT_OF_RANGE',
  'UNIMPLEMENTED',
  'INTERNAL',
  'UNAVAILABLE',
  'DATA_LOSS',
  'UNAUTHENTICATED',
] as const;

/** The label of a gRPC status code. */
export function grpcStatusName(code: number): string {
  return GRPC_STATUS[code] ?? 'UNKNOWN';
}

/** The code of a gRPC status name (or code); UNKNOWN's for a name that is none. */
function grpcStatusCode(status: string | number): number {
  if (typeof status === 'number') return status;
  const code = (GRPC_STATUS as readonly string[]).indexOf(status);
  return code < 0 ? 2 : code;
}

/**
 * gRPC statuses that make a server span failed, as the OpenTelemetry RPC conventions define them:
 * the server's fault or its dependencies', not a refused request (NOT_FOUND, INVALID_ARGUMENT...).
 */
const GRPC_SERVER_ERRORS: ReadonlySet<string> = new Set([
  'UNKNOWN',
  'DEADLINE_EXCEEDED',
  'UNIMPLEMENTED',
  'INTERNAL',
  'UNAVAILABLE',
  'DATA_LOSS',
]);

/**
 * Whether a call's status makes its server span failed (HTTP: a 5xx, as the conventions say). A
 * probe (its label is its path, `/readyz`) answering 503 reports the node not ready, correctly:
 * not an error, or a load balancer's probes would fill the error traces of every outage.
 */
function isServerError(transport: RpcTransport, method: string, status: string): boolean {
  if (transport === 'http') return Number(status) >= 500 && !method.startsWith('/');
  return GRPC_SERVER_ERRORS.has(status);
}

/** Reduces a transport status to the outcome of a rotation. */
export function callOutcome(transport: RpcTransport, status: string): CallOutcome {
  if (transport === 'http') {
    const n = Number(status);
    if (n < 400) return 'ok';
    if (n === 409) return 'conflict';
    if (n === 503) return 'unavailable';
    return n < 500 ? 'rejected' : 'error';
  }
  switch (status) {
    case 'OK':
      return 'ok';
    case 'ABORTED':
    case 'ALREADY_EXISTS':
    case 'FAILED_PRECONDITION':
      return 'conflict';
    case 'UNAVAILABLE':
    case 'DEADLINE_EXCEEDED':
      return 'unavailable';
    case 'INTERNAL':
    case 'UNKNOWN':
    case 'DATA_LOSS':
      return 'error';
    default:
      return 'rejected';
  }
}

/** What a served call reports when it ends: its method label and status. */
export interface CallSummary {
  readonly method: string;
  /** gRPC status name or HTTP status code. */
  readonly status: string | number;
}

/** The instrumentation the API servers receive (a no-op one when metrics are off). */
export class RpcTelemetry {
  constructor(
    private readonly metrics: C2Metrics | undefined,
    private readonly tracer: Tracer = noopTracer,
  ) {}

  /** Declares a method the server answers (its request counters start at 0, not at its first call). */
  serves(transport: RpcTransport, method: string): void {
    this.metrics?.rpcMethod(transport, method);
  }

  /**
   * Runs one call inside a server span; `serve` resolves with the call's summary, which names
   * the span and labels the metrics. Never rejects on behalf of the call: transports answer
   * their own errors.
   */
  async serve(
    transport: RpcTransport,
    spanName: string,
    serve: (span: Span) => Promise<CallSummary>,
  ): Promise<void> {
    const started = performance.now();
    const summary = await inSpan(
      this.tracer,
      spanName,
      { kind: SpanKind.SERVER, attributes: { 'rpc.system': transport } },
      async (span) => {
        const s = await serve(span);
        span.setAttribute('rpc.method', s.method);
        // Integers, as the OpenTelemetry conventions define both (a collector's filter on
        // rpc.grpc.status_code = 0 must match); the metrics keep the gRPC name as their label.
        if (transport === 'grpc')
          span.setAttribute('rpc.grpc.status_code', grpcStatusCode(s.status));
        else span.setAttribute('http.response.status_code', Number(s.status));
        if (transport === 'http') span.updateName(`HTTP ${s.method}`);
        // The call's failure is an answer, not a throw: without this the span stays unset, and
        // the collector's tail sampling ("every error trace") drops most failed calls.
        const status = String(s.status);
        if (isServerError(transport, s.method, status)) {
          span.setStatus({ code: SpanStatusCode.ERROR, message: status });
          span.setAttribute('error.type', status);
        }
        return s;
      },
    ).catch((): CallSummary => ({
      method: 'unknown',
      status: transport === 'grpc' ? 'UNKNOWN' : 500,
    }));
    const status = String(summary.status);
    this.metrics?.rpc(transport, summary.method, status, (performance.now() - started) / 1000);
    const kind = ROTATIONS[summary.method.slice(summary.method.lastIndexOf('/') + 1)];
    if (kind !== undefined) this.metrics?.rotation(kind, callOutcome(transport, status));
  }
}
