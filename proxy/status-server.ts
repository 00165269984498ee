/** The proxy's HTTP endpoint: `/healthz` (JSON status) and `/metrics` (Prometheus text). */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { listenOn } from './listen.ts';
import type { ProxyMetrics } from './metrics.ts';

/** What `/healthz` reports. */
export interface ProxyStatus {
  readonly status: 'ok' | 'degraded';
  readonly mode: string;
  readonly upstreamConnected: boolean;
  readonly identities: number;
  readonly downstreamConnections: number;
  readonly listen: string;
}

/** The running endpoint. */
export class StatusServer {
  private constructor(private readonly server: Server) {}

  /**
   * Serves on `host:port` (0: a free port).
   * @throws ProxyError `PROXY_LISTEN` naming `health.port` when the port is in use
   */
  static async start(
    host: string,
    port: number,
    status: () => ProxyStatus,
    metrics: ProxyMetrics,
  ): Promise<StatusServer> {
    const server = createServer((req, res) => {
      const path = (req.url ?? '/').split('?')[0];
      if (req.method !== 'GET') {
        res.writeHead(405, { allow: 'GET' }).end();
        return;
      }
      if (path === '/healthz') {
        const s = status();
        res
          .writeHead(s.status === 'ok' ? 200 : 503, { 'content-type': 'application/json' })
          .end(JSON.stringify(s));
        return;
      }
      if (path === '/metrics') {
        metrics.registry.metrics().then(
          (text) => {
            res.writeHead(200, { 'content-type': metrics.registry.contentType }).end(text);
          },
          () => {
            res.writeHead(500).end();
          },
        );
        return;
      }
      res.writeHead(404, { 'content-type': 'application/json' }).end('{"error":"not found"}');
    });
    await listenOn(server, host, port, 'health');
    return new StatusServer(server);
  }

  /** The bound address. */
  get address(): { host: string; port: number } {
    const a = this.server.address() as AddressInfo;
    return { host: a.address, port: a.port };
  }

  /** Stops serving. */
  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => {
      this.server.close(() => {
        resolve();
      });
    });
  }
}
