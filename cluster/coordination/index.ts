/**
 * Coordination between C2 processes: the per-resource lock of DESIGN R2 (an efficiency lock; the
 * Postgres version compare-and-set of R1 is the fence), over Redlock in cluster mode and an
 * in-process mutex in single-node mode, behind one {@link LockService} port.
 */
export { InProcessLockService } from './in-process-lock-service.ts';
export {
  LOCK_KEY_PREFIX,
  MAX_RESOURCE_LENGTH,
  MAX_TTL_MS,
  MIN_TTL_MS,
  monotonicClock,
  type Lease,
  type LeaseLossReason,
  type LockEvent,
  type LockEventListener,
  type LockService,
  type LockServiceOptions,
  type MonotonicClock,
} from './lock-service.ts';
export type { RedlockClient } from './redlock-scripts.ts';
export { lockKey, RedlockService, type RedlockOptions } from './redlock-service.ts';
export {
  DEFAULT_LEADER_TTL_MS,
  failoverBoundMs,
  InProcessLeaderLease,
  LeaderElection,
  RedisLeaderLease,
  type EpochStore,
  type LeaderElectionOptions,
  type LeaderLease,
  type Leadership,
} from './leader-election.ts';
export {
  REDIS_WATCHDOG_DEFAULTS,
  RedisWatchdog,
  type RedisWatchdogOptions,
  type WatchedRedis,
} from './redis-watchdog.ts';
