/**
 * A small layer-4 load balancer for local clusters (`npm run cluster`, the cluster tests): one
 * {@link TcpProxy} per listener (gRPC, HTTP) in front of the same set of backends, round-robin
 * over the backends that pass their active health check ({@link HealthChecker} on each backend's
 * `/readyz`), failing over to the next backend when a connect fails before any byte was
 * forwarded. When no backend is up it tries them all in turn ("fail open", as a proxy in panic
 * mode would), so a health endpoint that is down alone never takes the service down.
 *
 * It is not a production load balancer (see `docker-compose.ha.yml` for HAProxy): no TLS
 * termination, no per-request balancing of HTTP/2 streams, no configuration reload.
 */
import {
  HealthChecker,
  type HealthChange,
  type HealthCheckOptions,
  type HealthState,
} from './health-checker.ts';
import { TcpProxy, type ProxyStats, type ProxyTarget } from './tcp-proxy.ts';

/** One backend: a node with a port per listener and a readiness URL. */
export interface LbBackend {
  readonly name: string;
  readonly host: string;
  /** Port of this backend for each listener name; a listener skips backends without one. */
  readonly ports: Readonly<Record<string, number>>;
  /** `http://host:port/readyz` of the node's operations listener. */
  readonly healthUrl: string;
}

/** One listening address of the balancer. */
export interface LbListener {
  readonly name: string;
  readonly host: string;
  /** 0 picks a free port. */
  readonly port: number;
}

/** What the balancer reports, for logs. */
export type LbEvent =
  | { readonly type: 'backend-up'; readonly backend: string; readonly reason: string }
  | { readonly type: 'backend-down'; readonly backend: string; readonly reason: string }
  | {
      readonly type: 'connect-failed';
      readonly listener: string;
      readonly backend: string;
      readonly code: string;
    }
  | { readonly type: 'no-backend'; readonly listener: string; readonly tried: number };

/** Options of {@link LoadBalancer.start}. */
export interface LoadBalancerOptions {
  readonly listeners: readonly LbListener[];
  readonly backends: readonly LbBackend[];
  readonly health?: Partial<HealthCheckOptions>;
  /** Deadline of one connect to a backend. Default 1000 ms. */
  readonly connectTimeoutMs?: number;
  /** Most client connections per listener. Default 1024. */
  readonly maxConnections?: number;
  /** Idle connections are closed after this long. Default one hour (gRPC streams idle long). */
  readonly idleTimeoutMs?: number;
  readonly onEvent?: (event: LbEvent) => void;
}

/** A backend as the balancer sees it. */
export interface LbBackendStatus {
  readonly name: string;
  readonly state: HealthState;
  readonly reason: string;
}

/** Connect errors that say "nothing listens there": the backend is taken out at once. */
const DEAD_BACKEND = new Set(['ECONNREFUSED', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH']);

/** A running load balancer. */
export class LoadBalancer {
  readonly #cursor = new Map<string, number>();
  #closed: Promise<void> | undefined;

  private constructor(
    private readonly checker: HealthChecker,
    private readonly proxies: ReadonlyMap<string, TcpProxy>,
    private readonly backendList: readonly LbBackend[],
  ) {}

  /**
   * Probes every backend once, then listens.
   * @throws RangeError on a bad configuration; Error when a listener cannot be bound
   */
  static async start(options: LoadBalancerOptions): Promise<LoadBalancer> {
    const names = new Set(options.listeners.map((l) => l.name));
    if (names.size !== options.listeners.length) throw new RangeError('duplicate listener name');
    if (options.backends.length === 0) throw new RangeError('a load balancer needs a backend');
    const emit = options.onEvent ?? (() => undefined);
    const checker = new HealthChecker(
      options.backends.map((b) => ({ name: b.name, url: b.healthUrl })),
      options.health,
      (change: HealthChange) => {
        emit({
          type: change.state === 'up' ? 'backend-up' : 'backend-down',
          backend: change.name,
          reason: change.reason,
        });
      },
    );
    const proxies = new Map<string, TcpProxy>();
    const holder: { self?: LoadBalancer } = {};
    try {
      await checker.start();
      for (const listener of options.listeners) {
        proxies.set(
          listener.name,
          await TcpProxy.listen({
            name: listener.name,
            host: listener.host,
            port: listener.port,
            candidates: () => holder.self?.candidates(listener.name) ?? [],
            maxConnectAttempts: Math.min(8, options.backends.length),
            ...(options.connectTimeoutMs === undefined
              ? {}
              : { connectTimeoutMs: options.connectTimeoutMs }),
            ...(options.maxConnections === undefined
              ? {}
              : { maxConnections: options.maxConnections }),
            ...(options.idleTimeoutMs === undefined
              ? {}
              : { idleTimeoutMs: options.idleTimeoutMs }),
            onConnectError: (target, code) => {
              emit({ type: 'connect-failed', listener: listener.name, backend: target.name, code });
              if (DEAD_BACKEND.has(code)) checker.markDown(target.name, `connect failed: ${code}`);
            },
            onNoBackend: (tried) => {
              emit({ type: 'no-backend', listener: listener.name, tried });
            },
          }),
        );
      }
    } catch (err) {
      checker.close();
      await Promise.all([...proxies.values()].map((p) => p.close(0)));
      throw err;
    }
    holder.self = new LoadBalancer(checker, proxies, options.backends);
    return holder.self;
  }

  /**
   * Backends for a new connection on `listener`, in the order to try them: the healthy ones,
   * starting one further each time (round robin); when none is healthy, all of them.
   */
  candidates(listener: string): ProxyTarget[] {
    const withPort = this.backendList.filter((b) => b.ports[listener] !== undefined);
    const up = withPort.filter((b) => this.checker.state(b.name) === 'up');
    const pool = up.length > 0 ? up : withPort;
    if (pool.length === 0) return [];
    const start = (this.#cursor.get(listener) ?? 0) % pool.length;
    this.#cursor.set(listener, start + 1);
    return [...pool.slice(start), ...pool.slice(0, start)].map((b) => ({
      name: b.name,
      host: b.host,
      port: b.ports[listener] ?? 0,
    }));
  }

  /** `host:port` of a listener. @throws RangeError for an unknown listener */
  address(listener: string): { readonly host: string; readonly port: number } {
    const proxy = this.proxies.get(listener);
    if (proxy === undefined) throw new RangeError(`no listener ${listener}`);
    return proxy.address;
  }

  /** Every backend with its health state. */
  backends(): LbBackendStatus[] {
    return this.checker.snapshot();
  }

  /** Counters of every listener. */
  stats(): Record<string, ProxyStats> {
    return Object.fromEntries([...this.proxies].map(([name, p]) => [name, p.stats()]));
  }

  /**
   * Stops probing and accepting, lets open connections finish for up to `graceMs`, then closes
   * the rest. Idempotent.
   */
  close(graceMs = 1000): Promise<void> {
    this.#closed ??= (async () => {
      this.checker.close();
      await Promise.all([...this.proxies.values()].map((p) => p.close(graceMs)));
    })();
    return this.#closed;
  }
}
