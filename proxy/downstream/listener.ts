/**
 * The downstream MQTT listener: plain TCP, or TLS with optional client certificates (whose
 * verified common name can select a device's identity).
 */
import { readFile } from 'node:fs/promises';
import {
  createServer as createTcpServer,
  type AddressInfo,
  type Server,
  type Socket,
} from 'node:net';
import { createServer as createTlsServer, type TLSSocket } from 'node:tls';
import type { ListenTls } from '../config.ts';
import { DownstreamConnection, type ConnectionDeps } from './connection.ts';

/** A listening downstream server. */
export class DownstreamListener {
  readonly #connections = new Set<DownstreamConnection>();

  private constructor(
    private readonly server: Server,
    readonly tls: boolean,
  ) {}

  /**
   * Listens on `host:port` (port 0: a free port).
   * @throws the listen error (address in use, no permission)
   */
  static async start(
    host: string,
    port: number,
    tls: ListenTls | undefined,
    deps: ConnectionDeps,
  ): Promise<DownstreamListener> {
    let server: Server;
    const holder: { listener?: DownstreamListener } = {};
    const accept = (socket: Socket, commonName: string | undefined): void => {
      socket.setNoDelay(true);
      const connection = new DownstreamConnection(socket, deps, commonName);
      const listener = holder.listener;
      if (listener === undefined) {
        connection.close();
        return;
      }
      const set = listener.#connections;
      set.add(connection);
      connection.onClosed(() => set.delete(connection));
    };
    if (tls === undefined) {
      server = createTcpServer((socket) => {
        accept(socket, undefined);
      });
    } else {
      const ca = tls.caFile === undefined ? undefined : await readFile(tls.caFile);
      server = createTlsServer(
        {
          cert: await readFile(tls.certFile),
          key: await readFile(tls.keyFile),
          minVersion: 'TLSv1.2',
          ...(ca === undefined ? {} : { ca, requestCert: true }),
          rejectUnauthorized: tls.requireClientCert,
        },
        (socket: TLSSocket) => {
          const cn = socket.authorized ? commonNameOf(socket) : undefined;
          accept(socket, cn);
        },
      );
      server.on('tlsClientError', (err: Error) => {
        deps.logger.warn({ err: err.message }, 'downstream TLS handshake failed');
        deps.metrics.rejected.inc({ reason: 'auth' });
      });
    }
    server.on('error', (err) => {
      deps.logger.error({ err: err.message }, 'downstream listener error');
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    const listener = new DownstreamListener(server, tls !== undefined);
    holder.listener = listener;
    return listener;
  }

  /** The bound address. */
  get address(): { host: string; port: number } {
    const a = this.server.address() as AddressInfo;
    return { host: a.address, port: a.port };
  }

  /** Open connections. */
  get connections(): number {
    return this.#connections.size;
  }

  /** Stops listening and closes every connection. */
  async close(): Promise<void> {
    const closed = new Promise<void>((resolve) => {
      this.server.close(() => {
        resolve();
      });
    });
    for (const c of [...this.#connections]) c.close();
    await closed;
  }
}

function commonNameOf(socket: TLSSocket): string | undefined {
  const cn = socket.getPeerCertificate().subject.CN;
  return typeof cn === 'string' ? cn : Array.isArray(cn) ? cn[0] : undefined;
}
