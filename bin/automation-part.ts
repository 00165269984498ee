/**
 * The automation engine of a node (roles `all` and `worker`, unless `E4C2_AUTOMATION_ENABLED` is
 * false): a leader election on a Redis lease (in-process on a single node without Redis), fenced by
 * the Postgres epoch, and the engine that runs rules when this node leads. docs/automation.md.
 */
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { Config } from '../cluster/config/index.ts';
import {
  InProcessLeaderLease,
  LeaderElection,
  RedisLeaderLease,
  failoverBoundMs,
} from '../cluster/coordination/index.ts';
import type { C2Service } from '../cluster/domain/index.ts';
import type { Lifecycle } from '../cluster/lifecycle.ts';
import type { PgAutomationStore } from '../cluster/storage/index.ts';
import type { C2Metrics } from '../cluster/telemetry/index.ts';
import { AutomationEngine } from '../worker/automation/index.ts';
import { deploymentScope, leaseKeyOf } from './redis-scope.ts';
import { connectRedis } from './node-parts.ts';

/**
 * Redis key of the automation leader lease: one per database schema, so deployments (or test
 * clusters) that share a Redis but not a schema do not compete for one lease.
 */
export function automationLeaseKey(config: Config): string {
  return leaseKeyOf(deploymentScope(config));
}

/**
 * The connection of the automation leader lease. Unlike the Redlock and queue-producer
 * connections, it keeps ioredis's offline queue: a renewal sent while the connection is being
 * re-made (a watchdog reset, a Redis restart) waits the moment it takes and keeps the leader,
 * where failing it at once would depose the leader and make it claim a new epoch. The wait is
 * bounded by `maxRetriesPerRequest: 1` (ioredis gives up queued commands after two reconnect
 * attempts), and the election never acts on a stale answer: a leader stops leading when its
 * local validity window passes, whatever its renewal is waiting for.
 */
export function connectLeaseRedis(
  redis: Extract<Config['redis'], { kind: 'external' }>,
  lifecycle: Lifecycle,
  logger: Logger,
): Promise<Redis> {
  return connectRedis(redis.url.reveal(), lifecycle, {
    name: 'automation',
    blocking: false,
    silenceMs: redis.silenceMs,
    logger,
  });
}

/** Defaults when a hand-built config has no `automation` section. */
const DEFAULTS = { enabled: true, leaseTtlMs: 10_000, tickMs: 1_000 } as const;

/**
 * Starts the engine if this node should run it, and registers its shutdown (which steps down and
 * releases the lease, so another node takes over within a third of the lease TTL).
 * @returns a note for the start-up banner, or undefined when the engine does not run here
 */
export async function startAutomation(
  config: Config,
  store: PgAutomationStore,
  service: C2Service,
  lifecycle: Lifecycle,
  logger: Logger,
  metrics: C2Metrics | undefined,
): Promise<string | undefined> {
  const settings = config.automation ?? DEFAULTS;
  const role = config.node.role;
  if (!settings.enabled || (role !== 'all' && role !== 'worker')) return undefined;
  const log = logger.child({ component: 'automation' });
  let seenPause = false;
  const lease =
    config.redis.kind === 'external'
      ? new RedisLeaderLease(
          await connectLeaseRedis(config.redis, lifecycle, log),
          automationLeaseKey(config),
        )
      : new InProcessLeaderLease();
  const election = new LeaderElection({
    lease,
    epochs: store.read,
    nodeId: config.node.id,
    ttlMs: settings.leaseTtlMs,
    onChange: (leadership) => {
      log.info(
        { epoch: leadership?.epoch ?? null },
        leadership ? 'automation leader' : 'automation follower',
      );
    },
    onError: (err) => {
      log.warn({ err }, 'automation leader election');
    },
  });
  const engine = new AutomationEngine({
    store,
    c2: service,
    election,
    // The leader checks each firing against its own settings: the API node that accepted the
    // rule may have had E4C2_PK_SERVER_KEYGEN on, this one off.
    capabilities: { mode: config.crypto.mode, pkServerKeygen: config.crypto.serverKeygen },
    nodeId: config.node.id,
    tickMs: settings.tickMs,
    observer: {
      leader: (isLeader) => metrics?.setAutomationLeader(isLeader),
      paused: (paused) => {
        metrics?.setAutomationPaused(paused);
        // The first reading is the state at start, not a change.
        if (paused || seenPause)
          log.info({ paused }, paused ? 'automation paused' : 'automation resumed');
        seenPause = true;
      },
      firing: (outcome) => metrics?.automationFiring(outcome),
      // Every firing's end in the log; one that did not succeed as a warning, with its counts
      // and failed calls by code (`rules firings` shows the same).
      finished: (firing, outcome) => {
        const fields = {
          firing: firing.id,
          rule: firing.ruleId,
          dueAt: firing.dueAt.toISOString(),
          status: outcome.status,
          ...outcome.result,
        };
        if (outcome.status === 'succeeded') log.info(fields, 'automation firing finished');
        else log.warn(fields, `automation firing ended ${outcome.status}`);
      },
    },
    onError: (err, context) => {
      log.error({ err, context }, 'automation error');
    },
  });
  engine.start();
  lifecycle.add('automation engine', () => engine.stop());
  return `automation engine on (${config.redis.kind === 'external' ? 'Redis lease' : 'single node'}; failover within ${Math.ceil(failoverBoundMs(settings.leaseTtlMs, settings.tickMs) / 1000)} s)`;
}
