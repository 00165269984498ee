/**
 * Building blocks of a node, shared by every role: the database (embedded or external), the key
 * vault, the broker connection, Redis connections and the delivery dependencies. Each part
 * registers its own shutdown with the lifecycle.
 */
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import type { Tracer } from '@opentelemetry/api';
import type { SpanProcessor } from '@opentelemetry/sdk-trace-node';
import { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type pg from 'pg';
import type { Config } from '../cluster/config/index.ts';
import {
  RedlockService,
  InProcessLockService,
  RedisWatchdog,
  type LockService,
} from '../cluster/coordination/index.ts';
import {
  InstrumentedPublisher,
  MqttCommandPublisher,
  publisherKeepaliveSeconds,
  recordAttempt,
  type BatchSyncDeps,
} from '../cluster/delivery/index.ts';
import { startEmbeddedBroker, startEmbeddedPostgres } from '../cluster/embedded/index.ts';
import { C2Error } from '../cluster/errors.ts';
import { connectListener, type ListenConnection } from '../cluster/events/index.ts';
import type { KeyVault } from '../cluster/keyvault/index.ts';
import type { Lifecycle } from '../cluster/lifecycle.ts';
import {
  createPool,
  ensureSchema,
  migrate,
  PgC2Store,
  PgDataKeyStore,
  PgDelivery,
} from '../cluster/storage/index.ts';
import {
  C2Metrics,
  readPipelineStats,
  recordLockEvent,
  startTracing,
  tracedDelivery,
  tracedStore,
  type ReadinessCheck,
} from '../cluster/telemetry/index.ts';
import { buildVersion } from './build-version.ts';
import { openNodeKeyVault } from './node-key-vault.ts';
import { RedlockInstances } from './redlock-instances.ts';

/** Metrics and tracer of a node, injected into every instrumented component. */
export interface NodeTelemetry {
  readonly metrics: C2Metrics;
  readonly tracer: Tracer;
}

/** What a composition root may add to a node's telemetry (tests: an in-memory span exporter). */
export interface NodeTelemetryOptions {
  readonly spanProcessors?: readonly SpanProcessor[];
}

/**
 * Creates the node's metrics registry and tracer (exporter from `config.telemetry`); the tracer
 * provider is flushed and shut down last, after every component that makes spans stopped.
 */
export function nodeTelemetry(
  config: Config,
  lifecycle: Lifecycle,
  options: NodeTelemetryOptions = {},
): NodeTelemetry {
  const version = buildVersion(fileURLToPath(new URL('..', import.meta.url)));
  const tracing = startTracing({
    exporter: config.telemetry.tracesExporter,
    tracesUrl: config.telemetry.otlpTracesUrl,
    protocol: config.telemetry.otlpProtocol,
    serviceName: config.telemetry.serviceName,
    sampleRatio: config.telemetry.traceSampleRatio,
    nodeId: config.node.id,
    role: config.node.role,
    version,
    ...(options.spanProcessors === undefined ? {} : { spanProcessors: options.spanProcessors }),
  });
  lifecycle.add('tracing', () => tracing.shutdown());
  const metrics = new C2Metrics({ node: config.node.id, role: config.node.role, version });
  return { metrics, tracer: tracing.tracer };
}

/** Scrape-time figures of the database: pipeline (cluster-wide) and this process's pool. */
export function watchDatabase(db: NodeDatabase, config: Config, metrics: C2Metrics): void {
  // The pool is read first, before the pipeline query below is issued: a scrape starts its
  // readers together, and pg-pool queues even a query it can serve at once for a tick, so
  // read afterwards the pool showed the scrape's own query as a request waiting for a
  // connection (C2DatabasePoolSaturated then fired on every idle node).
  metrics.onScrape('pool', () => {
    metrics.setPool({
      total: db.pool.totalCount,
      idle: db.pool.idleCount,
      waiting: db.pool.waitingCount,
      max: config.database.poolMax,
    });
    return Promise.resolve();
  });
  metrics.onScrape('database', async () => {
    metrics.setPipelineStats(await readPipelineStats(db.pool));
  });
}

/**
 * After a restore (`ops/backup/restore.sh` marks the database), nothing is delivered until the
 * reconciliation: said at start, and by `c2_restore_pending` on every scrape (an alert's input).
 */
export async function watchRestore(
  db: NodeDatabase,
  metrics: C2Metrics,
  logger: Logger,
): Promise<void> {
  const delivery = new PgDelivery(db.pool);
  if (await delivery.restorePending()) {
    logger.warn(
      'the database was restored from a backup and is not reconciled: nothing is delivered until `e4c2 restore-reconcile --archive <event archive>` (docs/operations.md, Restore)',
    );
  }
  metrics.onScrape('restore', async () => {
    metrics.setRestorePending(await delivery.restorePending());
  });
}

/** The database of a node. */
export interface NodeDatabase {
  readonly pool: pg.Pool;
  readonly store: PgC2Store;
  readonly vault: KeyVault;
  readonly display: string;
  /** Opens a dedicated connection for LISTEN (the event stream's wake-ups). */
  readonly listenConnection: () => Promise<ListenConnection>;
}

/** A connection pool to the node's database, and what to show of it. */
export interface DatabaseConnection {
  readonly pool: pg.Pool;
  /** The URL to connect with (secret: never logged). */
  readonly url: string;
  /** What may be shown of the URL. */
  readonly display: string;
}

/**
 * Connects to the configured database, starting the embedded PostgreSQL first when configured
 * (its data directory must not be in use by another process).
 */
export async function connectDatabase(
  config: Config,
  logger: Logger,
  lifecycle: Lifecycle,
  notes: string[],
): Promise<DatabaseConnection> {
  let url: string;
  let display: string;
  if (config.database.kind === 'embedded') {
    const pgServer = await startEmbeddedPostgres({
      dataDir: config.dataDir,
      port: config.database.port,
      log: logger,
    });
    lifecycle.add('embedded postgres', () => pgServer.stop());
    url = pgServer.url;
    display = pgServer.displayUrl;
    if (pgServer.fallbackFrom !== undefined)
      notes.push(`PostgreSQL port ${pgServer.fallbackFrom} was taken; using ${pgServer.port}`);
  } else {
    url = config.database.url.reveal();
    display = '(DATABASE_URL)';
  }
  const pool = await createPool({
    url,
    max: config.database.poolMax,
    schema: config.database.schema,
    idleInTransactionTimeoutMs: config.database.idleInTransactionTimeoutMs,
    queryTimeoutMs: config.database.queryTimeoutMs,
    applicationName: nodeApplicationName(config),
  });
  lifecycle.add('postgres pool', () => pool.end());
  return { pool, url, display };
}

/**
 * How every PostgreSQL connection of the node names itself (`pg_stat_activity`): the pool and
 * the event listener alike, so that an operator (and `ops/backup/restore.sh`) sees which nodes
 * are connected.
 */
function nodeApplicationName(config: Config): string {
  return `e4c2-${config.node.id}`;
}

/**
 * Connects (starting the embedded PostgreSQL when configured), migrates, pins the crypto mode
 * and opens the key vault.
 * @throws C2Error `C2_CONFIG` when the database belongs to a deployment of the other mode
 */
export async function openDatabase(
  config: Config,
  logger: Logger,
  lifecycle: Lifecycle,
  notes: string[],
): Promise<NodeDatabase> {
  const { pool, url, display } = await connectDatabase(config, logger, lifecycle, notes);
  if (await ensureSchema(pool, config.database.schema)) {
    logger.info({ schema: config.database.schema }, 'database schema created');
  }
  const applied = await migrate(pool);
  if (applied.length > 0) logger.info({ applied }, 'database migrated');
  const store = new PgC2Store(pool);
  const pinned = await store.transaction((tx) =>
    tx.journal.initSetting('crypto_mode', config.crypto.mode),
  );
  if (pinned !== config.crypto.mode) {
    throw new C2Error(
      'C2_CONFIG',
      `this database belongs to a ${pinned} deployment; E4C2_CRYPTO_MODE=${config.crypto.mode} cannot use it (switching modes would strand every device)`,
    );
  }
  const vault = await openNodeKeyVault(
    config.kek,
    store,
    new PgDataKeyStore(pool),
    lifecycle,
    logger,
  );
  const listenConnection = (): Promise<ListenConnection> =>
    connectListener({
      url,
      schema: config.database.schema,
      applicationName: nodeApplicationName(config),
    });
  return { pool, store, vault, display, listenConnection };
}

/** Starts the embedded broker when configured; returns the broker URL. */
export async function brokerUrl(
  config: Config,
  logger: Logger,
  lifecycle: Lifecycle,
  notes: string[],
): Promise<string> {
  if (config.mqtt.kind === 'external') return config.mqtt.url;
  const broker = await startEmbeddedBroker({
    host: config.mqtt.listen.host,
    port: config.mqtt.listen.port,
    onPortTaken: config.mqtt.listenExplicit ? 'fail' : 'fallback',
    log: logger,
  });
  lifecycle.add('embedded broker', () => broker.close());
  if (broker.fallbackFrom !== undefined)
    notes.push(`MQTT port ${broker.fallbackFrom} was taken; using ${broker.port}`);
  return broker.url;
}

/**
 * Connects the command publisher (a unique client id per process).
 * @param onReconnect - told when it connects again after losing the broker
 */
export async function connectPublisher(
  config: Config,
  url: string,
  lifecycle: Lifecycle,
  log: Logger,
  metrics: C2Metrics,
  onReconnect?: () => void,
): Promise<MqttCommandPublisher> {
  const publisher = await MqttCommandPublisher.connect({
    url,
    clientId: `${config.mqtt.clientIdPrefix}-${config.node.id}-${randomBytes(3).toString('hex')}`,
    pubackTimeoutMs: config.delivery.pubackTimeoutMs,
    keepaliveSeconds: publisherKeepaliveSeconds(config.delivery.claimTtlMs),
    onStalledReset: () => {
      metrics.mqttConnectionReset();
      log.warn(
        { pubackTimeoutMs: config.delivery.pubackTimeoutMs },
        'MQTT publisher connection reset: a PUBACK timed out and nothing sent after it was acknowledged (a cut link?); its unsent commands were dropped and are sent again from the desired state',
      );
    },
    ...(onReconnect === undefined ? {} : { onReconnect }),
    ...(config.mqtt.username === undefined ? {} : { username: config.mqtt.username }),
    ...(config.mqtt.password === undefined ? {} : { password: config.mqtt.password.reveal() }),
  });
  lifecycle.add('mqtt publisher', () => publisher.close());
  return publisher;
}

/** How {@link connectRedis} opens one connection. */
export interface RedisConnectionOptions {
  /** Names the connection in errors and logs (`queue`, `redlock-1`, `automation`). */
  readonly name: string;
  /**
   * A BullMQ worker's connection: its commands retry forever, and it is not watched (BullMQ
   * watches the blocking duplicate it makes of it).
   */
  readonly blocking: boolean;
  /** Ping interval and allowance of a non-blocking connection's watchdog (`E4C2_REDIS_SILENCE_MS`). */
  readonly silenceMs: number;
  readonly logger: Logger;
  /**
   * An instance that does not answer at start: `throw` (default), or `keep-trying`: the client
   * is returned and keeps reconnecting in the background (a Redlock instance, of which a
   * quorum suffices).
   */
  readonly whenUnreachable?: 'throw' | 'keep-trying';
  /**
   * Fail commands at once while the connection is down (ioredis `enableOfflineQueue: false`)
   * instead of queueing them until it is back or ioredis gives them up. For a Redlock instance:
   * a vote that waits is worth nothing (the lock service stops waiting after its command
   * timeout), and a queued lock command would run long after its attempt ended. The connection
   * still reconnects by itself. Default false.
   */
  readonly failWhileDown?: boolean;
}

/**
 * Opens a Redis connection and checks it answers. A non-blocking connection is watched by a
 * {@link RedisWatchdog}, which makes it reconnect when it goes silent (a failover behind the
 * same address, a partition).
 * @throws C2Error `C2_UNAVAILABLE` ("cannot reach Redis at host:port")
 */
export async function connectRedis(
  url: string,
  lifecycle: Lifecycle,
  options: RedisConnectionOptions,
): Promise<Redis> {
  const { name, blocking, silenceMs, logger } = options;
  const parsed = new URL(url);
  const redis = new Redis(url, {
    // BullMQ workers block on Redis: they must retry forever; producers and locks fail fast.
    maxRetriesPerRequest: blocking ? null : 1,
    lazyConnect: true,
    connectTimeout: 5000,
    // connect() resolves on `ready`, so the ping below is never refused for want of a queue.
    enableOfflineQueue: options.failWhileDown !== true,
  });
  redis.on('error', () => undefined); // surfaced through failed commands and readiness
  try {
    await redis.connect();
    await redis.ping();
  } catch (cause) {
    if (options.whenUnreachable !== 'keep-trying') {
      redis.disconnect();
      throw new C2Error('C2_UNAVAILABLE', `cannot reach Redis at ${parsed.host} (${name})`, {
        cause,
      });
    }
    // ioredis goes on reconnecting after a failed first connect.
    logger.warn(
      { redis: name, host: parsed.host },
      'Redis does not answer at start; reconnecting in the background',
    );
  }
  lifecycle.add(`redis ${name}`, async () => {
    // QUIT needs a connection; one still reconnecting (an instance down) is just stopped.
    if (redis.status === 'ready') await redis.quit().catch(() => undefined);
    else redis.disconnect();
  });
  if (!blocking) {
    const watchdog = RedisWatchdog.start(redis, {
      intervalMs: silenceMs,
      timeoutMs: silenceMs,
      onReset: () => {
        logger.warn(
          { redis: name, host: parsed.host, silenceMs },
          'Redis connection silent; reconnecting',
        );
      },
    });
    // Added after the connection, so it stops before the connection closes.
    lifecycle.add(`redis ${name} watchdog`, () => {
      watchdog.stop();
    });
  }
  return redis;
}

/**
 * The producer connection of the device queue (`queue-producer` on a worker, `queue` on an API
 * node): it fails its commands at once while Redis is down. Its adds run inside the outbox
 * relay's transaction (API node), which would otherwise hold its claimed rows and a pool
 * connection while ioredis queues the add, and in a worker's sweeps, hand-backs and receipt
 * retries, which would otherwise pile up until Redis returns (a worker's commands never give up):
 * each caller has a way to retry later from PostgreSQL (the rows come back to the relay, the sweep
 * finds every device that lags), so an add that fails loses nothing.
 */
export function connectQueueProducer(
  redis: Extract<Config['redis'], { kind: 'external' }>,
  name: 'queue' | 'queue-producer',
  lifecycle: Lifecycle,
  logger: Logger,
): Promise<Redis> {
  return connectRedis(redis.url.reveal(), lifecycle, {
    name,
    blocking: false,
    silenceMs: redis.silenceMs,
    logger,
    failWhileDown: true,
  });
}

/** A node's lock service, and what `/readyz` reports about it. */
export interface NodeLocks {
  readonly locks: LockService;
  /** The `redlock` entry of `/readyz` (Redlock only; informational). */
  readonly readiness?: ReadinessCheck;
}

/**
 * One connection per Redlock instance (`redlock-1`...), each failing its commands at once while
 * its instance is down. A node starts whatever answers, as it runs: instances down (a site lost,
 * a rolling restart) must not keep every node that restarts meanwhile down too, so one that does
 * not answer is returned still reconnecting.
 */
export function connectRedlockClients(
  redis: Extract<Config['redis'], { kind: 'external' }>,
  lifecycle: Lifecycle,
  logger: Logger,
): Promise<Redis[]> {
  return Promise.all(
    redis.redlockUrls.map((url, i) =>
      connectRedis(url.reveal(), lifecycle, {
        name: `redlock-${i + 1}`,
        blocking: false,
        silenceMs: redis.silenceMs,
        logger,
        whenUnreachable: 'keep-trying',
        failWhileDown: true,
      }),
    ),
  );
}

/** The lock service of rotations: Redlock over the configured instances, or in-process. */
export async function lockService(
  config: Config,
  lifecycle: Lifecycle,
  logger: Logger,
  metrics?: C2Metrics,
): Promise<NodeLocks> {
  if (config.redis.kind === 'in-process')
    return {
      locks: new InProcessLockService(
        metrics === undefined
          ? {}
          : {
              onEvent: (event) => {
                recordLockEvent(metrics, event);
              },
            },
      ),
    };
  const { redlockUrls } = config.redis;
  const clients = await connectRedlockClients(config.redis, lifecycle, logger);
  const instances = new RedlockInstances(
    clients.map((connection, i) => ({
      name: `redlock-${i + 1}`,
      host: new URL(redlockUrls[i]?.reveal() ?? '').host,
      connection,
    })),
    logger,
  );
  // Registered after the connections, so it runs before they close at shutdown.
  lifecycle.add('redlock instance reports', () => {
    instances.stop();
  });
  const answering = instances.up();
  if (answering < instances.quorum) {
    // The node starts anyway, as a running node goes on when the quorum goes: only rotations
    // and creations need the lock. Refusing the start made every node restarted during a
    // Redlock outage (a rolling upgrade, a crash) down for reads and deliveries too.
    logger.error(
      {
        up: answering,
        total: clients.length,
        quorum: instances.quorum,
        redlockDown: instances.down(),
      },
      `only ${answering} of ${clients.length} Redlock instances answer at start (E4C2_REDLOCK_URLS, or REDIS_URL without it); rotations fail with UNAVAILABLE until ${instances.quorum} do`,
    );
  }
  metrics?.onScrape('redlock', () => {
    metrics.setLockInstances(instances.up(), instances.total, instances.quorum);
    return Promise.resolve();
  });
  const locks = new RedlockService({
    clients,
    onEvent: (event) => {
      if (metrics !== undefined) recordLockEvent(metrics, event);
      if (event.type === 'acquire-timeout') {
        // Which instances this node cannot reach: what an operator needs when rotations fail.
        logger.warn({ lock: event, redlockDown: instances.down() }, 'lock event');
      } else if (event.type === 'lost' || event.type === 'extend-failed') {
        logger.warn({ lock: event }, 'lock event');
      }
    },
  });
  return { locks, readiness: instances.readiness() };
}

/** What every delivery path needs. */
export function deliveryDeps(
  config: Config,
  db: NodeDatabase,
  publisher: MqttCommandPublisher,
  logger: Logger,
  telemetry?: NodeTelemetry,
): BatchSyncDeps {
  const metrics = telemetry?.metrics;
  return {
    store: telemetry === undefined ? db.store : tracedStore(db.store, telemetry.tracer),
    sealer: db.vault,
    mode: config.crypto.mode,
    publisher:
      telemetry === undefined
        ? publisher
        : new InstrumentedPublisher(publisher, telemetry.metrics, telemetry.tracer),
    clock: Date.now,
    sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
    policy: {
      maxAttempts: config.delivery.maxAttempts,
      initialBackoffMs: config.delivery.backoffInitialMs,
      maxBackoffMs: config.delivery.backoffMaxMs,
      deadlineMs: config.delivery.deadlineMs,
    },
    onAttempt: (a) => {
      if (metrics !== undefined) recordAttempt(metrics, a);
      if (a.outcome === 'failed')
        logger.warn(
          { clientId: a.clientId, command: a.kind, attempt: a.attempt, error: a.error },
          'delivery attempt failed',
        );
    },
    delivery:
      telemetry === undefined
        ? new PgDelivery(db.pool)
        : tracedDelivery(new PgDelivery(db.pool), telemetry.tracer),
    owner: `${config.node.id}-${randomBytes(4).toString('hex')}`,
    claimTtlMs: config.delivery.claimTtlMs,
    publishConcurrency: config.delivery.publishWindow,
  };
}
