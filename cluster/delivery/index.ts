/** Delivery of commands to devices (DESIGN R4-R7), shared by every deployment mode. */
export { syncBatch, type BatchOutcome, type BatchSyncDeps } from './batch-sync.ts';
export { ClaimLease, ClaimsLapsedError } from './claim-lease.ts';
export { DeliveryEngine, type DeliveryEngineOptions } from './delivery-engine.ts';
export {
  syncDevice,
  type DeliveryAttempt,
  type DeviceSyncDeps,
  type SyncOutcome,
} from './device-sync.ts';
export { recordAttempt, recordSyncOutcomes } from './delivery-metrics.ts';
export { InstrumentedPublisher } from './instrumented-publisher.ts';
export { SendGate } from './send-gate.ts';
export {
  BrokerUnavailableError,
  isPubackTimeout,
  MqttCommandPublisher,
  PubackTimeoutError,
  PublisherClosedError,
  publisherKeepaliveSeconds,
  type MqttPublisherOptions,
} from './mqtt-publisher.ts';
export {
  planNextCommand,
  type PlanDeps,
  type PlannedCommand,
  type PlanResult,
} from './next-command.ts';
export { wasNotSent, type CommandPublisher } from './publisher.ts';
export { backoffDelay, mayRetry, type RetryPolicy } from './retry-policy.ts';
export {
  ReceiptReceiver,
  type ReceiptEvent,
  type ReceiptReceiverOptions,
} from './receipt-receiver.ts';
