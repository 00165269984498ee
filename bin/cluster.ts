/**
 * `npm run cluster -- --api N --workers M [--redlock 1|3] [--base-port P] [--schema S]
 * [--data-dir D] [--restart]`: a local C2 cluster as plain processes on loopback, the topology of
 * `docker-compose.ha.yml` without Docker (DESIGN §7):
 *
 * - N API nodes (`E4C2_ROLE=api`) and M delivery workers (`E4C2_ROLE=worker`), each a child
 *   process running `bin/start.ts`, on the shared `DATABASE_URL` (a schema of its own),
 *   `REDIS_URL` (the queue) and `MQTT_URL` (the fleet's broker);
 * - with `--redlock 3`, three `redis-server` processes of its own for the Redlock quorum;
 * - the load balancer of `bin/lb/` in this process, in front of the API nodes for gRPC and HTTP.
 *
 * Every node opens the same keys: the KEK passphrase is generated once into
 * `<data dir>/kek-passphrase` (mode 0600) unless `E4C2_KEK_FILE`, `E4C2_KEK_PASSPHRASE`,
 * `E4C2_KEK_PKCS11_MODULE` or `E4C2_KEK_VAULT_ADDR` is set.
 * Other `E4C2_*` settings of the environment are passed to every node. Ctrl-C or SIGTERM stops
 * everything in reverse start order; a second one kills what is left. A child that dies on its
 * own is reported and the rest keep running; with `--restart` a node is also started again
 * ({@link RESTART_POLICY}), and a restart that is not ready in time is stopped and tried again.
 *
 * Tests use {@link startCluster} in-process for the same topology.
 */
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { StopSignals } from '../runtime/stop-signals.ts';
import { createPool, redactUrl } from '../cluster/storage/index.ts';
import {
  CLUSTER_DEFAULTS,
  parseClusterArgs,
  nextRestart,
  RESTART_POLICY,
  USAGE,
  type ClusterArgs,
} from './cluster-args.ts';
import { explicitKek, loadOrCreatePassphrase } from './cluster-kek.ts';
import {
  ephemeralLow,
  ephemeralOverlapWarning,
  holdFreePorts,
  portIsFree,
  type DrawRange,
} from './free-ports.ts';
import { LoadBalancer, probeReadiness, type LbEvent } from './lb/index.ts';
import { describeExit, ManagedProcess, waitReady, type ChildOutput } from './managed-process.ts';
import { pingRedis } from './ping-redis.ts';

/** This checkout's root, where nodes of this release run. */
const ROOT = fileURLToPath(new URL('..', import.meta.url));

/** The service addresses a node starts with. */
export interface NodeLinks {
  readonly databaseUrl: string;
  readonly redisUrl: string;
  readonly mqttUrl: string;
  /** The Redlock quorum's instances (none: the node's Redlock uses `redisUrl`). */
  readonly redlockUrls: readonly string[];
}

/** The ports on which the load balancer reaches an API node (on the cluster's host). */
export interface BalancerRoute {
  readonly grpc: number;
  readonly http: number;
  /** The health listener, whose `/readyz` the balancer probes. */
  readonly health: number;
}

/** What the balancer reaches an API node on (the keys of a {@link BalancerRoute}). */
export const BALANCER_ROUTE_LISTENERS = ['grpc', 'http', 'health'] as const satisfies ReadonlyArray<
  keyof BalancerRoute
>;

/**
 * Ports a cluster listens on: the balancer's gRPC and HTTP, each Redlock Redis, gRPC, HTTP and
 * health per API node, health per worker. What its start draws with `basePort` 0 (`--ports` of
 * the chaos suite counts on it).
 */
export function clusterPortCount(apiNodes: number, workers: number, redlock: number): number {
  return 2 + redlock + 3 * apiNodes + workers;
}

/** A node's service settings from its {@link NodeLinks}. */
function routeEnv(links: NodeLinks): NodeJS.ProcessEnv {
  return {
    DATABASE_URL: links.databaseUrl,
    REDIS_URL: links.redisUrl,
    MQTT_URL: links.mqttUrl,
    ...(links.redlockUrls.length === 0 ? {} : { E4C2_REDLOCK_URLS: links.redlockUrls.join(',') }),
  };
}

/** Everything {@link startCluster} needs. */
export interface ClusterOptions extends ClusterArgs {
  /** Loopback address every process binds. */
  readonly host: string;
  /** The environment children start from (their `E4C2_*` settings pass through). */
  readonly env: Readonly<Record<string, string | undefined>>;
  /** The launcher's own lines (progress, notices). */
  readonly log: (line: string) => void;
  /** One line of a child's output. */
  readonly childOutput: ChildOutput;
  /** Longest wait for one process to become ready. Default 60 s. */
  readonly startTimeoutMs?: number;
  /**
   * With `restartNodes`, how long a restarted node may take to be ready before that try is
   * stopped and the next one scheduled (by {@link RESTART_POLICY}). Default `startTimeoutMs`.
   */
  readonly restartReadyWithinMs?: number;
  /**
   * With `basePort` 0, where the ports are drawn (the chaos suite's `--ports`). Default: below
   * the kernel's ephemeral range (bin/free-ports.ts).
   */
  readonly portRange?: DrawRange | undefined;
  /** Aborting it during start-up stops what was started and rejects. */
  readonly signal?: AbortSignal;
  /** The `redis-server` binary. Default `redis-server` from the PATH. */
  readonly redisServer?: string;
  /**
   * Gives one node its own service addresses, called once per node before any node starts (a
   * restart keeps them), while the ports planned for the cluster are still held. The chaos suite
   * puts proxies of each node's own in front of every service, so that it can cut one node off
   * the network. Default: every node the same.
   */
  readonly routeNode?: (node: string, links: NodeLinks) => Promise<NodeLinks>;
  /**
   * How the load balancer reaches one API node: given the node's own ports, the ports that lead
   * to them. Called once per API node, like `routeNode` and right after it. The chaos suite puts
   * proxies of the node's own there too, so that a partition also cuts the balancer off the
   * node, as a real one would. Default: the node's own ports.
   */
  readonly routeBalancer?: (node: string, ports: BalancerRoute) => Promise<BalancerRoute>;
  /**
   * The checkout whose `bin/start.ts` every node runs, with that checkout's own `node_modules`
   * (the upgrade practice starts a cluster of an earlier release: ops/upgrade/). Default: this
   * one. {@link LocalCluster.useRelease} changes it for one node's next start.
   */
  readonly releaseDir?: string;
}

// ---------------------------------------------------------------------------------------------
// The cluster

/** One node of the cluster. */
export interface ClusterNode {
  readonly name: string;
  readonly role: 'api' | 'worker';
  /** Of the current process (a restarted node has a new one). */
  readonly pid: number | undefined;
  readonly running: boolean;
  /** `host:port`, API nodes only. */
  readonly grpc: string | undefined;
  /** `http://host:port`, API nodes only. */
  readonly http: string | undefined;
  /** `http://host:port` of `/healthz` and `/readyz`. */
  readonly health: string;
}

/** One private Redis of the Redlock quorum. */
export interface ClusterRedis {
  readonly name: string;
  readonly url: string;
  readonly pid: number | undefined;
}

interface NodePlan {
  readonly name: string;
  readonly role: 'api' | 'worker';
  readonly grpcPort: number;
  readonly httpPort: number;
  readonly metricsPort: number;
}

/** Settings the launcher decides for every node; the environment's own are dropped. */
const MANAGED_SETTINGS = [
  'E4C2_ROLE',
  'E4C2_GRPC_ADDR',
  'E4C2_HTTP_ADDR',
  'E4C2_METRICS_ADDR',
  'E4C2_NODE_ID',
  'E4C2_DB_SCHEMA',
  'E4C2_REDLOCK_URLS',
  'E4C2_ENDPOINT', // the CLI's
  'E4C2_CERT', // the CLI's
  'E4C2_TOKEN', // the CLI's (a bearer token: nodes have no use for it)
  'E4C2_CLIENT_CERT', // the CLI's (its client certificate)
  'E4C2_CLIENT_KEY', // the CLI's
];

/** A running local cluster. */
export class LocalCluster {
  readonly #nodes = new Map<string, { plan: NodePlan; proc: ManagedProcess }>();
  readonly #redis: Array<{ name: string; url: string; proc: ManagedProcess }> = [];
  #lb: LoadBalancer | undefined;
  #stopping: Promise<void> | undefined;
  /** Set once every process is up: exits before that belong to the start-up's report. */
  #started = false;
  /** Per node, when `--restart` restarted it lately. */
  /** Restarts of each node since it last ran for RESTART_POLICY.stableMs. */
  readonly #restartStreak = new Map<string, number>();
  readonly #restartTimers = new Set<NodeJS.Timeout>();
  /** Per node, the checkout its next start runs, when not {@link ClusterOptions.releaseDir}. */
  readonly #releases = new Map<string, string>();
  readonly #killAll = (): void => {
    for (const p of this.#processes()) p.signal('SIGKILL');
  };

  private constructor(
    private readonly options: ClusterOptions,
    private readonly nodeEnv: NodeJS.ProcessEnv,
    /** Per node, the service settings {@link ClusterOptions.routeNode} gave it (none: shared). */
    private readonly routes: ReadonlyMap<string, NodeJS.ProcessEnv>,
    readonly kek: string,
  ) {}

  /** Load balancer addresses: gRPC `host:port`, HTTP `http://host:port`. */
  get lb(): { readonly grpc: string; readonly http: string; readonly balancer: LoadBalancer } {
    const balancer = this.#lb;
    if (balancer === undefined) throw new Error('the load balancer is not running');
    const g = balancer.address('grpc');
    const h = balancer.address('http');
    return { grpc: `${g.host}:${g.port}`, http: `http://${h.host}:${h.port}`, balancer };
  }

  /** Every node, API nodes first. */
  get nodes(): ClusterNode[] {
    return [...this.#nodes.values()].map(({ plan, proc }) => this.#describeNode(plan, proc));
  }

  /** The private Redis instances of the Redlock quorum (none with `--redlock 1`). */
  get redlock(): ClusterRedis[] {
    return this.#redis.map((r) => ({ name: r.name, url: r.url, pid: r.proc.pid }));
  }

  /** One node. @throws RangeError for an unknown name */
  node(name: string): ClusterNode {
    const entry = this.#nodes.get(name);
    if (entry === undefined) throw new RangeError(`no node ${name}`);
    return this.#describeNode(entry.plan, entry.proc);
  }

  #describeNode(plan: NodePlan, proc: ManagedProcess): ClusterNode {
    const host = this.options.host;
    return {
      name: plan.name,
      role: plan.role,
      pid: proc.pid,
      running: proc.running,
      grpc: plan.role === 'api' ? `${host}:${plan.grpcPort}` : undefined,
      http: plan.role === 'api' ? `http://${host}:${plan.httpPort}` : undefined,
      health: `http://${host}:${plan.metricsPort}`,
    };
  }

  *#processes(): Iterable<ManagedProcess> {
    for (const { proc } of this.#nodes.values()) yield proc;
    for (const { proc } of this.#redis) yield proc;
  }

  /** Starts a cluster; on failure, everything already started is stopped again. */
  static async start(options: ClusterOptions): Promise<LocalCluster> {
    const { log } = options;
    if (options.apiNodes < 1) throw new RangeError('a cluster needs at least one API node');
    const env = options.env;
    const kekEnv: NodeJS.ProcessEnv = {};
    let kek = explicitKek(env);
    if (kek === undefined) {
      kekEnv['E4C2_KEK_PASSPHRASE'] = await loadOrCreatePassphrase(options.dataDir);
      kek = `passphrase in ${resolve(options.dataDir, 'kek-passphrase')}`;
    }

    // Schema first: a node's search_path names it, and migrations need it to exist.
    const admin = await createPool({ url: options.databaseUrl, max: 1 });
    try {
      await admin.query(`CREATE SCHEMA IF NOT EXISTS ${options.schema}`);
    } finally {
      await admin.end();
    }

    interrupted(options.signal, log);
    const ports = await LocalCluster.#planPorts(options);
    const redlockUrls = ports.redlock.map((p) => `redis://${options.host}:${p}`);
    const links: NodeLinks = {
      databaseUrl: options.databaseUrl,
      redisUrl: options.redisUrl,
      mqttUrl: options.mqttUrl,
      redlockUrls,
    };
    // Every node's own links are made while the planned ports are still held, so that what
    // routeNode starts (proxies on port 0) cannot take a port planned for a node.
    const routes = new Map<string, NodeJS.ProcessEnv>();
    const balancerRoutes = new Map<string, BalancerRoute>();
    try {
      const { routeNode, routeBalancer } = options;
      for (const plan of ports.nodes) {
        if (routeNode !== undefined)
          routes.set(plan.name, routeEnv(await routeNode(plan.name, links)));
        if (plan.role !== 'api') continue;
        const own = { grpc: plan.grpcPort, http: plan.httpPort, health: plan.metricsPort };
        balancerRoutes.set(
          plan.name,
          routeBalancer === undefined ? own : await routeBalancer(plan.name, own),
        );
      }
    } finally {
      await ports.release();
    }
    const base: NodeJS.ProcessEnv = {};
    for (const [k, v] of Object.entries(env))
      if (v !== undefined && !MANAGED_SETTINGS.includes(k)) base[k] = v;
    const nodeEnv: NodeJS.ProcessEnv = {
      ...base,
      ...kekEnv,
      ...routeEnv(links),
      E4C2_DB_SCHEMA: options.schema,
    };
    interrupted(options.signal, log);
    const cluster = new LocalCluster(options, nodeEnv, routes, kek);
    process.on('exit', cluster.#killAll);
    const total = ports.redlock.length + ports.nodes.length + 1;
    let step = 0;
    const progress = (what: string): void => {
      step += 1;
      log(`cluster: [${step}/${total}] ${what}`);
    };
    try {
      log(
        `cluster: starting ${ports.redlock.length === 0 ? '' : `${ports.redlock.length} Redlock Redis, `}${options.apiNodes} API node(s), ${options.workers} worker(s) and the load balancer`,
      );
      await Promise.all(
        ports.redlock.map(async (port, i) => {
          await cluster.#startRedis(`redlock-${i + 1}`, port);
          progress(`redlock-${i + 1} ready on redis://${options.host}:${port}`);
        }),
      );
      const apis = ports.nodes.filter((n) => n.role === 'api');
      const workers = ports.nodes.filter((n) => n.role === 'worker');
      // The first node migrates the schema and stores the KEK salt; the others then find both.
      const [first, ...others] = apis;
      if (first !== undefined) {
        await cluster.#startNode(first);
        progress(`${first.name} ready (pid ${cluster.node(first.name).pid ?? '?'})`);
      }
      for (const group of [others, workers]) {
        await Promise.all(
          group.map(async (plan) => {
            await cluster.#startNode(plan);
            progress(`${plan.name} ready (pid ${cluster.node(plan.name).pid ?? '?'})`);
          }),
        );
      }
      cluster.#lb = await LoadBalancer.start({
        listeners: [
          { name: 'grpc', host: options.host, port: ports.lbGrpc },
          { name: 'http', host: options.host, port: ports.lbHttp },
        ],
        backends: apis.map((plan) => {
          const route = balancerRoutes.get(plan.name);
          if (route === undefined) throw new Error(`no balancer route for ${plan.name}`);
          return {
            name: plan.name,
            host: options.host,
            ports: { grpc: route.grpc, http: route.http },
            healthUrl: `http://${options.host}:${route.health}/readyz`,
          };
        }),
        onEvent: (event) => {
          const line = describeLbEvent(event);
          if (line !== undefined) log(`lb: ${line}`);
        },
      });
      progress(`load balancer ready (gRPC ${cluster.lb.grpc}, HTTP ${cluster.lb.http})`);
      cluster.#started = true;
    } catch (err) {
      log(
        options.signal?.aborted === true
          ? 'cluster: start-up interrupted; stopping what was started'
          : `cluster: start-up failed: ${(err as Error).message}; stopping what was started`,
      );
      await cluster.stop(); // says "cluster: stopped"
      throw err;
    }
    return cluster;
  }

  /** The ports of every process; with `basePort` 0, held until `release()`. */
  static async #planPorts(options: ClusterOptions): Promise<{
    lbGrpc: number;
    lbHttp: number;
    redlock: number[];
    nodes: NodePlan[];
    release: () => Promise<void>;
  }> {
    const { host, basePort: p } = options;
    const roles: Array<'api' | 'worker'> = [
      ...Array.from({ length: options.apiNodes }, () => 'api' as const),
      ...Array.from({ length: options.workers }, () => 'worker' as const),
    ];
    let count = { api: 0, worker: 0 };
    const names = roles.map((role) => {
      count = { ...count, [role]: count[role] + 1 };
      return `${role}-${count[role]}`;
    });
    if (p === 0) {
      const redlockCount = options.redlock === 3 ? 3 : 0;
      const needed = clusterPortCount(options.apiNodes, options.workers, redlockCount);
      const held = await holdFreePorts(host, needed, options.portRange);
      const free = [...held.ports];
      const pick = (): number => free.pop() ?? 0;
      const nodes: NodePlan[] = roles.map((role, i) => ({
        name: names[i] ?? role,
        role,
        grpcPort: role === 'api' ? pick() : 0,
        httpPort: role === 'api' ? pick() : 0,
        metricsPort: pick(),
      }));
      const redlock = Array.from({ length: redlockCount }, pick);
      return { lbGrpc: pick(), lbHttp: pick(), redlock, nodes, release: held.release };
    }
    const nodes = roles.map((role, i) => {
      const at = p + 10 * (i + 1);
      return {
        name: names[i] ?? role,
        role,
        grpcPort: role === 'api' ? at : 0,
        httpPort: role === 'api' ? at + 1 : 0,
        metricsPort: at + 2,
      };
    });
    const redlock = options.redlock === 3 ? [p + 2, p + 3, p + 4] : [];
    const wanted: Array<[number, string]> = [
      [p, 'load balancer gRPC'],
      [p + 1, 'load balancer HTTP'],
      ...redlock.map((port, i): [number, string] => [port, `redlock-${i + 1}`]),
      ...nodes.flatMap((n): Array<[number, string]> => [
        ...(n.role === 'api'
          ? [
              [n.grpcPort, `${n.name} gRPC`] as [number, string],
              [n.httpPort, `${n.name} HTTP`] as [number, string],
            ]
          : []),
        [n.metricsPort, `${n.name} health`],
      ]),
    ];
    const highest = Math.max(...wanted.map(([port]) => port));
    const overlap = ephemeralOverlapWarning(p, highest, ephemeralLow());
    if (overlap !== undefined) options.log(`cluster: warning: ${overlap}`);
    for (const [port, what] of wanted) {
      if (!(await portIsFree(host, port)))
        throw new Error(
          `port ${port} (${what}) on ${host} is in use; is a cluster already running? Choose another --base-port, or 0 for free ports`,
        );
    }
    return { lbGrpc: p, lbHttp: p + 1, redlock, nodes, release: () => Promise.resolve() };
  }

  async #startRedis(name: string, port: number): Promise<void> {
    const { host } = this.options;
    const proc = ManagedProcess.spawn(
      {
        name,
        command: this.options.redisServer ?? 'redis-server',
        // No persistence, loopback only: a lock store, started and stopped with the cluster.
        args: [
          ...['--port', String(port), '--bind', host],
          ...['--save', '', '--appendonly', 'no', '--loglevel', 'warning'],
        ],
        env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin' },
      },
      this.options.childOutput,
    );
    const entry = { name, url: `redis://${host}:${port}`, proc };
    this.#redis.push(entry);
    this.#watch(proc);
    await waitReady(
      proc,
      () => pingRedis(host, port),
      this.options.startTimeoutMs ?? 60_000,
      this.options.signal,
    );
  }

  #spawnNode(plan: NodePlan): ManagedProcess {
    const { host } = this.options;
    const env: NodeJS.ProcessEnv = {
      ...this.nodeEnv,
      ...this.routes.get(plan.name),
      E4C2_ROLE: plan.role,
      E4C2_NODE_ID: plan.name,
      E4C2_METRICS_ADDR: `${host}:${plan.metricsPort}`,
      ...(plan.role === 'api'
        ? {
            E4C2_GRPC_ADDR: `${host}:${plan.grpcPort}`,
            E4C2_HTTP_ADDR: `${host}:${plan.httpPort}`,
          }
        : {}),
    };
    const proc = ManagedProcess.spawn(
      {
        name: plan.name,
        command: process.execPath,
        args: ['--import', 'tsx', 'bin/start.ts'],
        env,
        ...this.#releaseOf(plan.name),
      },
      this.options.childOutput,
    );
    this.#nodes.set(plan.name, { plan, proc });
    this.#watch(proc, plan.name);
    return proc;
  }

  /** The `cwd` of a node's process: its release's checkout, or none for this one. */
  #releaseOf(name: string): { cwd?: string } {
    const dir = this.#releases.get(name) ?? this.options.releaseDir;
    return dir === undefined ? {} : { cwd: dir };
  }

  /**
   * Makes a node's next start (a {@link LocalCluster.restart}) run the release checked out in
   * `dir` (`undefined`: this checkout), as a rolling upgrade replaces it. The running process is
   * left alone. @throws RangeError for an unknown name
   */
  useRelease(name: string, dir: string | undefined): void {
    if (!this.#nodes.has(name)) throw new RangeError(`no node ${name}`);
    this.#releases.set(name, dir ?? ROOT);
  }

  async #startNode(plan: NodePlan, readyWithinMs?: number): Promise<void> {
    const proc = this.#spawnNode(plan);
    const url = `http://${this.options.host}:${plan.metricsPort}/readyz`;
    await waitReady(
      proc,
      async () => (await probeReadiness(url, 1000)) === undefined,
      readyWithinMs ?? this.options.startTimeoutMs ?? 60_000,
      this.options.signal,
    );
  }

  /** Reports an exit nobody asked for; with `restartNodes`, restarts the node `node`. */
  #watch(proc: ManagedProcess, node?: string): void {
    const spawnedAt = Date.now();
    void proc.exited.then((status) => {
      if (proc.expected || this.#stopping !== undefined) return;
      const who = `${proc.spec.name}${proc.pid === undefined ? '' : ` (pid ${proc.pid})`}`;
      if (!this.#started) {
        // The start-up reports it and stops what was started; "keep running" would be wrong.
        this.options.log(`cluster: ${who} exited during start-up (${describeExit(status)})`);
        return;
      }
      this.options.log(
        `cluster: ${who} exited unexpectedly (${describeExit(status)}); the other processes keep running`,
      );
      if (node !== undefined && this.options.restartNodes === true)
        this.#scheduleRestart(node, Date.now() - spawnedAt);
    });
  }

  #scheduleRestart(name: string, ranMs: number): void {
    const log = this.options.log;
    const next = nextRestart(this.#restartStreak.get(name) ?? 0, ranMs);
    if (next === undefined) {
      log(
        `cluster: ${name} exited ${RESTART_POLICY.maxInStreak + 1} times in a row, each within ${RESTART_POLICY.stableMs / 1000} s of its start; not restarting it again (see its output above)`,
      );
      return;
    }
    this.#restartStreak.set(name, next.streak);
    const delay = next.delayMs;
    log(`cluster: restarting ${name} in ${delay} ms`);
    const timer = setTimeout(() => {
      this.#restartTimers.delete(timer);
      if (this.#stopping !== undefined) return;
      const triedAt = Date.now();
      this.restart(name, this.options.restartReadyWithinMs).catch((err: unknown) => {
        log(`cluster: restarting ${name} failed: ${(err as Error).message}`);
        // A try that exited is seen by #watch, which schedules the next one. A try still running
        // was not ready in time: left alone it would hold the node's ports, never be tried again,
        // and stay out of the balancer for good. It is stopped and counts as a short run.
        const entry = this.#nodes.get(name);
        if (this.#stopping !== undefined || entry === undefined || !entry.proc.running) return;
        log(`cluster: stopping ${name}'s try (pid ${entry.proc.pid ?? '?'}) to start it again`);
        void entry.proc.stop(this.#nodeGraceMs()).then(() => {
          if (this.#stopping === undefined) this.#scheduleRestart(name, Date.now() - triedAt);
        });
      });
    }, delay);
    this.#restartTimers.add(timer);
  }

  /**
   * Sends `signal` to a node or Redlock Redis (tests: SIGKILL a worker mid-fan-out). The exit is
   * reported as requested, not as unexpected. @returns false when it was not running
   */
  kill(name: string, signal: NodeJS.Signals = 'SIGKILL'): boolean {
    const proc = this.#nodes.get(name)?.proc ?? this.#redis.find((r) => r.name === name)?.proc;
    if (proc === undefined) throw new RangeError(`no process ${name}`);
    proc.expected = true;
    const sent = proc.signal(signal);
    if (sent) this.options.log(`cluster: sent ${signal} to ${name} (pid ${proc.pid ?? '?'})`);
    return sent;
  }

  /**
   * Stops one node's process as {@link LocalCluster.stop} does (SIGTERM, SIGKILL after
   * `graceMs`), its exit reported as requested; resolves once it exited. No-op when it is not
   * running. @throws RangeError for an unknown name
   */
  async stopNode(name: string, graceMs: number): Promise<void> {
    const entry = this.#nodes.get(name);
    if (entry === undefined) throw new RangeError(`no node ${name}`);
    if (!entry.proc.running) return;
    this.options.log(`cluster: stopping ${name} (pid ${entry.proc.pid ?? '?'})`);
    await entry.proc.stop(graceMs);
  }

  /**
   * Starts a node again (same ports, same settings) once its process has exited; waits ready, at
   * most `readyWithinMs` (default: the cluster's `startTimeoutMs`). A node not ready by then is
   * left running (a later `restart` says "still running"): a caller that tries again stops it
   * first ({@link LocalCluster.stopNode}).
   */
  async restart(name: string, readyWithinMs?: number): Promise<ClusterNode> {
    const entry = this.#nodes.get(name);
    if (entry === undefined) throw new RangeError(`no node ${name}`);
    if (entry.proc.running) throw new Error(`${name} is still running`);
    await this.#startNode(entry.plan, readyWithinMs);
    const node = this.node(name);
    this.options.log(`cluster: ${name} restarted (pid ${node.pid ?? '?'})`);
    return node;
  }

  /** The address block printed once the cluster runs. */
  describe(): string[] {
    const o = this.options;
    const nodes = this.nodes;
    const width = Math.max(
      ...nodes.map((n) => n.name.length),
      ...this.redlock.map((r) => r.name.length),
    );
    const lines = [
      '',
      `E4 C2 local cluster is running: ${o.apiNodes} API node(s), ${o.workers} worker(s), Redlock on ${this.#redis.length === 0 ? 'REDIS_URL' : `${this.#redis.length} private Redis`}`,
      ...(this.#lb === undefined
        ? []
        : [`  load balancer gRPC: ${this.lb.grpc}`, `  load balancer HTTP: ${this.lb.http}`]),
      ...nodes.map(
        (n) =>
          `  ${n.name.padEnd(width)}  pid ${String(n.pid ?? '?').padEnd(7)}` +
          (n.role === 'api' ? `  gRPC ${n.grpc ?? ''}  HTTP ${n.http ?? ''}` : '') +
          `  health ${n.health}`,
      ),
      ...this.redlock.map(
        (r) => `  ${r.name.padEnd(width)}  pid ${String(r.pid ?? '?').padEnd(7)}  ${r.url}`,
      ),
      `  PostgreSQL: ${redactUrl(o.databaseUrl)} (schema ${o.schema})`,
      `  queue Redis: ${redactUrl(o.redisUrl)}`,
      `  MQTT broker: ${o.mqttUrl}`,
      `  KEK: ${this.kek}`,
      '  stop with Ctrl-C',
      '',
    ];
    return lines;
  }

  /** A node's shutdown timeout (E4C2_SHUTDOWN_TIMEOUT_MS, default 10 s) plus 5 s before SIGKILL. */
  #nodeGraceMs(): number {
    return (Number(this.nodeEnv['E4C2_SHUTDOWN_TIMEOUT_MS'] ?? '') || 10_000) + 5000;
  }

  /**
   * Stops everything in reverse start order: the load balancer, the workers, the API nodes,
   * the Redlock Redis. Each node gets its shutdown timeout (E4C2_SHUTDOWN_TIMEOUT_MS, default
   * 10 s) plus 5 s before SIGKILL. Idempotent.
   */
  stop(): Promise<void> {
    this.#stopping ??= (async () => {
      const log = this.options.log;
      for (const timer of this.#restartTimers) clearTimeout(timer);
      this.#restartTimers.clear();
      const grace = this.#nodeGraceMs();
      if (this.#lb !== undefined) {
        log('cluster: stopping the load balancer');
        await this.#lb.close(500);
      }
      const entries = [...this.#nodes.values()];
      for (const role of ['worker', 'api'] as const) {
        const group = entries.filter((e) => e.plan.role === role && e.proc.running);
        if (group.length === 0) continue;
        log(`cluster: stopping ${group.map((e) => e.plan.name).join(', ')}`);
        await Promise.all(group.map((e) => e.proc.stop(grace)));
      }
      const redis = this.#redis.filter((r) => r.proc.running);
      if (redis.length > 0) {
        log(`cluster: stopping ${redis.map((r) => r.name).join(', ')}`);
        await Promise.all(redis.map((r) => r.proc.stop(5000)));
      }
      // Killed or crashed processes were already gone; wait for every exit to be observed.
      await Promise.all([...this.#processes()].map((p) => p.exited));
      process.off('exit', this.#killAll);
      log('cluster: stopped');
    })();
    return this.#stopping;
  }

  /** Last resort (a second Ctrl-C): SIGKILL every process still running. */
  killAll(): void {
    this.#killAll();
  }
}

function describeLbEvent(event: LbEvent): string | undefined {
  switch (event.type) {
    case 'backend-up':
      return `${event.backend} is up`;
    case 'backend-down':
      return `${event.backend} is down (${event.reason})`;
    case 'connect-failed':
      return undefined; // followed by backend-down or a retry on the next node
    case 'no-backend':
      return `no API node accepted a ${event.listener} connection (${event.tried} tried)`;
  }
}

/**
 * Ends a start-up that was asked to stop before its next step. Nothing of it runs yet, so it is
 * stopped as it is said (later, {@link LocalCluster.stop} says it).
 */
function interrupted(signal: AbortSignal | undefined, log: (line: string) => void): void {
  if (signal?.aborted !== true) return;
  log('cluster: stopped');
  throw new Error('start-up interrupted');
}

/** Starts a local cluster (see {@link LocalCluster.start}). */
export function startCluster(options: ClusterOptions): Promise<LocalCluster> {
  return LocalCluster.start(options);
}

// ---------------------------------------------------------------------------------------------
// The command

async function main(): Promise<void> {
  let parsed;
  try {
    parsed = parseClusterArgs(process.argv.slice(2), process.env);
  } catch (err) {
    process.stderr.write(`cluster: ${(err as Error).message}\n${USAGE}\n`);
    process.exit(2);
  }
  if (parsed === undefined) {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  // A reader that went away (`| head`, a closed terminal) must not crash the launcher before its
  // orderly stop: the output is dropped from then on.
  let outputGone = false;
  process.stdout.on('error', () => {
    outputGone = true;
  });
  const out = (line: string): void => {
    if (!outputGone) process.stdout.write(`${line}\n`);
  };
  const width = 'redlock-1'.length;
  const abort = new AbortController();
  let cluster: LocalCluster | undefined;
  // One Ctrl-C arrives twice under npm; only a second press, later, means "kill now".
  const signals = new StopSignals();
  const onSignal = (signal: NodeJS.Signals): void => {
    const meaning = signals.receive();
    if (meaning === 'copy') return;
    if (meaning === 'again') {
      out(`cluster: ${signal} again: killing every process`);
      cluster?.killAll();
      process.exit(130);
    }
    out(`cluster: ${signal}: stopping (again to kill)`);
    abort.abort();
    void cluster?.stop().then(() => process.exit(0));
  };
  // SIGHUP too: a closed terminal or a dropped SSH session must stop the children, not orphan
  // them (a process killed by a signal runs no exit handler).
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(signal, onSignal);
  try {
    cluster = await startCluster({
      ...parsed,
      host: CLUSTER_DEFAULTS.host,
      env: process.env,
      log: out,
      childOutput: (name, _stream, line) => {
        out(`${name.padEnd(width)} | ${line}`);
      },
      signal: abort.signal,
    });
  } catch (err) {
    if (abort.signal.aborted) {
      // Asked to stop during start-up: what was started has been stopped (and said so); not a
      // failure.
      process.exit(0);
    }
    process.stderr.write(`cluster: ${(err as Error).message}\n`);
    process.exit(1);
  }
  if (abort.signal.aborted) {
    await cluster.stop();
    process.exit(0);
  }
  for (const line of cluster.describe()) out(line);
}

const invoked = process.argv[1];
if (invoked !== undefined && resolve(invoked) === fileURLToPath(import.meta.url)) await main();
