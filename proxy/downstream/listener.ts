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
import { DownstreamConnection } from './connection.ts';
import type { ConnectionDeps } from './deps.ts';

/** A listening downstream server. */
export class DownstreamListener {
  readonly #connections = new Set<DownstreamConnection>();

  private constructor(
    private readonly server: Server,
    readonly tls: boolean,
    /**
     * TCP connections of the TLS listener whose handshake has not ended, by peer address (a close
     * cuts them).
     */
    private readonly handshaking: ReadonlyMap<string, Socket>,
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
    const handshaking = new Map<string, Socket>();
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
          // A client that connects and says nothing is cut as a plain one is (no CONNECT in
          // time), not after Node's default of 120 s.
          handshakeTimeout: deps.limits.connectTimeoutMs,
        },
        (socket: TLSSocket) => {
          handshaking.delete(peerOf(socket));
          const cn = socket.authorized ? commonNameOf(socket) : undefined;
          if (!socket.authorized && ca !== undefined) warnUnverified(socket, deps.logger);
          accept(socket, cn);
        },
      );
      server.on('connection', (raw: Socket) => {
        const peer = peerOf(raw);
        handshaking.set(peer, raw);
        raw.once('close', () => {
          if (handshaking.get(peer) === raw) handshaking.delete(peer);
        });
      });
      server.on('tlsClientError', (err: TlsClientError, socket: TLSSocket) => {
        const timeout = err.code === 'ERR_TLS_HANDSHAKE_TIMEOUT';
        deps.logger.warn(
          { err: handshakeFailure(err), code: err.code, remote: peerOf(socket) },
          'downstream TLS handshake failed',
        );
        deps.metrics.rejected.inc({ reason: timeout ? 'timeout' : 'auth' });
        // Node closes the socket after a TLS error, but not after a handshake timeout: it would
        // stay open (a descriptor each) until the client leaves, and hold up a stop.
        socket.destroy();
      });
    }
    await listenOn(server, host, port, 'listen');
    // Only once listening: a failure to listen is the start's error (listenOn names it), and a
    // line of its own here would report it twice.
    server.on('error', (err) => {
      deps.logger.error({ err: err.message }, 'downstream listener error');
    });
    const listener = new DownstreamListener(server, tls !== undefined, handshaking);
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
    // Not yet connections: the server's close would wait for their handshake timeout.
    for (const raw of this.handshaking.values()) raw.destroy();
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

/** A handshake error of Node's TLS server (OpenSSL's carry a `reason`). */
type TlsClientError = Error & { readonly code?: string; readonly reason?: string };

/** What went wrong, in a line an operator can act on (OpenSSL's message names source files). */
function handshakeFailure(err: TlsClientError): string {
  if (err.code === 'ERR_SSL_WRONG_VERSION_NUMBER' || err.code === 'ERR_SSL_HTTP_REQUEST') {
    return `not TLS (${err.reason ?? err.code}): a client speaking plain MQTT to the TLS listener?`;
  }
  return err.reason ?? err.message.split('\n')[0] ?? err.message;
}

/**
 * A client certificate that did not verify (another CA, expired) while client certificates are
 * optional: the client goes on as if it had presented none (a password, its client id, or the
 * gateway identity), which the operator could not tell from an intended fallback. Said once per
 * connection, with why; the presented name is the client's claim, not an identity.
 */
function warnUnverified(socket: TLSSocket, logger: ConnectionDeps['logger']): void {
  if (Object.keys(socket.getPeerCertificate()).length === 0) return; // none presented
  const reason = socket.authorizationError;
  logger.warn(
    {
      remote: peerOf(socket),
      claimedCommonName: commonNameOf(socket),
      reason: reason instanceof Error ? reason.message : String(reason),
    },
    'downstream client certificate not verified: the client is authenticated as if it had presented none',
  );
}

/** The peer's address and port: one TCP connection among those open. */
function peerOf(socket: Socket): string {
  return `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? '?'}`;
}

function commonNameOf(socket: TLSSocket): string | undefined {
  const cn = socket.getPeerCertificate().subject.CN;
  return typeof cn === 'string' ? cn : Array.isArray(cn) ? cn[0] : undefined;
}
