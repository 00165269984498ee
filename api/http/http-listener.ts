/**
 * The listening side of the HTTP surface: node:http without TLS; with TLS, node:http2's secure
 * server that also speaks HTTP/1.1, whichever the client offers in ALPN.
 *
 * Why HTTP/2: a browser opens at most six HTTP/1.1 connections per origin, and every console tab
 * holds one for its event stream (`event-sse.ts`), so a seventh tab never loaded. Over HTTP/2 a
 * browser multiplexes every tab's requests and streams on one connection. Clients that speak
 * only HTTP/1.1 (curl without --http2, the reference clients, the CLI, the balancer's probes)
 * negotiate it as before. Plain HTTP stays HTTP/1.1: browsers speak HTTP/2 only over TLS.
 *
 * The handler receives node:http2's compatibility request and response for HTTP/2 streams. They
 * offer what this surface uses of `IncomingMessage` and `ServerResponse` (method, url, headers,
 * socket, body reading, `writeHead`/`write`/`end`, `writableLength`, `drain`, `close`), with two
 * differences the server handles: HTTP/2 carries the host as `:authority` (`request-host.ts`),
 * connection-specific headers (`connection`, `keep-alive`) do not exist there
 * (`http1Connection`), and a response cut short resets its stream, not the connection
 * (`abortResponse`).
 */
import {
  createServer as createHttpServer,
  type IncomingMessage,
  type ServerResponse,
} from 'node:http';
import {
  constants as http2Constants,
  createSecureServer,
  type Http2Session,
  type ServerHttp2Stream,
} from 'node:http2';
import type { Server, Socket } from 'node:net';

/** Answers one request, HTTP/1.1 or HTTP/2. */
export type RequestListener = (req: IncomingMessage, res: ServerResponse) => void;

/** PEM certificate chain and key; with `clientCa`, mutual TLS is required. */
export interface ListenerTls {
  readonly cert: Buffer;
  readonly key: Buffer;
  readonly clientCa?: Buffer;
}

/**
 * Streams one HTTP/2 connection may have open at once (SETTINGS_MAX_CONCURRENT_STREAMS): a
 * browser's tabs share one connection, each holding an event stream and a few requests; more is
 * one client taking more than its share, and waits (nginx and Go default to 128 and 250).
 */
export const MAX_CONCURRENT_STREAMS = 128;

/**
 * An HTTP/2 connection without a frame either way for this long is asked to go (GOAWAY), as an
 * idle HTTP/1.1 connection is closed after `keepAliveTimeout`: else a client could hold
 * connections open without sending anything. The console's event streams send a heartbeat
 * every 15 s, so an open console is never idle.
 */
export const HTTP2_IDLE_TIMEOUT_MS = 60_000;

/**
 * How long an HTTP/2 connection asked to go for being idle may take to close before it is cut,
 * if its client does not read. A client closes at once, or once its last stream ends; but
 * node:http2 closes only after its GOAWAY and whatever else is queued have been written, and a
 * client that stopped reading (its TCP window closed) never takes them: without this the
 * connection, and the megabytes queued to it, would stay until the node stops.
 */
export const HTTP2_CLOSE_GRACE_MS = 30_000;

/** node:http's default for idle HTTP/1.1 connections, which node:http2's fallback lacks. */
const HTTP1_KEEP_ALIVE_TIMEOUT_MS = 5_000;

/** A server and the ways to wind its connections down. */
export interface HttpListener {
  /** Listens, emits `listening` and `clientError` (malformed HTTP/1.x requests). */
  readonly server: Server;
  /**
   * Stops accepting connections and asks every HTTP/2 client to open no more streams (GOAWAY);
   * streams and requests already started go on. Resolves once every connection has closed.
   */
  stop(): Promise<void>;
  /** Closes the HTTP/1.1 connections that wait between requests (keep-alive). */
  closeIdle(): void;
  /** Closes every connection now, whatever it is doing. */
  closeAll(): void;
}

/** The HTTP/2 connection timers, shorter in tests. */
export interface ListenerTimers {
  /** Default {@link HTTP2_IDLE_TIMEOUT_MS}. */
  readonly http2IdleTimeoutMs?: number;
  /** Default {@link HTTP2_CLOSE_GRACE_MS}. */
  readonly http2CloseGraceMs?: number;
}

/** Creates the server: node:http without `tls`, node:http2 (with HTTP/1.1) with it. */
export function createListener(
  tls: ListenerTls | undefined,
  listener: RequestListener,
  timers: ListenerTimers = {},
): HttpListener {
  if (tls === undefined) {
    const server = createHttpServer(listener);
    return {
      server,
      stop: () => closeServer(server),
      closeIdle: () => {
        server.closeIdleConnections();
      },
      closeAll: () => {
        server.closeAllConnections();
      },
    };
  }
  const server = createSecureServer(
    {
      cert: tls.cert,
      key: tls.key,
      minVersion: 'TLSv1.2',
      allowHTTP1: true,
      settings: { maxConcurrentStreams: MAX_CONCURRENT_STREAMS },
      ...(tls.clientCa === undefined
        ? {}
        : { ca: tls.clientCa, requestCert: true, rejectUnauthorized: true }),
    },
    // The compatibility API's request and response stand in for node:http's (see above).
    listener as unknown as Parameters<typeof createSecureServer>[1],
  );
  // node:http2 leaves this undefined, and its HTTP/1.1 connections would then idle forever.
  (server as unknown as { keepAliveTimeout: number }).keepAliveTimeout =
    HTTP1_KEEP_ALIVE_TIMEOUT_MS;
  let stopping = false;
  const sessions = new Set<Http2Session>();
  /** The TCP connections by their endpoints: a session shows its socket only through a proxy. */
  const sockets = new Map<string, Socket>();
  server.on('connection', (socket: Socket) => {
    const key = endpoints(socket);
    sockets.set(key, socket);
    socket.once('close', () => {
      if (sockets.get(key) === socket) sockets.delete(key);
    });
  });
  server.on('session', (session: Http2Session) => {
    sessions.add(session);
    session.once('close', () => sessions.delete(session));
    const socket = sockets.get(endpoints(session.socket));
    session.setTimeout(timers.http2IdleTimeoutMs ?? HTTP2_IDLE_TIMEOUT_MS, () => {
      session.close();
      if (socket === undefined) return;
      const cut = setTimeout(() => {
        if (peerStoppedReading(session)) socket.destroy();
      }, timers.http2CloseGraceMs ?? HTTP2_CLOSE_GRACE_MS);
      cut.unref();
      socket.once('close', () => {
        clearTimeout(cut);
      });
    });
    // A connection accepted just before the stop negotiates its session after it.
    if (stopping) session.close();
  });
  return {
    server,
    stop: () => {
      stopping = true;
      const closed = closeServer(server);
      // GOAWAY: the client opens no new stream here (it reconnects, to another node behind a
      // balancer); the session closes once its last stream has ended. Node's `server.close()`
      // does not do this itself (Node 20), and would wait for every session to end on its own.
      for (const session of sessions) session.close();
      return closed;
    },
    closeIdle: () => {
      // Node ≥ 20.12 closes the idle HTTP/1.1 connections of a server with `allowHTTP1`.
      (server as unknown as { closeIdleConnections?: () => void }).closeIdleConnections?.();
    },
    closeAll: () => {
      for (const session of sessions) session.destroy();
      for (const socket of sockets.values()) socket.destroy();
    },
  };
}

/**
 * Whether a session asked to go has not let its GOAWAY out, or is gone and waits only for the
 * peer to close its end: either way the peer is not reading. A session that sent it and still
 * has streams open keeps them (a request whose body is late gets its 408 in time).
 */
function peerStoppedReading(session: Http2Session): boolean {
  return session.destroyed || (session.state.outboundQueueSize ?? 0) > 0;
}

/** A TCP connection's two endpoints, which tell it from every other connection of the server. */
function endpoints(
  socket: Pick<Socket, 'localAddress' | 'localPort' | 'remoteAddress' | 'remotePort'>,
): string {
  return `${socket.localAddress ?? ''}:${socket.localPort ?? 0} ${socket.remoteAddress ?? ''}:${socket.remotePort ?? 0}`;
}

function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) =>
    server.close(() => {
      resolve();
    }),
  );
}

/**
 * `{ connection: value }` for an HTTP/1.x request, nothing for HTTP/2, where connection-specific
 * headers are forbidden (RFC 9113 §8.2.2; Node drops them with a warning): a closing HTTP/2
 * connection is told by GOAWAY instead ({@link HttpListener.stop}).
 */
export function http1Connection(
  req: Pick<IncomingMessage, 'httpVersionMajor'>,
  value: 'close' | 'keep-alive',
): Record<string, string> {
  return req.httpVersionMajor === 1 ? { connection: value } : {};
}

/** The HTTP/2 stream under a compatibility response; undefined for an HTTP/1.x response. */
export function http2StreamOf(res: ServerResponse): ServerHttp2Stream | undefined {
  return (res as unknown as { stream?: ServerHttp2Stream }).stream;
}

/**
 * Abandons a response partway through so that the client knows it was cut short. An HTTP/1.x
 * connection is closed: once the body has started nothing else can say so. Over HTTP/2 only the
 * response's stream is reset, with CANCEL, and the connection's other streams go on; the
 * compatibility `destroy()` would reset it with NO_ERROR, which a client takes for the end of a
 * complete response.
 */
export function abortResponse(res: ServerResponse): void {
  const stream = http2StreamOf(res);
  if (stream === undefined) {
    res.destroy();
    return;
  }
  // The code first (close), then the stream's buffers are released now (destroy), even when the
  // connection is too stuck to send the reset soon.
  stream.close(http2Constants.NGHTTP2_CANCEL);
  stream.destroy();
}
