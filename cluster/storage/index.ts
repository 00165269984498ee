/** Storage: PostgreSQL pools, transactions, migrations and the C2 store. */
export {
  ensureSchema,
  loadMigrations,
  migrate,
  MIGRATIONS_DIR,
  type Migration,
} from './migrate.ts';
export {
  createPool,
  PG_KEEPALIVE,
  QUERY_READ_GRACE_MS,
  redactUrl,
  translatingFailures,
  withTransaction,
  type PoolOptions,
  type Queryable,
} from './pool.ts';
export { databaseUnavailable, isQueryReadTimeout } from './pg-failures.ts';
export { PgC2Store, type C2Repositories, type C2Store } from './pg-store.ts';
export type { ClientRepository, NewClient, NewClientKey, SyncStatus } from './pg-clients.ts';
export type { NewTopicKey, TopicRepository } from './pg-topics.ts';
export type { MembershipRepository } from './pg-memberships.ts';
export type { PeerRepository } from './pg-peers.ts';
export type { JournalRepository } from './pg-journal.ts';
export type {
  DeviceKeyUse,
  DeviceKeyUseRow,
  ObservedKeyUse,
  TrafficCount,
  TrafficRepository,
} from './pg-traffic.ts';
export { EVENT_CHANNEL } from './pg-journal.ts';
export type * from './store-types.ts';
export { PgDataKeyStore } from './pg-data-keys.ts';
export {
  PgDelivery,
  RESTORE_PENDING_SETTING,
  type CommandConfirmation,
  type DeliveryRepository,
  type DeviceBatchRow,
  type SealedVersion,
  type TopicDelivery,
} from './pg-delivery.ts';
export {
  PgAutomation,
  PgAutomationStore,
  type AutomationAction,
  type AutomationControl,
  type AutomationRuleRow,
  type CountableEvent,
  type CountedEvent,
  type FiringRow,
  type FiringSnapshot,
  type FiringStatus,
  type LeaderRecord,
  type NewFiring,
  type RolloutPolicy,
  type RuleDraft,
  type TargetSpec,
  type TriggerSpec,
  type TriggerStateRow,
} from './pg-automation.ts';
