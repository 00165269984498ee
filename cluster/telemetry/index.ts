/** Telemetry set-up shared by every process: logs, metrics, traces, the operations listener. */
export { createLogger, REDACTED_PATHS, type LoggerOptions } from './logger.ts';
export { HealthServer, type HealthServerOptions, type ReadinessResult } from './health-server.ts';
export { recordLockEvent } from './lock-metrics.ts';
export {
  READINESS_CHECK_TIMEOUT_MS,
  requiredChecksPass,
  runReadinessChecks,
  type ReadinessCheck,
} from './readiness-checks.ts';
export {
  attemptLabel,
  AUTOMATION_FIRING_OUTCOMES,
  C2Metrics,
  CALL_OUTCOMES,
  DEVICE_STATES,
  QUEUE_STATES,
  RECEIPT_OUTCOMES,
  ROTATION_KINDS,
  RPC_PREINITIALISED_STATUSES,
  type AttemptOutcome,
  type AutomationFiringOutcome,
  type C2MetricsOptions,
  type CallOutcome,
  type MonitorDropReason,
  type MonitoredClass,
  type PipelineStats,
  type ReceiptOutcome,
  type RotationKind,
  type RpcTransport,
} from './metrics.ts';
export { readPipelineStats } from './pipeline-stats.ts';
export { callOutcome, grpcStatusName, RpcTelemetry, type CallSummary } from './rpc-telemetry.ts';
export { tracedDelivery } from './traced-delivery.ts';
export { tracedLocks } from './traced-locks.ts';
export { tracedStore } from './traced-store.ts';
export {
  contextFromTraceparent,
  currentTraceparent,
  defaultServiceName,
  failSpan,
  inSpan,
  logTraceFields,
  noopTracer,
  startTracing,
  TRACER_NAME,
  type Tracing,
  type TracingOptions,
} from './tracing.ts';
