/**
 * The downstream MQTT listener: plain TCP, or TLS with optional client certificates (whose
 * verified common name can select a device's identity).
 */
import {
  createServer as createTcpServer,
  type AddressInfo,
  type Server,
  type Socket,
} from 'node:net';
import { createSecureContext, createServer as createTlsServer, type TLSSocket } from 'node:tls';
import { checkSettingFile, readCaFile, readSettingFile, type ListenTls } from '../config.ts';
import { listenOn } from '../listen.ts';
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
   * @throws ProxyError `PROXY_CONFIG` naming a TLS file that is not usable; `PROXY_LISTEN` naming
   *   `listen.port` when the port is in use or not allowed
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
      const { cert, key, ca } = readTlsFiles(tls);
      server = createTlsServer(
        {
          cert,
          key,
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
    await listenOn(server, host, port, 'listen');
    // Only once listening: a failure to listen is the start's error (listenOn names it), and a
    // line of its own here would report it twice.
    server.on('error', (err) => {
      deps.logger.error({ err: err.message }, 'downstream listener error');
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

/**
 * Reads the listener's TLS files and checks each on its own, so that a file that is not what it
 * should be is named (OpenSSL's own message names none).
 * @throws ProxyError `PROXY_CONFIG`
 */
function readTlsFiles(tls: ListenTls): { cert: Buffer; key: Buffer; ca?: Buffer } {
  const read = (setting: string, path: string): Buffer =>
    readSettingFile(`listen.tls.${setting}`, path);
  const check = (setting: string, path: string, what: string, use: () => unknown): void => {
    checkSettingFile(`listen.tls.${setting}`, path, what, use);
  };
  const cert = read('certFile', tls.certFile);
  const key = read('keyFile', tls.keyFile);
  const ca = tls.caFile === undefined ? undefined : readCaFile('listen.tls.caFile', tls.caFile);
  check('certFile', tls.certFile, 'is not a PEM certificate', () => createSecureContext({ cert }));
  check('keyFile', tls.keyFile, 'is not an unencrypted PEM private key', () =>
    createSecureContext({ key }),
  );
  check('keyFile', tls.keyFile, `is not the key of listen.tls.certFile ${tls.certFile}`, () =>
    createSecureContext({ cert, key }),
  );
  return ca === undefined ? { cert, key } : { cert, key, ca };
}

function commonNameOf(socket: TLSSocket): string | undefined {
  const cn = socket.getPeerCertificate().subject.CN;
  return typeof cn === 'string' ? cn : Array.isArray(cn) ? cn[0] : undefined;
}
