/**
 * The system under test, as processes on loopback: a private PostgreSQL, a private Redis for the
 * queue and a private Mosquitto (each restartable), a TCP fault proxy in front of each, the MQTT
 * fault proxy between the workers and the broker, and the cluster of `npm run cluster` (API
 * nodes, workers, a Redlock quorum of three `redis-server`, the load balancer) wired through the
 * proxies. Each node reaches every service through proxies of its own besides (in front of the
 * shared ones), and the load balancer reaches each API node through proxies of that node's own,
 * so that one node can be cut off the network alone ({@link ChaosEnvironment.partitionNode}).
 * Devices talk to the broker directly. `stop()` ends every
 * process, also after a failure.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  BALANCER_ROUTE_LISTENERS,
  startCluster,
  type BalancerRoute,
  type LocalCluster,
  type NodeLinks,
} from '../bin/cluster.ts';
import type { DrawRange } from '../bin/free-ports.ts';
import { BalancerRoutes } from './balancer-routes.ts';
import { MqttFaultProxy } from './faults/mqtt-fault-proxy.ts';
import { TcpFaultProxy } from './faults/tcp-fault-proxy.ts';
import { clusterRestartAttempt, restartWithin } from './node-restart.ts';
import { REDLOCK_INSTANCES } from './port-plan.ts';
import { MosquittoService } from './services/mosquitto-service.ts';
import { PostgresService } from './services/postgres-service.ts';
import { RedisService } from './services/redis-service.ts';

/** Delivery settings every node runs with; the checker needs the cap (I7). */
export const NODE_SETTINGS = {
  deliveryCap: 5,
  pubackTimeoutMs: 3000,
  /** The MQTT proxy never holds a PUBLISH longer than this (below the PUBACK timeout). */
  maxHoldMs: 1500,
} as const;

/** Options of {@link ChaosEnvironment.start}. */
export interface EnvironmentOptions {
  readonly apiNodes: number;
  readonly workers: number;
  /** Extra `E4C2_*` settings for every node (test-only fault switches). */
  readonly nodeEnv?: Readonly<Record<string, string>>;
  readonly random: () => number;
  /** The suite's progress lines. */
  readonly log: (line: string) => void;
  /** Node output lines (warnings and errors), kept for the secrecy scan. */
  readonly nodeOutput: (name: string, line: string) => void;
  /**
   * Aborts the start (a signal): it then stops what it had started, removes its directories and
   * rejects, instead of leaving them to an exit that would only SIGKILL the processes.
   */
  readonly signal?: AbortSignal;
  /**
   * Where every port the environment listens on comes from (`--ports`): services, proxies,
   * nodes, Redlock, balancer. Default: below the kernel's ephemeral range, and the kernel's
   * choice for the proxies.
   */
  readonly portRange?: DrawRange | undefined;
}

/** Everything started for a run. */
export class ChaosEnvironment {
  /** Processes paused by a fault (SIGSTOP), continued by `healAll` if still paused. */
  readonly paused = new Set<string>();
  /** Nodes being restarted: a failed start-up (the database still down) is not a crash. */
  readonly restarting = new Set<string>();
  private constructor(
    /** Nodes that exited without being told to (the launcher's notices), for I9. */
    readonly crashes: Array<{ readonly at: number; readonly line: string }>,
    readonly postgres: PostgresService,
    readonly queueRedis: RedisService,
    readonly broker: MosquittoService,
    readonly pgProxy: TcpFaultProxy,
    readonly redisProxy: TcpFaultProxy,
    readonly brokerProxy: TcpFaultProxy,
    readonly mqttProxy: MqttFaultProxy,
    readonly cluster: LocalCluster,
    private readonly dataDir: string,
    /** Per node, the proxies of its own in front of every service it uses. */
    private readonly nodeLinks: ReadonlyMap<string, readonly TcpFaultProxy[]>,
    /** The balancer's proxies to each API node (also in `nodeLinks`), which follow its life. */
    private readonly balancerRoutes: BalancerRoutes,
  ) {}

  /**
   * SIGKILLs a node; an API node's routes from the balancer then refuse connections, as the
   * node's own ports do ({@link BalancerRoutes}), until {@link ChaosEnvironment.restartNode}.
   */
  async killNode(name: string): Promise<void> {
    this.cluster.kill(name, 'SIGKILL');
    await this.balancerRoutes.down(name);
  }

  /**
   * Cuts one node off PostgreSQL, both Redis and the broker, and an API node off the load
   * balancer too (`on`), or ends that: nothing passes and nothing closes on either side
   * meanwhile, as in a network partition ({@link TcpFaultProxy.partition}). Calls the balancer
   * had sent the node wait (their callers time out and retry with their idempotency keys, and
   * the held requests reach the node when the partition ends); the balancer takes the node out of
   * rotation once its readiness probes go unanswered.
   */
  partitionNode(name: string, on: boolean): void {
    const proxies = this.nodeLinks.get(name);
    if (proxies === undefined) throw new RangeError(`no node ${name}`);
    for (const p of proxies) p.partition(on);
  }

  /** The database the nodes use (the checker reads the final state there, directly). */
  get databaseUrl(): string {
    return this.postgres.url;
  }

  static async start(options: EnvironmentOptions): Promise<ChaosEnvironment> {
    const crashes: Array<{ at: number; line: string }> = [];
    const holder: { env?: ChaosEnvironment } = {};
    const started: Array<{ stop: () => Promise<void> }> = [];
    /** Between steps: an aborted start goes no further (the catch below undoes what it did). */
    const go = (): void => {
      if (options.signal?.aborted === true) throw new Error('start-up interrupted');
    };
    try {
      go();
      options.log('starting PostgreSQL, Redis and Mosquitto');
      const services = [
        PostgresService.start('127.0.0.1', options.portRange).then((s) => {
          started.push({ stop: () => s.destroy() });
          return s;
        }),
        RedisService.start('127.0.0.1', options.portRange).then((s) => {
          started.push({ stop: () => s.stop() });
          return s;
        }),
        MosquittoService.start('127.0.0.1', options.portRange).then((s) => {
          started.push({ stop: () => s.destroy() });
          return s;
        }),
      ] as const;
      // Every start over first: when one fails (an interrupted initdb), the others may still be
      // starting, and the catch below must find them registered to stop them.
      await Promise.allSettled(services);
      const [postgres, queueRedis, broker] = await Promise.all(services);
      go();
      const proxy = (name: string, port: number): Promise<TcpFaultProxy> =>
        TcpFaultProxy.start({
          portRange: options.portRange,
          name,
          targetHost: '127.0.0.1',
          targetPort: port,
          random: options.random,
        });
      const pgProxy = await proxy('postgres', postgres.port);
      const redisProxy = await proxy('redis', queueRedis.port);
      const brokerProxy = await proxy('broker', broker.port);
      started.push({ stop: () => pgProxy.close() }, { stop: () => redisProxy.close() });
      started.push({ stop: () => brokerProxy.close() });
      const mqttProxy = await MqttFaultProxy.start({
        portRange: options.portRange,
        targetHost: '127.0.0.1',
        targetPort: brokerProxy.port,
        maxHoldMs: NODE_SETTINGS.maxHoldMs,
        random: options.random,
      });
      started.push({ stop: () => mqttProxy.close() });
      const nodeLinks = new Map<string, TcpFaultProxy[]>();
      started.push({
        stop: async () => {
          await Promise.all([...nodeLinks.values()].flat().map((p) => p.close()));
        },
      });
      const balancerRoutes = new BalancerRoutes();
      /** The proxies of `node`'s own, cut together by a partition. */
      const linksOf = (node: string): TcpFaultProxy[] => {
        const own = nodeLinks.get(node) ?? [];
        nodeLinks.set(node, own);
        return own;
      };
      const routeBalancer = async (node: string, ports: BalancerRoute): Promise<BalancerRoute> => {
        const via = async (listener: string, port: number): Promise<number> => {
          const p = await TcpFaultProxy.start({
            portRange: options.portRange,
            name: `lb-${node}-${listener}`,
            targetHost: '127.0.0.1',
            targetPort: port,
          });
          linksOf(node).push(p);
          balancerRoutes.add(node, p);
          return p.port;
        };
        const route = { ...ports };
        for (const listener of BALANCER_ROUTE_LISTENERS)
          route[listener] = await via(listener, ports[listener]);
        return route;
      };
      const routeNode = async (node: string, shared: NodeLinks): Promise<NodeLinks> => {
        const own = linksOf(node);
        const via = async (service: string, url: string): Promise<string> => {
          const target = new URL(url);
          // Every service of the environment listens on a port of its own choosing.
          if (target.port === '') throw new Error(`the ${service} URL names no port`);
          const p = await TcpFaultProxy.start({
            portRange: options.portRange,
            name: `${node}-${service}`,
            targetHost: target.hostname,
            targetPort: Number(target.port),
          });
          own.push(p);
          target.port = String(p.port);
          return target.toString();
        };
        return {
          databaseUrl: await via('postgres', shared.databaseUrl),
          redisUrl: await via('redis', shared.redisUrl),
          mqttUrl: await via('broker', shared.mqttUrl),
          redlockUrls: await Promise.all(
            shared.redlockUrls.map((url, i) => via(`redlock-${i + 1}`, url)),
          ),
        };
      };
      go();
      const dataDir = await mkdtemp(join(tmpdir(), 'e4c2-chaos-'));
      started.push({ stop: () => rm(dataDir, { recursive: true, force: true }) });
      const env: Record<string, string | undefined> = {};
      for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('E4C2_')) env[k] = v;
      const cluster = await startCluster({
        apiNodes: options.apiNodes,
        workers: options.workers,
        redlock: REDLOCK_INSTANCES,
        basePort: 0,
        portRange: options.portRange,
        schema: 'e4c2_chaos',
        dataDir,
        databaseUrl: `postgres://postgres@127.0.0.1:${pgProxy.port}/postgres`,
        redisUrl: `redis://127.0.0.1:${redisProxy.port}`,
        mqttUrl: mqttProxy.url,
        host: '127.0.0.1',
        env: {
          ...env,
          // info: what a node logs about refused requests and failures is scanned for keys (I8).
          E4C2_LOG_LEVEL: 'info',
          E4C2_DELIVERY_MAX_ATTEMPTS: String(NODE_SETTINGS.deliveryCap),
          E4C2_DELIVERY_BACKOFF_INITIAL_MS: '200',
          E4C2_DELIVERY_BACKOFF_MAX_MS: '4000',
          E4C2_PUBACK_TIMEOUT_MS: String(NODE_SETTINGS.pubackTimeoutMs),
          // Below the 5-7 s pauses of pause-lease-expiry, so a paused worker's claims lapse and
          // another takes its devices while it is stopped (the case ClaimLease guards).
          E4C2_DELIVERY_CLAIM_TTL_MS: '4000',
          // Below the pauses and partitions too, so PostgreSQL ends a silent node's open
          // transaction meanwhile and the node finds its session gone when it goes on.
          E4C2_DB_IDLE_TX_TIMEOUT_MS: '3000',
          // And a statement bound below them, so a cut-off node's statements are given up (its
          // connections replaced) while the partition lasts, as after a database failover.
          E4C2_DB_QUERY_TIMEOUT_MS: '3000',
          // Its Redis counterpart: a silent Redis connection is reset after 1.5 s.
          E4C2_REDIS_SILENCE_MS: '1500',
          E4C2_SHUTDOWN_TIMEOUT_MS: '3000',
          E4C2_DB_POOL_MAX: '8',
          // A short leader lease, so an engine killed mid-run is replaced within a few seconds.
          E4C2_AUTOMATION_LEASE_TTL_MS: '2000',
          E4C2_AUTOMATION_TICK_MS: '200',
          ...options.nodeEnv,
        },
        log: (line) => {
          const died = /^cluster: (\S+) \(pid \d+\) exited unexpectedly/.exec(line);
          if (died !== null && holder.env?.restarting.has(died[1] ?? '') !== true)
            crashes.push({ at: Date.now(), line });
          if (/\[\d+\/\d+\]|starting|failed|unexpectedly/.test(line)) options.log(line);
        },
        childOutput: (name, _stream, line) => {
          options.nodeOutput(name, line);
        },
        startTimeoutMs: 60_000,
        routeNode,
        routeBalancer,
        ...(options.signal === undefined ? {} : { signal: options.signal }),
      });
      started.push({ stop: () => cluster.stop() });
      // An abort that came after the last node was ready: the cluster is up but unwanted.
      go();
      holder.env = new ChaosEnvironment(
        crashes,
        postgres,
        queueRedis,
        broker,
        pgProxy,
        redisProxy,
        brokerProxy,
        mqttProxy,
        cluster,
        dataDir,
        nodeLinks,
        balancerRoutes,
      );
      return holder.env;
    } catch (err) {
      for (const s of started.reverse()) await s.stop().catch(() => undefined);
      throw err;
    }
  }

  /** Every API node's and worker's name. */
  names(role: 'api' | 'worker'): string[] {
    return this.cluster.nodes.filter((n) => n.role === role).map((n) => n.name);
  }

  /** Heals every network fault and restarts whatever is down or paused. */
  async healAll(): Promise<void> {
    this.pgProxy.heal();
    this.redisProxy.heal();
    this.brokerProxy.heal();
    this.mqttProxy.heal();
    for (const name of this.nodeLinks.keys()) this.partitionNode(name, false);
    await Promise.all([
      this.postgres.startAgain(),
      this.queueRedis.startAgain(),
      this.broker.startAgain(true),
    ]);
    for (const name of this.paused) this.cluster.kill(name, 'SIGCONT');
    this.paused.clear();
    // A node that died of a fault (not killed by one) was reported in `crashes`; restart it.
    for (const node of this.cluster.nodes) if (!node.running) await this.restartNode(node.name);
  }

  /**
   * Restarts a node the way an orchestrator does: again after a failed start-up (the database
   * may still be down), every second, everything within a minute, a try that was not ready in
   * time stopped before the next (chaos/node-restart.ts).
   * @throws Error when the node is not ready by then, naming it and the last failure
   */
  async restartNode(name: string): Promise<void> {
    this.restarting.add(name);
    try {
      await this.balancerRoutes.up(name);
      await restartWithin(name, clusterRestartAttempt(this.cluster, name));
    } finally {
      this.restarting.delete(name);
    }
  }

  #stopped: Promise<void> | undefined;

  /** Stops everything, in reverse order; never throws. Idempotent (a signal may stop it twice). */
  stop(): Promise<void> {
    this.#stopped ??= this.#stop();
    return this.#stopped;
  }

  async #stop(): Promise<void> {
    for (const name of this.paused) this.cluster.kill(name, 'SIGCONT');
    await this.cluster.stop().catch(() => undefined);
    await this.mqttProxy.close().catch(() => undefined);
    await Promise.all(
      [this.pgProxy, this.redisProxy, this.brokerProxy, ...[...this.nodeLinks.values()].flat()].map(
        (p) => p.close().catch(() => undefined),
      ),
    );
    await this.broker.destroy().catch(() => undefined);
    await this.queueRedis.stop().catch(() => undefined);
    await this.postgres.destroy().catch(() => undefined);
    await rm(this.dataDir, { recursive: true, force: true }).catch(() => undefined);
  }
}
