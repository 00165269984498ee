/**
 * The operations listener of every process (`E4C2_METRICS_ADDR`): `/healthz` (liveness),
 * `/readyz` (readiness, 503 while a dependency is down or the process drains) and, when a
 * handler is given, `/metrics`. Workers have no API listener, so this is how orchestrators and
 * load balancers probe them.
 */
import { createServer, type Server } from 'node:http';
import { C2Error } from '../errors.ts';

/** A readiness check result. */
export interface ReadinessResult {
  readonly ready: boolean;
  readonly checks: Readonly<Record<string, boolean>>;
}

/** Options of {@link HealthServer.start}. */
export interface HealthServerOptions {
  readonly host: string;
  readonly port: number;
  readonly readiness: () => Promise<ReadinessResult>;
  /** Serves `/metrics` (Prometheus text) when given. */
  readonly metrics?: () => Promise<{ contentType: string; body: string }>;
}

/** A running operations listener. */
export class HealthServer {
  #draining = false;
  #closed: Promise<void> | undefined;

  private constructor(
    private readonly server: Server,
    readonly address: { readonly host: string; readonly port: number },
  ) {}

  /** @throws C2Error `C2_UNAVAILABLE` when the address cannot be bound */
  static async start(options: HealthServerOptions): Promise<HealthServer> {
    const holder: { self?: HealthServer } = {};
    const server = createServer((req, res) => {
      const path = (req.url ?? '/').split('?')[0];
      const reply = (status: number, body: unknown, type = 'application/json'): void => {
        res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store' });
        // HEAD (probes that only want the status) gets the headers alone.
        res.end(
          req.method === 'HEAD'
            ? undefined
            : typeof body === 'string'
              ? body
              : JSON.stringify(body),
        );
      };
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        res.setHeader('allow', 'GET, HEAD');
        reply(405, { error: 'method not allowed' });
        return;
      }
      if (path === '/healthz') {
        reply(200, { status: 'ok' });
        return;
      }
      if (path === '/readyz') {
        void options.readiness().then(
          (r) => {
            const ready = r.ready && holder.self?.draining !== true;
            // The shape of the API port's /readyz: each check as { ok }.
            const checks = Object.fromEntries(
              Object.entries(r.checks).map(([name, ok]) => [name, { ok }]),
            );
            reply(ready ? 200 : 503, { ready, checks });
          },
          () => {
            reply(503, { ready: false, checks: {} });
          },
        );
        return;
      }
      if (path === '/metrics' && options.metrics !== undefined) {
        void options.metrics().then(
          (m) => {
            reply(200, m.body, m.contentType);
          },
          () => {
            reply(500, { error: 'metrics unavailable' });
          },
        );
        return;
      }
      reply(404, { error: 'not found' });
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', (err: NodeJS.ErrnoException) => {
        reject(
          new C2Error(
            'C2_UNAVAILABLE',
            err.code === 'EADDRINUSE'
              ? `port ${options.port} on ${options.host} is already in use (E4C2_METRICS_ADDR)`
              : `cannot listen on ${options.host}:${options.port}`,
            { cause: err },
          ),
        );
      });
      server.listen(options.port, options.host, resolve);
    });
    const bound = server.address();
    const port = typeof bound === 'object' && bound !== null ? bound.port : options.port;
    holder.self = new HealthServer(server, { host: options.host, port });
    return holder.self;
  }

  /** True once the process started draining. */
  get draining(): boolean {
    return this.#draining;
  }

  /** Readiness off (draining), before the process closes its other resources. */
  drain(): void {
    this.#draining = true;
  }

  /** Closes the listener; idempotent. */
  close(): Promise<void> {
    this.#closed ??= new Promise<void>((resolve) => {
      this.#draining = true;
      this.server.close(() => {
        resolve();
      });
      this.server.closeAllConnections();
    });
    return this.#closed;
  }
}
