/** The BullMQ device queue of a cluster and the outbox relay that feeds it. */
export {
  DEVICE_QUEUE,
  DeviceQueue,
  jobIdFor,
  MAX_IDS_PER_JOB,
  SYNC_JOB,
  type SyncJobData,
} from './device-queue.ts';
export { OutboxRelay, type OutboxRelayOptions } from './outbox-relay.ts';
