/**
 * The Prometheus metrics of one C2 process, on a registry of its own (never prom-client's global
 * one, so two nodes in one process, as in tests, never mix their series).
 *
 * Label values are always from small fixed sets (outcomes, states, RPC method names): never a
 * device id, a topic name, a lock resource or anything derived from a key (DESIGN R8, and
 * unbounded cardinality). The full list with types and labels is in docs/observability.md;
 * `ops/` rules and dashboards are checked against {@link C2Metrics.names}.
 */
import {
  collectDefaultMetrics,
  Counter,
  Gauge,
  Histogram,
  Registry,
  type CounterConfiguration,
} from 'prom-client';

/** Transport of an API call. */
export type RpcTransport = 'grpc' | 'http';

/** Kinds of key a rotation replaces. */
export const ROTATION_KINDS = ['topic', 'client', 'c2'] as const;

/** Kind of key a rotation replaces. */
export type RotationKind = (typeof ROTATION_KINDS)[number];

/** How an API call or rotation ends, reduced to a small set. */
export const CALL_OUTCOMES = ['ok', 'rejected', 'conflict', 'unavailable', 'error'] as const;

/** How an API call or rotation ended. */
export type CallOutcome = (typeof CALL_OUTCOMES)[number];

/** Outcomes of `c2_receipts_total` (the receipt receiver's outcomes, `-` written `_`). */
export const RECEIPT_OUTCOMES = [
  'confirmed',
  'applied',
  'rejected',
  'not_authentic',
  'unknown_device',
  'malformed',
  'dropped',
] as const;

/** `a_b` as `a-b`: a receipt outcome as the receiver names it. */
type Hyphenated<S extends string> = S extends `${infer A}_${infer B}` ? `${A}-${Hyphenated<B>}` : S;

/** A receipt outcome as the receiver names it (`not-authentic`). */
export type ReceiptOutcome = Hyphenated<(typeof RECEIPT_OUTCOMES)[number]>;

/** Outcomes of `c2_automation_firings_total`. */
export const AUTOMATION_FIRING_OUTCOMES = [
  'planned',
  'succeeded',
  'failed',
  'aborted',
  'timed_out',
  'interrupted',
  'deferred',
] as const;

/** A firing planned, finished by status, interrupted or deferred. */
export type AutomationFiringOutcome = (typeof AUTOMATION_FIRING_OUTCOMES)[number];

/** Reasons of `c2_lock_leases_lost_total`. */
const LEASE_LOSS_REASONS = ['expired', 'taken'] as const;

/** A class the traffic monitor gives a message it looked at (its `TRAFFIC_CLASSES`). */
export type MonitoredClass = 'current' | 'previous_key' | 'stale' | 'forged' | 'unencrypted';

/**
 * Reasons of `c2_monitored_messages_total{class="dropped"}`: the setting whose cap the monitor's
 * queue was at (`E4C2_MONITORING_MAX_QUEUED`, `E4C2_MONITORING_MAX_QUEUED_BYTES`), so an operator
 * knows which to raise.
 */
const MONITOR_DROP_REASONS = ['max_queued', 'max_queued_bytes'] as const;

/** Why the traffic monitor dropped a message. */
export type MonitorDropReason = (typeof MONITOR_DROP_REASONS)[number];

/** How one publish attempt ended. */
export type AttemptOutcome = 'ok' | 'error' | 'timeout';

/** Delivery states of devices (clients.sync_state). */
export const DEVICE_STATES = ['idle', 'pending', 'failed', 'unreachable'] as const;

/** Job states reported for the queue. */
export const QUEUE_STATES = ['waiting', 'active', 'delayed', 'failed'] as const;

/** Cluster-wide figures read from the database at scrape time. */
export interface PipelineStats {
  readonly outboxDepth: number;
  readonly outboxOldestAgeSeconds: number;
  readonly convergenceLagSeconds: number;
  readonly devicesByState: Readonly<Record<(typeof DEVICE_STATES)[number], number>>;
}

/** Labels of the attempt counter: attempts past the 5th share one bucket (bounded). */
export function attemptLabel(attempt: number): string {
  return attempt >= 5 ? '5+' : String(Math.max(1, Math.floor(attempt)));
}

/**
 * Statuses of `c2_rpc_requests_total` whose series exist at 0 for every method a server answers
 * ({@link C2Metrics.rpcMethod}): the internal errors `C2ApiErrorRatioHigh` counts and the
 * success that makes most of its denominator. A series born at its first call has no earlier
 * sample, so `rate()` does not count that call: the first internal error of each method (after
 * each restart) went unseen. `ops/` checks the alert's statuses against this list.
 */
export const RPC_PREINITIALISED_STATUSES: Readonly<Record<RpcTransport, readonly string[]>> = {
  grpc: ['OK', 'UNKNOWN', 'INTERNAL', 'DATA_LOSS'],
  http: ['200', '500'],
};

/** Outcomes and attempt labels of `c2_delivery_attempts_total`, whose series exist at 0. */
const ATTEMPT_OUTCOMES: readonly AttemptOutcome[] = ['ok', 'error', 'timeout'];
const ATTEMPT_LABELS = ['1', '2', '3', '4', '5+'];

/** Seconds buckets for API calls and lock waits (1 ms .. 10 s). */
const LATENCY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/** A refresher run before each scrape (database or queue figures); may fail. */
type Refresher = () => Promise<void>;

/** Options of {@link C2Metrics}. */
export interface C2MetricsOptions {
  readonly node: string;
  readonly role: string;
  readonly version: string;
  /** Also export prom-client's `process_*` and `nodejs_*` metrics (default true). */
  readonly processMetrics?: boolean;
  /** Longest a scrape waits for its refreshers (default 2000 ms); slow figures keep old values. */
  readonly refreshTimeoutMs?: number;
}

/** Every metric of a process, with methods named after what happened. */
export class C2Metrics {
  /** The registry `/metrics` serves. */
  readonly registry = new Registry();
  readonly #refreshers: Refresher[] = [];
  readonly #refreshTimeoutMs: number;
  /** Lock resources whose last failed attempt saw too few instances answer (no quorum). */
  readonly #noQuorum = new Set<string>();

  readonly #rpcRequests: Counter<'transport' | 'method' | 'status'>;
  readonly #rpcDuration: Histogram<'transport' | 'method' | 'status'>;
  readonly #rotations: Counter<'kind' | 'outcome'>;
  readonly #outboxDepth: Gauge;
  readonly #outboxAge: Gauge;
  readonly #outboxRelayed: Counter;
  readonly #queueJobs: Gauge<'queue' | 'state'>;
  readonly #deliveries: Counter<'outcome'>;
  readonly #attempts: Counter<'outcome' | 'attempt'>;
  readonly #retransmissions: Counter;
  readonly #deferred: Counter;
  readonly #publishDuration: Histogram<'outcome'>;
  readonly #convergenceLag: Gauge;
  readonly #devices: Gauge<'state'>;
  readonly #lockWait: Histogram<'outcome'>;
  readonly #lockContended: Counter;
  readonly #lockFailures: Counter<'reason'>;
  readonly #leasesLost: Counter<'reason'>;
  readonly #lockInstances: Gauge<'state'>;
  readonly #lockQuorum: Gauge;
  readonly #poolClients: Gauge<'state'>;
  readonly #mqttUp: Gauge<'client'>;
  readonly #restorePending: Gauge;
  readonly #mqttResets: Counter;
  readonly #claimsLapsed: Counter;
  readonly #receipts: Counter<'outcome'>;
  readonly #scrapeErrors: Counter<'source'>;
  readonly #automationLeader: Gauge;
  readonly #automationPaused: Gauge;
  readonly #automationFirings: Counter<'outcome'>;
  readonly #monitoredMessages: Counter<'class' | 'reason'>;

  constructor(options: C2MetricsOptions) {
    this.#refreshTimeoutMs = options.refreshTimeoutMs ?? 2000;
    const registers = [this.registry];
    const counter = <L extends string>(config: CounterConfiguration<L>): Counter<L> =>
      new Counter({ ...config, registers });

    const info = new Gauge({
      name: 'c2_node_info',
      help: 'Always 1: one series per process, with its node id, role and version.',
      labelNames: ['node', 'role', 'version'] as const,
      registers,
    });
    info.set({ node: options.node, role: options.role, version: options.version }, 1);

    this.#rpcRequests = counter({
      name: 'c2_rpc_requests_total',
      help: 'API calls answered, by transport, method (gRPC method or HTTP route rpc) and status.',
      labelNames: ['transport', 'method', 'status'] as const,
    });
    this.#rpcDuration = new Histogram({
      name: 'c2_rpc_duration_seconds',
      help: 'Time to answer an API call.',
      labelNames: ['transport', 'method', 'status'] as const,
      buckets: LATENCY_BUCKETS,
      registers,
    });
    this.#rotations = counter({
      name: 'c2_rotations_total',
      help: 'Key rotation requests by kind of key and outcome.',
      labelNames: ['kind', 'outcome'] as const,
    });
    this.#outboxDepth = new Gauge({
      name: 'c2_outbox_depth',
      help: 'Committed outbox rows not yet relayed to the queue (cluster-wide).',
      registers,
    });
    this.#outboxAge = new Gauge({
      name: 'c2_outbox_oldest_age_seconds',
      help: 'Age of the oldest outbox row; 0 when the outbox is empty (cluster-wide).',
      registers,
    });
    this.#outboxRelayed = counter({
      name: 'c2_outbox_relayed_total',
      help: 'Outbox rows this process relayed to the queue (API nodes; in-process delivery of role all reads the outbox itself and does not count here).',
    });
    this.#queueJobs = new Gauge({
      name: 'c2_queue_jobs',
      help: 'BullMQ jobs by queue and state (cluster-wide).',
      labelNames: ['queue', 'state'] as const,
      registers,
    });
    this.#deliveries = counter({
      name: 'c2_deliveries_total',
      help: 'Deliveries that ended: delivered (PUBACK) or failed (attempt cap or deadline).',
      labelNames: ['outcome'] as const,
    });
    this.#attempts = counter({
      name: 'c2_delivery_attempts_total',
      help: 'Publish attempts by outcome and attempt number (5+ for the fifth and later).',
      labelNames: ['outcome', 'attempt'] as const,
    });
    this.#retransmissions = counter({
      name: 'c2_delivery_retransmissions_total',
      help: 'Publish attempts after the first for the same command (re-protected each time).',
    });
    this.#deferred = counter({
      name: 'c2_delivery_deferred_total',
      help: 'Commands held back because this process was not connected to the broker: no attempt; sent at reconnection or the next sweep.',
    });
    this.#publishDuration = new Histogram({
      name: 'c2_mqtt_publish_duration_seconds',
      help: 'Time from publish to the broker PUBACK (or the failure).',
      labelNames: ['outcome'] as const,
      buckets: LATENCY_BUCKETS,
      registers,
    });
    this.#convergenceLag = new Gauge({
      name: 'c2_convergence_lag_seconds',
      help: 'Time since the oldest pending (active device, key) change was committed; 0 when converged.',
      registers,
    });
    this.#devices = new Gauge({
      name: 'c2_devices',
      help: 'Active devices by delivery state (cluster-wide).',
      labelNames: ['state'] as const,
      registers,
    });
    this.#lockWait = new Histogram({
      name: 'c2_lock_acquire_duration_seconds',
      help: 'Time to acquire a rotation lock, by outcome (acquired, timeout).',
      labelNames: ['outcome'] as const,
      buckets: LATENCY_BUCKETS,
      registers,
    });
    this.#lockContended = counter({
      name: 'c2_lock_contended_total',
      help: 'Lock acquisitions that had to wait or retry because the lock was held or contested.',
    });
    this.#lockFailures = counter({
      name: 'c2_lock_acquire_failures_total',
      help: 'Lock acquisitions that gave up: timeout (held elsewhere) or no_quorum.',
      labelNames: ['reason'] as const,
    });
    this.#leasesLost = counter({
      name: 'c2_lock_leases_lost_total',
      help: 'Held locks lost before their work ended: expired or taken.',
      labelNames: ['reason'] as const,
    });
    this.#lockInstances = new Gauge({
      name: 'c2_lock_instances',
      help: 'Redlock instances by the state of this process connection to them: up (ready) or down.',
      labelNames: ['state'] as const,
      registers,
    });
    this.#lockQuorum = new Gauge({
      name: 'c2_lock_quorum',
      help: 'Redlock instances that must answer for a rotation lock (0 with the in-process lock).',
      registers,
    });
    this.#poolClients = new Gauge({
      name: 'c2_db_pool_connections',
      help: 'PostgreSQL pool: connections open (total), idle, requests waiting, and the maximum.',
      labelNames: ['state'] as const,
      registers,
    });
    this.#mqttUp = new Gauge({
      name: 'c2_mqtt_connected',
      help: '1 while the MQTT connection (publisher, receipts) is up, 0 otherwise.',
      labelNames: ['client'] as const,
      registers,
    });
    this.#restorePending = new Gauge({
      name: 'c2_restore_pending',
      help: '1 while the database was restored from a backup and not reconciled (deliveries paused until e4c2 restore-reconcile), 0 otherwise.',
      registers,
    });
    this.#mqttResets = counter({
      name: 'c2_mqtt_connection_resets_total',
      help: 'Publisher connections reset because a PUBACK timed out and nothing sent after it was acknowledged (a cut link): their unsent commands were dropped.',
    });
    this.#claimsLapsed = counter({
      name: 'c2_delivery_claims_lapsed_total',
      help: 'Batches that stopped publishing because their device claims lapsed (the process was paused, or cut off from PostgreSQL, longer than the claim TTL).',
    });
    this.#receipts = counter({
      name: 'c2_receipts_total',
      help: 'Delivery receipts received, by outcome: confirmed (moved a confirmation), applied (nothing new: an identity or C2 key command, or a replay), rejected, not_authentic (no key the C2 holds: forged, or keys older than those tried), unknown_device, malformed, dropped (queue full).',
      labelNames: ['outcome'] as const,
    });
    this.#scrapeErrors = counter({
      name: 'c2_metrics_refresh_errors_total',
      help: 'Scrape-time figures that could not be read (database, pool, queue, mqtt, restore): old values were kept.',
      labelNames: ['source'] as const,
    });

    this.#automationLeader = new Gauge({
      name: 'c2_automation_leader',
      help: '1 while this process leads the automation engine (runs the schedule), 0 otherwise.',
      registers,
    });
    this.#automationPaused = new Gauge({
      name: 'c2_automation_paused',
      help: '1 while automation is paused cluster-wide (as last seen by this process), 0 otherwise.',
      registers,
    });
    this.#automationFirings = counter({
      name: 'c2_automation_firings_total',
      help: 'Automation firings by outcome: planned, succeeded, failed, aborted, timed_out, interrupted, deferred (a passing failure: runs again).',
      labelNames: ['outcome'] as const,
    });
    this.#monitoredMessages = counter({
      name: 'c2_monitored_messages_total',
      help: 'Messages the traffic monitor looked at, by class: current, previous_key, stale, forged, unencrypted; and dropped, by reason: the queue was at its message (max_queued) or byte (max_queued_bytes) cap.',
      labelNames: ['class', 'reason'] as const,
    });

    // Zero series for every label value a counter knows, so rates and alerts exist before the
    // first event: a series born at 1 has no earlier sample, so rate() and increase() miss that
    // first event (the forged-traffic alert would not fire on a process's first forged message).
    for (const outcome of ['delivered', 'failed']) this.#deliveries.inc({ outcome }, 0);
    for (const reason of ['timeout', 'no_quorum']) this.#lockFailures.inc({ reason }, 0);
    for (const reason of LEASE_LOSS_REASONS) this.#leasesLost.inc({ reason }, 0);
    for (const kind of ROTATION_KINDS)
      for (const outcome of CALL_OUTCOMES) this.#rotations.inc({ kind, outcome }, 0);
    for (const outcome of RECEIPT_OUTCOMES) this.#receipts.inc({ outcome }, 0);
    for (const outcome of AUTOMATION_FIRING_OUTCOMES) this.#automationFirings.inc({ outcome }, 0);
    // The forged-traffic alert's classes on every process; the others once a monitor starts.
    for (const verdict of ['forged', 'unencrypted'])
      this.#monitoredMessages.inc({ class: verdict }, 0);
    for (const reason of MONITOR_DROP_REASONS)
      this.#monitoredMessages.inc({ class: 'dropped', reason }, 0);
    // C2RetransmissionsHigh divides by the attempts' rate: every series from 0, as above.
    for (const outcome of ATTEMPT_OUTCOMES)
      for (const attempt of ATTEMPT_LABELS) this.#attempts.inc({ outcome, attempt }, 0);
    this.#retransmissions.inc(0);
    this.#deferred.inc(0);
    this.#lockContended.inc(0);
    if (options.processMetrics !== false) collectDefaultMetrics({ register: this.registry });
  }

  // --- automation ------------------------------------------------------------------------------

  /** Whether this process leads the automation engine. */
  setAutomationLeader(leader: boolean): void {
    this.#automationLeader.set(leader ? 1 : 0);
  }

  /** Whether automation is paused (the cluster-wide switch, as this process last read it). */
  setAutomationPaused(paused: boolean): void {
    this.#automationPaused.set(paused ? 1 : 0);
  }

  /** A traffic monitor runs here, giving these classes: their series exist at 0 from now. */
  monitorStarted(classes: readonly MonitoredClass[]): void {
    for (const verdict of classes) this.#monitoredMessages.inc({ class: verdict }, 0);
  }

  /** One message classified by the traffic monitor. */
  monitoredMessage(verdict: MonitoredClass): void {
    this.#monitoredMessages.inc({ class: verdict });
  }

  /** One message the traffic monitor dropped (its queue at a cap). */
  monitorDropped(reason: MonitorDropReason): void {
    this.#monitoredMessages.inc({ class: 'dropped', reason });
  }

  /** One automation firing planned, finished (by outcome), interrupted or deferred. */
  automationFiring(outcome: AutomationFiringOutcome): void {
    this.#automationFirings.inc({ outcome });
  }

  /** Names of every metric this registry exports (`ops/` checks rules and dashboards on it). */
  names(): string[] {
    return this.registry.getMetricsAsArray().map((m) => m.name);
  }

  // --- API -------------------------------------------------------------------------------------

  /**
   * A method a server answers: its {@link RPC_PREINITIALISED_STATUSES} series exist at 0 from
   * now, so the rate of its first call (its first internal error) is seen.
   */
  rpcMethod(transport: RpcTransport, method: string): void {
    for (const status of RPC_PREINITIALISED_STATUSES[transport])
      this.#rpcRequests.inc({ transport, method, status }, 0);
  }

  /** One API call answered. */
  rpc(transport: RpcTransport, method: string, status: string, seconds: number): void {
    this.#rpcRequests.inc({ transport, method, status });
    this.#rpcDuration.observe({ transport, method, status }, seconds);
  }

  /** One rotation request ended. */
  rotation(kind: RotationKind, outcome: CallOutcome): void {
    this.#rotations.inc({ kind, outcome });
  }

  // --- pipeline --------------------------------------------------------------------------------

  /** Outbox rows relayed (or claimed) by this process. */
  outboxRelayed(rows: number): void {
    if (rows > 0) this.#outboxRelayed.inc(rows);
  }

  /** Sets the cluster-wide figures read from the database. */
  setPipelineStats(stats: PipelineStats): void {
    this.#outboxDepth.set(stats.outboxDepth);
    this.#outboxAge.set(stats.outboxOldestAgeSeconds);
    this.#convergenceLag.set(stats.convergenceLagSeconds);
    for (const state of DEVICE_STATES) this.#devices.set({ state }, stats.devicesByState[state]);
  }

  /** Sets the job counts of a queue. */
  setQueueJobs(queue: string, counts: Readonly<Record<string, number>>): void {
    for (const state of QUEUE_STATES) this.#queueJobs.set({ queue, state }, counts[state] ?? 0);
  }

  // --- delivery --------------------------------------------------------------------------------

  /** Deliveries that ended (counted per batch where the code batches). */
  deliveries(outcome: 'delivered' | 'failed', count = 1): void {
    if (count > 0) this.#deliveries.inc({ outcome }, count);
  }

  /** One publish attempt (its number counts from 1 for each command). */
  attempt(outcome: AttemptOutcome, attempt: number): void {
    this.#attempts.inc({ outcome, attempt: attemptLabel(attempt) });
    if (attempt > 1) this.#retransmissions.inc();
  }

  /** Commands held back: the broker connection was down, nothing was sent (no attempt). */
  deferred(count: number): void {
    this.#deferred.inc(count);
  }

  /** One publish awaited to its PUBACK or failure. */
  publish(outcome: AttemptOutcome, seconds: number): void {
    this.#publishDuration.observe({ outcome }, seconds);
  }

  /**
   * Sets how many Redlock instances this process reaches (`up`) out of `total`, and the quorum
   * rotations need.
   */
  setLockInstances(up: number, total: number, quorum: number): void {
    this.#lockInstances.set({ state: 'up' }, up);
    this.#lockInstances.set({ state: 'down' }, total - up);
    this.#lockQuorum.set(quorum);
  }

  /** Sets the state of an MQTT connection of this process. */
  setMqttConnected(client: 'publisher' | 'receipts', up: boolean): void {
    this.#mqttUp.set({ client }, up ? 1 : 0);
  }

  /** Sets whether the database awaits its reconciliation after a restore. */
  setRestorePending(pending: boolean): void {
    this.#restorePending.set(pending ? 1 : 0);
  }

  /** One delivery receipt handled (or dropped), by outcome (`not-authentic` as `not_authentic`). */
  receipt(outcome: ReceiptOutcome): void {
    this.#receipts.inc({ outcome: outcome.replace(/-/g, '_') });
  }

  /** The publisher reset a connection that stopped acknowledging. */
  mqttConnectionReset(): void {
    this.#mqttResets.inc();
  }

  /** A batch stopped publishing because its claims lapsed. */
  claimsLapsed(): void {
    this.#claimsLapsed.inc();
  }

  // --- coordination ----------------------------------------------------------------------------

  /** A lock was acquired after `waitMs`, with `failedAttempts` retries (contention). */
  lockAcquired(resource: string, waitMs: number, failedAttempts: number): void {
    this.#noQuorum.delete(resource);
    this.#lockWait.observe({ outcome: 'acquired' }, waitMs / 1000);
    if (failedAttempts > 0) this.#lockContended.inc();
  }

  /** One Redlock attempt failed: remembers whether the quorum or the holder was the reason. */
  lockAttemptFailed(resource: string, noQuorum: boolean): void {
    if (noQuorum) this.#noQuorum.add(resource);
    else this.#noQuorum.delete(resource);
  }

  /** A lock acquisition gave up. */
  lockTimedOut(resource: string, waitMs: number): void {
    const reason = this.#noQuorum.delete(resource) ? 'no_quorum' : 'timeout';
    this.#lockWait.observe({ outcome: 'timeout' }, waitMs / 1000);
    // Without a quorum nobody holds the lock: that is an outage, not contention (its own series).
    if (reason === 'timeout') this.#lockContended.inc();
    this.#lockFailures.inc({ reason });
  }

  /** A held lock was lost. */
  leaseLost(reason: (typeof LEASE_LOSS_REASONS)[number]): void {
    this.#leasesLost.inc({ reason });
  }

  // --- resources -------------------------------------------------------------------------------

  /** Sets the database pool figures. */
  setPool(figures: {
    readonly total: number;
    readonly idle: number;
    readonly waiting: number;
    readonly max: number;
  }): void {
    for (const [state, value] of Object.entries(figures)) this.#poolClients.set({ state }, value);
  }

  // --- scraping --------------------------------------------------------------------------------

  /**
   * Adds a figure read at scrape time. Failures and timeouts are counted under `source`, and
   * the gauges keep their previous values.
   */
  onScrape(source: string, refresh: Refresher): void {
    // At 0 from the start: C2MetricsStale takes increase() over it, which a series born at its
    // first error does not count.
    this.#scrapeErrors.inc({ source }, 0);
    this.#refreshers.push(async () => {
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => {
          reject(new Error('timeout'));
        }, this.#refreshTimeoutMs);
      });
      try {
        await Promise.race([refresh(), timeout]);
      } catch {
        this.#scrapeErrors.inc({ source });
      } finally {
        clearTimeout(timer);
      }
    });
  }

  /**
   * Refreshes scrape-time figures and renders the registry (the `/metrics` handler). The
   * refreshers start in the order they were added, each running synchronously up to its first
   * wait, so a figure read synchronously sees nothing of the refreshers added after it.
   */
  async scrape(): Promise<{ contentType: string; body: string }> {
    await Promise.all(this.#refreshers.map((r) => r()));
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }
}
