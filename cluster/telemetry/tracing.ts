/**
 * OpenTelemetry tracing of a process: the SDK and its exporter are chosen by configuration
 * (`exporter` none or otlp, traces URL, service name, sample ratio), and the tracer is handed to
 * the components that create spans (never fetched from a global by them).
 *
 * One rotation is one trace: the API call, its transaction, the outbox relay round, the queue job
 * and every MQTT publish. The trace context crosses the queue as a W3C `traceparent` string in the
 * job data (ids and that string only, never a secret: DESIGN R8).
 */
import {
  context,
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  trace,
  TraceFlags,
  type Context,
  type Span,
  type SpanOptions,
  type Tracer,
} from '@opentelemetry/api';
import { OTLPTraceExporter as JsonTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { OTLPTraceExporter as ProtobufTraceExporter } from '@opentelemetry/exporter-trace-otlp-proto';
import { detectResources, envDetector, resourceFromAttributes } from '@opentelemetry/resources';
import {
  AlwaysOffSampler,
  BatchSpanProcessor,
  NodeTracerProvider,
  ParentBasedSampler,
  TraceIdRatioBasedSampler,
  type SpanProcessor,
} from '@opentelemetry/sdk-trace-node';

/** Instrumentation scope name of every span we create. */
export const TRACER_NAME = 'e4c2';

/** Options of {@link startTracing}. */
export interface TracingOptions {
  /** `none`: spans are not recorded (unless `spanProcessors` are given, as tests do). */
  readonly exporter: 'none' | 'otlp';
  /** The OTLP/HTTP URL spans are POSTed to, whole (`http://jaeger:4318/v1/traces`). */
  readonly tracesUrl?: string;
  /** The body encoding of the OTLP/HTTP requests. Default `http/json`. */
  readonly protocol?: 'http/json' | 'http/protobuf';
  /**
   * `service.name`; when undefined, the one `OTEL_RESOURCE_ATTRIBUTES` names, else
   * {@link defaultServiceName} of the role.
   */
  readonly serviceName?: string | undefined;
  /** Share of new traces recorded, 0..1; a trace started elsewhere follows its parent's choice. */
  readonly sampleRatio: number;
  readonly nodeId: string;
  readonly role: string;
  readonly version: string;
  /** Extra processors (tests: an in-memory exporter). */
  readonly spanProcessors?: readonly SpanProcessor[];
}

/**
 * The `service.name` of a node nobody named: `e4c2` for a single node (role `all`), `e4c2-api` and
 * `e4c2-worker` for the processes of a cluster (their traces differ in shape, and a collector's
 * per-service views should not mix them). Nodes are told apart by `service.instance.id`.
 */
export function defaultServiceName(role: string): string {
  return role === 'all' ? 'e4c2' : `e4c2-${role}`;
}

/** A process's tracing: the tracer to inject, and its shutdown (flushes pending spans). */
export interface Tracing {
  readonly tracer: Tracer;
  shutdown(): Promise<void>;
}

/**
 * Builds the tracer provider and registers the async-context manager and W3C propagator, so
 * spans started inside an awaited call chain find their parent.
 */
export function startTracing(options: TracingOptions): Tracing {
  const processors: SpanProcessor[] = [...(options.spanProcessors ?? [])];
  if (options.exporter === 'otlp') {
    const url = options.tracesUrl ?? 'http://localhost:4318/v1/traces';
    const exporter =
      options.protocol === 'http/protobuf'
        ? new ProtobufTraceExporter({ url })
        : new JsonTraceExporter({ url });
    processors.push(new BatchSpanProcessor(exporter));
  }
  const recording = processors.length > 0;
  // OTEL_RESOURCE_ATTRIBUTES (the standard variable: a site, a region, a cluster name) first;
  // what the node knows of itself wins over it (programmatic attributes win, as the
  // specification says), except the service name: one given there is the operator's choice, and
  // only OTEL_SERVICE_NAME (options.serviceName) comes before it.
  const fromEnvironment = detectResources({ detectors: [envDetector] });
  const namedThere = fromEnvironment.attributes['service.name'];
  const serviceName =
    options.serviceName ??
    (typeof namedThere === 'string' ? namedThere : defaultServiceName(options.role));
  const provider = new NodeTracerProvider({
    resource: fromEnvironment.merge(
      resourceFromAttributes({
        'service.name': serviceName,
        'service.instance.id': options.nodeId,
        'service.version': options.version,
        'e4c2.role': options.role,
      }),
    ),
    sampler: recording
      ? new ParentBasedSampler({ root: new TraceIdRatioBasedSampler(options.sampleRatio) })
      : new AlwaysOffSampler(),
    spanProcessors: processors,
  });
  // Global context manager and propagator, only when spans are recorded: without them, spans
  // are non-recording and contexts are not tracked (no cost on the hot paths). A second provider
  // in one process (tests) keeps the first registration, which is equivalent: our components
  // use the tracer given to them.
  if (recording) provider.register();
  return {
    tracer: provider.getTracer(TRACER_NAME, options.version),
    shutdown: () => provider.shutdown().catch(() => undefined),
  };
}

/** A tracer that records nothing (components built without tracing). */
export const noopTracer: Tracer = trace.getTracer('e4c2-noop');

/** A safe description of an error for a span status: its stable code or class, no message. */
function errorLabel(err: unknown): string {
  if (typeof err === 'object' && err !== null) {
    const code = (err as { code?: unknown }).code;
    if (typeof code === 'string' || typeof code === 'number') return String(code);
    if (err instanceof Error) return err.name;
  }
  return 'error';
}

/** Marks a span failed with the error's code only (messages could name devices or topics). */
export function failSpan(span: Span, err: unknown): void {
  span.setStatus({ code: SpanStatusCode.ERROR, message: errorLabel(err) });
  span.setAttribute('error.type', errorLabel(err));
}

/** Runs `work` in an active span that ends with it (failed when it throws). */
export function inSpan<T>(
  tracer: Tracer,
  name: string,
  options: SpanOptions,
  work: (span: Span) => Promise<T>,
  parent: Context = context.active(),
): Promise<T> {
  return tracer.startActiveSpan(name, options, parent, async (span) => {
    try {
      return await work(span);
    } catch (err) {
      failSpan(span, err);
      throw err;
    } finally {
      span.end();
    }
  });
}

const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;

/** The W3C `traceparent` of the active span, or undefined when there is no valid one. */
export function currentTraceparent(ctx: Context = context.active()): string | undefined {
  const sc = trace.getSpanContext(ctx);
  if (sc === undefined || !trace.isSpanContextValid(sc)) return undefined;
  const flags = (sc.traceFlags & 0xff).toString(16).padStart(2, '0');
  return `00-${sc.traceId}-${sc.spanId}-${flags}`;
}

/** The context whose remote parent a `traceparent` names (root context when malformed). */
export function contextFromTraceparent(traceparent: string | undefined): Context {
  const m = traceparent === undefined ? null : TRACEPARENT.exec(traceparent);
  if (m === null) return ROOT_CONTEXT;
  const [, traceId = '', spanId = '', flags = '00'] = m;
  return trace.setSpanContext(ROOT_CONTEXT, {
    traceId,
    spanId,
    traceFlags: parseInt(flags, 16) & TraceFlags.SAMPLED,
    isRemote: true,
  });
}

/** The trace and span id of the active span, for log lines. */
export function logTraceFields(): { trace_id?: string; span_id?: string } {
  const sc = trace.getSpanContext(context.active());
  if (sc === undefined || !trace.isSpanContextValid(sc)) return {};
  return { trace_id: sc.traceId, span_id: sc.spanId };
}

export { SpanKind };
