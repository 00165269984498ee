/**
 * Assembles one C2 process from a validated configuration, by role (`E4C2_ROLE`):
 * - `all`: a single node — API, delivery engine (outbox relay, sweep, batches) in one process;
 * - `api`: API and the outbox relay to the BullMQ queue (cluster);
 * - `worker`: BullMQ delivery worker with the sweep (cluster).
 * Every part registers its shutdown with the lifecycle, so shutdown runs in reverse start order.
 * Composition roots (`bin/start.ts`, tests) call {@link startC2Node}.
 */
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import type { Logger } from 'pino';
import { ApiServer } from '../api/index.ts';
import type { Config } from '../cluster/config/index.ts';
import {
  ClaimsLapsedError,
  DeliveryEngine,
  ReceiptReceiver,
  recordSyncOutcomes,
  SendGate,
} from '../cluster/delivery/index.ts';
import { AutomationService, C2Service, type DomainDeps } from '../cluster/domain/index.ts';
import { ensureSelfSignedCert, prepareDataDir } from '../cluster/embedded/index.ts';
import { C2Error } from '../cluster/errors.ts';
import { PgEventNotifications } from '../cluster/events/index.ts';
import { Lifecycle } from '../cluster/lifecycle.ts';
import { DEVICE_QUEUE, DeviceQueue, OutboxRelay } from '../cluster/queue/index.ts';
import { PgAutomationStore, PgDelivery } from '../cluster/storage/index.ts';
import {
  HealthServer,
  RpcTelemetry,
  requiredChecksPass,
  runReadinessChecks,
  tracedLocks,
  tracedStore,
  type C2Metrics,
  type ReadinessCheck,
} from '../cluster/telemetry/index.ts';
import { DeliveryWorker } from '../worker/index.ts';
import { queuePrefix } from './redis-scope.ts';
import { apiAuthMaterial } from './api-auth.ts';
import { startAutomation } from './automation-part.ts';
import { startTrafficMonitor } from './monitoring-part.ts';
import { throttledErrorLog } from './throttled-log.ts';
import {
  brokerUrl,
  connectPublisher,
  connectQueueProducer,
  connectRedis,
  deliveryDeps,
  lockService,
  nodeTelemetry,
  openDatabase,
  watchDatabase,
  watchRestore,
  type NodeDatabase,
  type NodeTelemetry,
  type NodeTelemetryOptions,
} from './node-parts.ts';

/** The web console's files, served by every API node under `/console/`. */
const CONSOLE_DIR = fileURLToPath(new URL('../web/', import.meta.url));

/** Where a running node can be reached. */
export interface NodeAddresses {
  readonly role: Config['node']['role'];
  readonly grpc: string | undefined;
  readonly http: string | undefined;
  readonly health: string;
  readonly database: string;
  readonly mqtt: string | undefined;
  readonly tlsCertPath: string | undefined;
  readonly dataDir: string | undefined;
  readonly notes: readonly string[];
}

/** A running node. */
export interface C2Node {
  readonly addresses: NodeAddresses;
  readonly service: C2Service;
  readonly lifecycle: Lifecycle;
  /** The node's metrics and tracer (also served on `/metrics` of the health listener). */
  readonly telemetry: NodeTelemetry;
  /** Graceful stop of everything this node started. */
  stop(): Promise<boolean>;
}

function hostPort(address: { readonly host: string; readonly port: number }): string {
  return address.host.includes(':')
    ? `[${address.host}]:${address.port}`
    : `${address.host}:${address.port}`;
}

/**
 * The API's certificate and key: the operator's files, or a self-signed pair in the data dir.
 * @throws C2Error `C2_CONFIG` naming the setting of a file that cannot be read
 */
export async function tlsMaterial(
  config: Config,
): Promise<{ tls?: { cert: string; key: string }; certPath?: string }> {
  if (config.tls.kind === 'disabled') return {};
  const paths =
    config.tls.kind === 'self-signed'
      ? await ensureSelfSignedCert(config.tls.dir)
      : { certPath: config.tls.certPath, keyPath: config.tls.keyPath };
  const own = config.tls.kind === 'files';
  return {
    tls: {
      cert: await readTlsFile(
        paths.certPath,
        own ? 'E4C2_TLS_CERT' : 'the self-signed certificate',
      ),
      key: await readTlsFile(paths.keyPath, own ? 'E4C2_TLS_KEY' : 'the self-signed key'),
    },
    certPath: paths.certPath,
  };
}

/**
 * A TLS file, or `C2_CONFIG` naming the setting it came from (a missing E4C2_TLS_CERT was a raw
 * `ENOENT: ... open` error that named no setting).
 */
async function readTlsFile(path: string, source: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (cause) {
    const reason = (cause as NodeJS.ErrnoException).code ?? 'unreadable';
    throw new C2Error('C2_CONFIG', `cannot read ${path} (${source}): ${reason}`, { cause });
  }
}

/**
 * After the publisher reconnects, the sweep for work held back during the outage waits this long
 * plus up to the jitter (every node reconnects at about the same moment).
 */
const RECONNECT_SWEEP_DELAY_MS = 5_000;
const RECONNECT_SWEEP_JITTER_MS = 5_000;

/** Job counts of the device queue, read at scrape time. */
function watchQueue(queue: DeviceQueue, metrics: NodeTelemetry['metrics']): void {
  metrics.onScrape('queue', async () => {
    metrics.setQueueJobs(DEVICE_QUEUE, await queue.counts());
  });
}

function domainDeps(
  config: Config,
  db: NodeDatabase,
  kick: DomainDeps['kick'],
  locks: DomainDeps['locks'],
  telemetry: NodeTelemetry,
): DomainDeps {
  return {
    store: tracedStore(db.store, telemetry.tracer),
    sealer: db.vault,
    mode: config.crypto.mode,
    kick,
    pkServerKeygen: config.crypto.serverKeygen,
    maxPageSize: config.limits.maxPageSize,
    maxMessageBytes: config.limits.maxMessageBytes,
    now: Date.now,
    ...(config.monitoring === undefined
      ? {}
      : { observedLagGraceSeconds: config.monitoring.lagGraceSeconds }),
    ...(locks === undefined ? {} : { locks: tracedLocks(locks, telemetry.tracer) }),
    // Test only (chaos suite), accepted by loadConfig with E4C2_ALLOW_TEST_FAULTS=true alone.
    ...(config.testing === undefined ? {} : { testFaults: new Set(config.testing.faults) }),
  };
}

/**
 * Receives delivery receipts (the opt-in extension): through a shared subscription in a cluster,
 * so each receipt is handled by one worker.
 */
async function startReceipts(
  config: Config,
  db: NodeDatabase,
  url: string,
  lifecycle: Lifecycle,
  metrics: C2Metrics,
  onError: (err: unknown, context: string) => void,
  retry: (clientId: string) => void,
): Promise<void> {
  const receiver = await ReceiptReceiver.start({
    url,
    clientId: `${config.mqtt.clientIdPrefix}-${config.node.id}-receipts-${randomBytes(3).toString('hex')}`,
    ...(config.mqtt.username === undefined ? {} : { username: config.mqtt.username }),
    ...(config.mqtt.password === undefined ? {} : { password: config.mqtt.password.reveal() }),
    ...(config.node.role === 'worker' ? { shareGroup: 'e4c2' } : {}),
    store: db.store,
    delivery: new PgDelivery(db.pool),
    sealer: db.vault,
    mode: config.crypto.mode,
    retry,
    onError,
    onReceipt: (event) => {
      metrics.receipt(event.outcome);
    },
  });
  lifecycle.add('receipt receiver', () => receiver.close());
  metrics.onScrape('mqtt', () => {
    metrics.setMqttConnected('receipts', receiver.connected);
    return Promise.resolve();
  });
}

/** Starts a node; on failure, everything already started is stopped again. */
export async function startC2Node(
  config: Config,
  logger: Logger,
  options: NodeTelemetryOptions = {},
): Promise<C2Node> {
  const lifecycle = new Lifecycle(logger);
  const notes: string[] = [];
  const role = config.node.role;
  try {
    // First registered, so shut down last: spans of the other parts' shutdown are flushed.
    const telemetry = nodeTelemetry(config, lifecycle, options);
    const { metrics, tracer } = telemetry;
    let dataDir: string | undefined;
    if (
      config.database.kind === 'embedded' ||
      config.mqtt.kind === 'embedded' ||
      config.tls.kind === 'self-signed'
    ) {
      const dir = await prepareDataDir(config.dataDir);
      lifecycle.add('data dir lock', () => dir.release());
      dataDir = dir.path;
    }
    // The API's files are read before the database starts: a mistyped path is refused at once,
    // not after an embedded PostgreSQL's initdb and the migrations.
    const apiFiles =
      role === 'all' || role === 'api'
        ? { material: await tlsMaterial(config), auth: await apiAuthMaterial(config) }
        : undefined;
    const db = await openDatabase(config, logger, lifecycle, notes);
    watchDatabase(db, config, metrics);
    await watchRestore(db, metrics, logger);
    const { locks, readiness: lockReadiness } = await lockService(
      config,
      lifecycle,
      logger,
      metrics,
    );
    const readinessChecks: ReadinessCheck[] = [
      {
        name: 'postgres',
        ok: () => db.pool.query('SELECT 1').then(() => true),
      },
      // Reported, not required: without the lock quorum only rotations fail, reads and the
      // other calls go on; taking the node out of the balancers would make that an outage.
      ...(lockReadiness === undefined ? [] : [lockReadiness]),
    ];

    // Delivery side: in-process engine (all) or queue worker (worker); relay (api).
    const kickTarget: { kick?: () => void } = {};
    let mqtt: string | undefined;
    if (role === 'all' || role === 'worker') {
      mqtt = await brokerUrl(config, logger, lifecycle, notes);
      // Back from a broker outage: the work held back meanwhile goes out soon, without waiting for
      // the next sweep; not at once, so that devices reconnecting with a clean session have
      // subscribed again (see SendGate: nothing is sent before then, by any path).
      const reconnected: { sweep?: () => void; timer?: NodeJS.Timeout; gate?: SendGate } = {};
      const publisher = await connectPublisher(config, mqtt, lifecycle, logger, metrics, () => {
        const delayMs =
          RECONNECT_SWEEP_DELAY_MS + Math.floor(Math.random() * RECONNECT_SWEEP_JITTER_MS);
        logger.info({ delayMs }, 'MQTT publisher reconnected: sending again soon');
        reconnected.gate?.reconnected(delayMs);
        clearTimeout(reconnected.timer);
        reconnected.timer = setTimeout(() => reconnected.sweep?.(), delayMs);
        reconnected.timer.unref();
      });
      const gate = new SendGate(() => publisher.connected);
      reconnected.gate = gate;
      lifecycle.add('reconnection sweep timer', () => {
        clearTimeout(reconnected.timer);
      });
      readinessChecks.push({ name: 'mqtt', ok: () => Promise.resolve(publisher.connected) });
      metrics.onScrape('mqtt', () => {
        metrics.setMqttConnected('publisher', publisher.connected);
        return Promise.resolve();
      });
      const deps = deliveryDeps(config, db, publisher, logger, telemetry);
      const onError = (err: unknown, context: string): void => {
        if (err instanceof ClaimsLapsedError) {
          metrics.claimsLapsed();
          logger.warn({ err, context }, 'device claims lapsed');
          return;
        }
        logger.error({ err, context }, 'delivery error');
      };
      if (role === 'all') {
        const engine = new DeliveryEngine(db.store, deps, {
          concurrency: config.delivery.batches,
          batchSize: config.delivery.batchSize,
          claimBatch: config.delivery.batchSize,
          pollIntervalMs: 1000,
          sweepIntervalMs: 30_000,
          onError,
          onSyncDone: (_id, outcome) => {
            recordSyncOutcomes(metrics, [outcome]);
          },
          canSend: () => gate.open,
        });
        kickTarget.kick = () => {
          engine.kick();
        };
        reconnected.sweep = () => void engine.sweep();
        engine.start();
        lifecycle.add('delivery engine', () => engine.close());
        await startReceipts(config, db, mqtt, lifecycle, metrics, onError, (id) => {
          engine.enqueue([id]);
        });
      } else if (config.redis.kind === 'external') {
        const redis = await connectRedis(config.redis.url.reveal(), lifecycle, {
          name: 'queue',
          blocking: true,
          silenceMs: config.redis.silenceMs,
          logger,
        });
        // BullMQ's worker keeps its commands until Redis is back (it has nothing to do without
        // it); the adds of this process fail at once instead (see connectQueueProducer).
        const producer = await connectQueueProducer(
          config.redis,
          'queue-producer',
          lifecycle,
          logger,
        );
        const queue = DeviceQueue.create(producer, queuePrefix(config), queueErrorLog(logger));
        lifecycle.add('device queue', () => queue.close());
        const worker = DeliveryWorker.start({
          connection: redis,
          prefix: queuePrefix(config),
          store: db.store,
          queue,
          syncDeps: deps,
          concurrency: config.delivery.batches,
          sweepIntervalMs: 30_000,
          busyRetryMs: 1000,
          onError,
          metrics,
          tracer,
          canSend: () => gate.open,
        });
        reconnected.sweep = () => void worker.sweep();
        lifecycle.add('delivery worker', () => worker.close());
        watchQueue(queue, metrics);
        await startReceipts(config, db, mqtt, lifecycle, metrics, onError, (id) => {
          void queue.add([id]).catch((err: unknown) => {
            onError(err, 'receipt retry');
          });
        });
        readinessChecks.push({ name: 'redis', ok: () => redis.ping().then(() => true) });
      }
    } else if (config.redis.kind === 'external') {
      const redis = await connectQueueProducer(config.redis, 'queue', lifecycle, logger);
      const queue = DeviceQueue.create(redis, queuePrefix(config), queueErrorLog(logger));
      lifecycle.add('device queue', () => queue.close());
      const relay = new OutboxRelay(tracedStore(db.store, tracer), queue, {
        batch: 1000,
        pollIntervalMs: 1000,
        // It polls every second: a Redis or PostgreSQL outage would log a line a second.
        onError: throttledErrorLog(
          (fields, message) => {
            logger.error(fields, message);
          },
          'outbox relay error',
          RELAY_ERROR_LOG_EVERY_MS,
        ),
        metrics,
        tracer,
      });
      watchQueue(queue, metrics);
      relay.start();
      kickTarget.kick = () => {
        relay.kick();
      };
      lifecycle.add('outbox relay', () => relay.close());
      // Reported, not required: without the queue Redis an API node still serves every call;
      // commits wait in the outbox and the relay catches up. Taking every API node out of the
      // load balancers for it would turn a delivery pause into an outage of the whole API.
      readinessChecks.push({
        name: 'redis',
        ok: () => redis.ping().then(() => true),
        required: false,
      });
    }

    const service = new C2Service(
      domainDeps(config, db, { kick: () => kickTarget.kick?.() }, locks, telemetry),
    );
    await service.init();
    const automationStore = new PgAutomationStore(db.pool);
    const automationNote = await startAutomation(
      config,
      automationStore,
      service,
      lifecycle,
      logger,
      metrics,
    );
    if (automationNote !== undefined) notes.push(automationNote);
    if (mqtt !== undefined) {
      const monitorNote = await startTrafficMonitor(
        config,
        mqtt,
        service,
        lifecycle,
        logger,
        metrics,
      );
      if (monitorNote !== undefined) notes.push(monitorNote);
    }

    // Not ready before every part is up: the health listener answers before the API listens.
    let started = false;
    const readiness = async (): Promise<{ ready: boolean; checks: Record<string, boolean> }> => {
      // Each check within READINESS_CHECK_TIMEOUT_MS: a silent dependency is reported as such.
      const checks = await runReadinessChecks(readinessChecks);
      return {
        ready:
          started && requiredChecksPass(readinessChecks, checks) && lifecycle.state === 'running',
        checks,
      };
    };
    const health = await HealthServer.start({
      host: config.api.metrics.host,
      port: config.api.metrics.port,
      readiness,
      metrics: () => metrics.scrape(),
    });
    lifecycle.add('health listener', () => health.close());

    let grpc: string | undefined;
    let http: string | undefined;
    let tlsCertPath: string | undefined;
    if (apiFiles !== undefined) {
      const { material, auth } = apiFiles;
      tlsCertPath = material.certPath;
      notes.push(auth.note);
      if (auth.authenticate === undefined) logger.warn({}, auth.note);
      // Event streams read when any node positioned events (LISTEN/NOTIFY), not only by polling.
      const eventWakeups = await PgEventNotifications.start({
        connect: db.listenConnection,
        sequence: () => service.sequenceEvents(),
        onError: (err, context) => {
          logger.warn({ err, context }, 'event stream wake-ups');
        },
      });
      lifecycle.add('event wake-ups', () => eventWakeups.close());
      const api = await ApiServer.start({
        service,
        automation: new AutomationService(automationStore, {
          mode: config.crypto.mode,
          pkServerKeygen: config.crypto.serverKeygen,
        }),
        eventWakeups,
        grpc: config.api.grpc,
        http: config.api.http,
        consoleDir: CONSOLE_DIR,
        ...(material.tls === undefined
          ? {}
          : {
              tls: {
                ...material.tls,
                ...(auth.clientCa === undefined ? {} : { clientCa: auth.clientCa }),
              },
            }),
        ...(auth.authenticate === undefined
          ? { allowedHosts: config.api.allowedHosts }
          : { authenticate: auth.authenticate, idempotencyPerActor: true }),
        logger,
        maxMessageBytes: config.limits.maxMessageBytes,
        readiness,
        telemetry: new RpcTelemetry(metrics, tracer),
      });
      lifecycle.add('api servers', () => api.close(config.node.shutdownTimeoutMs));
      grpc = hostPort(api.grpcAddress);
      http = `${material.tls === undefined ? 'http' : 'https'}://${hostPort(api.httpAddress)}`;
    }
    // Registered last, so it runs first: readiness goes off before anything closes.
    lifecycle.add('readiness off', () => {
      health.drain();
    });

    started = true;
    const addresses: NodeAddresses = {
      role,
      grpc,
      http,
      health: `http://${hostPort(health.address)}`,
      database: db.display,
      mqtt,
      tlsCertPath,
      dataDir,
      notes,
    };
    return {
      addresses,
      service,
      lifecycle,
      telemetry,
      stop: () => lifecycle.shutdown(config.node.shutdownTimeoutMs),
    };
  } catch (err) {
    await lifecycle.shutdown(config.node.shutdownTimeoutMs, 'start-up failed');
    throw err;
  }
}

/** At most one `outbox relay error` line per this interval, with the count of those left out. */
const RELAY_ERROR_LOG_EVERY_MS = 10_000;

/** Connection errors of the device queue's producer: at most one line a minute while Redis is down. */
function queueErrorLog(logger: Logger): (err: Error) => void {
  return throttledErrorLog(
    (fields, message) => {
      logger.warn(fields, message);
    },
    'device queue: Redis connection error',
    60_000,
  );
}
