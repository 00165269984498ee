/**
 * The HTTP/JSON surface on node:http (or, with a certificate, node:http2 speaking HTTP/2 and
 * HTTP/1.1: `http-listener.ts`): the reference routes, ours under `/v1`, and the probes. No
 * framework: one explicit route table and one dispatcher.
 */
import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { constants as http2Constants } from 'node:http2';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { TLSSocket } from 'node:tls';
import { status as GrpcStatus } from '@grpc/grpc-js';
import { callerOf, type ApiDeps, type ApiLogger } from '../api-types.ts';
import { verifiedCertificate } from '../auth/client-certificate.ts';
import { encodeMessage } from '../codec/proto-json.ts';
import type { ProtoSchema } from '../codec/protos.ts';
import { describeFailure, transportFailure, type ApiFailure } from '../errors-map.ts';
import {
  checkIdempotencyKey,
  elapsedMs,
  listenFailure,
  type BoundAddress,
} from '../transport-common.ts';
import {
  API_SECURITY_HEADERS,
  BodyTimeout,
  errorBody,
  PayloadTooLarge,
  readBody,
  sendJson,
  type ErrorStyle,
} from './http-io.ts';
import { buildRequestMessage } from './request-message.ts';
import type { ConsoleFiles } from './console-files.ts';
import { refuseCrossOrigin } from './cross-site.ts';
import { refuseUnknownHost } from './host-guard.ts';
import {
  createListener,
  http1Connection,
  http2StreamOf,
  type HttpListener,
} from './http-listener.ts';
import { requestHost } from './request-host.ts';
import { matchPath } from './router.ts';
import type { HttpRoute } from './routes.ts';

/** Options of {@link HttpApiServer.start}. */
export interface HttpServerOptions {
  readonly host: string;
  readonly port: number;
  /** PEM certificate chain and key: HTTPS when given; with `clientCa`, mutual TLS is required. */
  readonly tls?: { readonly cert: Buffer; readonly key: Buffer; readonly clientCa?: Buffer };
  /** Largest request body, in bytes; more is answered 413. */
  readonly maxBodyBytes: number;
  /**
   * Longest wait for a request body, from the moment it is read; then 408. Default
   * `DEFAULT_BODY_TIMEOUT_MS` (http-io.ts, 300 s).
   */
  readonly bodyTimeoutMs?: number;
  readonly routes: readonly HttpRoute[];
  readonly schema: ProtoSchema;
  readonly deps: ApiDeps;
  /** The web console, served under `/console/` (public files: no authentication). */
  readonly console?: ConsoleFiles;
  /**
   * Set while callers are not authenticated: API requests must then name an IP address,
   * `localhost`, or one of these host names (lower case), against DNS rebinding
   * (`host-guard.ts`). Probes and the console's files are served whatever the host.
   */
  readonly allowedHosts?: ReadonlySet<string>;
}

const MUTATING = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

function firstHeader(req: IncomingMessage, name: string): string | undefined {
  const value = req.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

/** A running HTTP listener. */
export class HttpApiServer {
  #inFlight = 0;
  #closing = false;
  /** Ends long-lived (server-sent events) responses when the server closes. */
  readonly #streamsClosing = new AbortController();
  #closed: Promise<void> | undefined;

  private constructor(
    private readonly listener: HttpListener,
    private readonly options: HttpServerOptions,
    private readonly log: ApiLogger,
    /** Where it listens (the real port when 0 was asked for). */
    readonly address: BoundAddress,
  ) {}

  /**
   * Starts listening.
   * @throws C2Error `C2_UNAVAILABLE` when the address cannot be bound (e.g. the port is in use)
   */
  static async start(options: HttpServerOptions): Promise<HttpApiServer> {
    const log = options.deps.logger.child?.({ surface: 'http' }) ?? options.deps.logger;
    const holder: { api?: HttpApiServer } = {};
    const telemetry = options.deps.telemetry;
    for (const route of options.routes)
      if (route.kind !== 'probe') telemetry?.serves('http', route.rpc);
    const listener = (req: IncomingMessage, res: ServerResponse): void => {
      const api = holder.api;
      if (api === undefined) return;
      if (telemetry === undefined) void api.handle(req, res);
      else
        void telemetry.serve('http', `HTTP ${req.method ?? 'GET'}`, async () => ({
          method: await api.handle(req, res),
          status: res.statusCode,
        }));
    };
    const served = createListener(options.tls, listener);
    const server = served.server;
    // Node's HTTP/1.x parser refused a request (on either server; HTTP/2 framing errors end the
    // session with a GOAWAY that Node sends itself).
    server.on('clientError', (err: Error & { code?: string }, socket: Duplex) => {
      const requestId = randomUUID();
      log.debug({ err, requestId }, 'malformed HTTP request');
      if (socket.writable) socket.end(malformedRequestAnswer(err, requestId));
    });
    try {
      server.listen(options.port, options.host);
      await once(server, 'listening');
    } catch (err) {
      throw listenFailure('HTTP', options.host, options.port, (err as Error).message, err);
    }
    const bound = server.address() as AddressInfo;
    holder.api = new HttpApiServer(served, options, log, { host: options.host, port: bound.port });
    return holder.api;
  }

  /** Requests being handled now. */
  get inFlight(): number {
    return this.#inFlight;
  }

  /** Answers one request. @returns the metrics label: its RPC, probe path or `unmatched` */
  private async handle(req: IncomingMessage, res: ServerResponse): Promise<string> {
    const requestId = randomUUID();
    const started = performance.now();
    this.#inFlight++;
    res.once('close', () => this.#inFlight--);
    const headers: Record<string, string> = { 'x-request-id': requestId };
    // HTTP/1.1 is told to stop here; HTTP/2 had its GOAWAY (`close()`).
    if (this.#closing) Object.assign(headers, http1Connection(req, 'close'));
    let style: ErrorStyle = 'v1';
    let rpc = '';
    /** Who called, once authenticated: a refused or failed request is attributed too. */
    let caller: string | undefined;
    /** The query names of the matched route's fields (`after` for `after_seq`). */
    let queryAliases: Readonly<Record<string, string>> = {};
    const method = req.method ?? 'GET';
    const target = req.url ?? '/';
    const queryAt = target.indexOf('?');
    const rawPath = queryAt < 0 ? target : target.slice(0, queryAt);
    if (this.options.console?.serve(method, rawPath, res, headers) === true) return 'console';
    try {
      if (!rawPath.startsWith('/')) throw transportError('C2_NOT_FOUND', `no route for ${rawPath}`);
      const segments = rawPath.slice(1).split('/');
      if (segments[0] === 'e4') style = 'gateway';
      const matches: Array<{ route: HttpRoute; params: Record<string, string> }> = [];
      for (const route of this.options.routes) {
        const params = matchPath(route.pattern, segments);
        if (params !== undefined) matches.push({ route, params });
      }
      if (matches.length === 0)
        throw transportError('C2_NOT_FOUND', `no route for ${method} ${rawPath}`);
      // Probes answer HEAD too (load balancers that only want the status); Node sends no body.
      const match = matches.find(
        (m) => m.route.method === method || (method === 'HEAD' && m.route.kind === 'probe'),
      );
      if (match === undefined) {
        const allow = [...new Set(matches.map((m) => m.route.method))].join(', ');
        headers['allow'] = allow;
        throw transportError('C2_VALIDATION', `${method} is not allowed here; use ${allow}`, {
          http: 405,
          grpc: GrpcStatus.UNIMPLEMENTED,
          details: { allow },
        });
      }
      const { route, params } = match;
      if (route.kind === 'operation') queryAliases = route.queryAliases;
      style = route.style;
      if (route.kind === 'probe') {
        const result = await route.handle();
        sendJson(res, result.status, result.body, headers);
        return route.pattern.template;
      }
      rpc = route.rpc;
      const header = (name: string): string | undefined => firstHeader(req, name);
      if (this.options.allowedHosts !== undefined)
        refuseUnknownHost(requestHost(header), this.options.allowedHosts);
      if (MUTATING.has(method)) {
        const host = requestHost(header);
        refuseCrossOrigin(
          (name) => (name === 'host' ? host : header(name)),
          req.socket instanceof TLSSocket,
        );
      }
      const peer =
        req.socket.remoteAddress === undefined
          ? undefined
          : `${req.socket.remoteAddress}:${req.socket.remotePort ?? 0}`;
      const certificate =
        req.socket instanceof TLSSocket && req.socket.authorized
          ? verifiedCertificate(req.socket.getPeerCertificate())
          : undefined;
      const { actor, role } = callerOf(
        await this.options.deps.authenticate({
          transport: 'http',
          operation: route.rpc,
          ...(certificate === undefined ? {} : { clientCertificate: certificate }),
          peer,
          header: (name) => firstHeader(req, name.toLowerCase()),
        }),
      );
      caller = actor;
      const query = new URLSearchParams(queryAt < 0 ? '' : target.slice(queryAt + 1));
      if (route.kind === 'stream') {
        await route.handle(req, res, {
          actor,
          requestId,
          query,
          closing: this.#streamsClosing.signal,
        });
        return rpc;
      }
      const body = await readBody(req, this.options.maxBodyBytes, this.options.bodyTimeoutMs);
      const message = buildRequestMessage(
        this.options.schema,
        route,
        params,
        query,
        body,
        style === 'v1' ? 'refuse' : 'ignore',
      );
      const idempotencyKey = MUTATING.has(method)
        ? checkIdempotencyKey(firstHeader(req, 'idempotency-key'))
        : undefined;
      const response = await route.operation(message, {
        actor,
        ...(role === undefined ? {} : { role }),
        requestId,
        ...(idempotencyKey === undefined ? {} : { idempotencyKey }),
        ...(this.options.deps.idempotencyPerActor ? { idempotencyScope: actor } : {}),
      });
      const names = route.style === 'gateway' ? 'proto' : 'json';
      sendJson(
        res,
        200,
        encodeMessage(this.options.schema, route.responseType, response, names),
        headers,
      );
      this.log.debug(
        { requestId, method, rpc, actor, status: 200, ms: elapsedMs(started) },
        'request',
      );
    } catch (err) {
      if (clientWentAway(req, err)) {
        // Nothing to answer and nothing wrong on our side: not an error, nor a 5xx.
        res.statusCode = CLIENT_CLOSED_REQUEST;
        this.log.info({ requestId, method, path: rawPath, rpc }, 'client went away mid-request');
        return rpc === '' ? 'unmatched' : rpc;
      }
      const failure = namedAsQueried(
        this.failureOf(err, requestId),
        queryAliases,
        new URLSearchParams(queryAt < 0 ? '' : target.slice(queryAt + 1)),
      );
      const bodyRefused = err instanceof PayloadTooLarge || err instanceof BodyTimeout;
      if (bodyRefused) Object.assign(headers, http1Connection(req, 'close'));
      this.logFailure(failure, err, {
        requestId,
        method,
        path: rawPath,
        rpc,
        ...(caller === undefined ? {} : { actor: caller }),
        ms: elapsedMs(started),
      });
      if (!res.headersSent) sendJson(res, failure.http, errorBody(failure, style), headers);
      // Whatever the client still sends is discarded; an HTTP/1.1 connection closes after the
      // answer, an HTTP/2 stream is closed after it (RFC 9113 §8.1: a complete response before
      // the request's end, then RST_STREAM with NO_ERROR).
      if (bodyRefused) {
        req.resume();
        if (req.httpVersionMajor === 2) closeStreamAfterAnswer(res);
      }
    }
    return rpc === '' ? 'unmatched' : rpc;
  }

  private failureOf(err: unknown, requestId: string): ApiFailure {
    if (err instanceof TransportError)
      return transportFailure(err.code, err.message, requestId, err.overrides);
    if (err instanceof PayloadTooLarge) {
      return transportFailure('C2_VALIDATION', err.message, requestId, {
        http: 413,
        grpc: GrpcStatus.RESOURCE_EXHAUSTED,
        details: { field: 'body', limit: err.limit },
      });
    }
    if (err instanceof BodyTimeout) {
      return transportFailure('C2_VALIDATION', err.message, requestId, {
        http: 408,
        grpc: GrpcStatus.DEADLINE_EXCEEDED,
        details: { field: 'body', timeoutMs: err.timeoutMs },
      });
    }
    return describeFailure(err, requestId);
  }

  private logFailure(failure: ApiFailure, err: unknown, fields: Record<string, unknown>): void {
    if (failure.internal) this.log.error({ ...fields, err, code: failure.code }, 'request failed');
    else
      this.log.info(
        { ...fields, status: failure.http, code: failure.code, message: failure.message },
        'request rejected',
      );
  }

  /**
   * Stops accepting connections (and HTTP/2 streams: GOAWAY), ends the event streams, lets
   * in-flight requests finish, closes idle keep-alive connections, and after `timeoutMs` closes
   * whatever is left. Idempotent.
   */
  close(timeoutMs: number): Promise<void> {
    this.#closed ??= (async () => {
      this.#closing = true;
      this.#streamsClosing.abort();
      const closed = this.listener.stop();
      this.listener.closeIdle();
      const deadline = Date.now() + timeoutMs;
      while (this.#inFlight > 0 && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 20));
        this.listener.closeIdle();
      }
      this.listener.closeAll();
      await closed;
    })();
    return this.#closed;
  }
}

/** A failure found by the HTTP layer itself (route, method). */
class TransportError extends Error {
  constructor(
    readonly code: 'C2_NOT_FOUND' | 'C2_VALIDATION',
    message: string,
    readonly overrides: Parameters<typeof transportFailure>[3] = {},
  ) {
    super(message);
  }
}

function transportError(
  code: 'C2_NOT_FOUND' | 'C2_VALIDATION',
  message: string,
  overrides?: Parameters<typeof transportFailure>[3],
): TransportError {
  return new TransportError(code, message, overrides);
}

/** The status the metrics record for a request its client abandoned (nginx's convention). */
const CLIENT_CLOSED_REQUEST = 499;

/**
 * Whether `err` is the client closing its connection (or, over HTTP/2, resetting its stream)
 * before its request was read: node:http fails the read with ECONNRESET, node:http2's
 * compatibility request with a premature close.
 */
function clientWentAway(req: IncomingMessage, err: unknown): boolean {
  const code = (err as { code?: unknown }).code;
  return req.httpVersionMajor >= 2
    ? code === 'ERR_STREAM_PREMATURE_CLOSE'
    : req.destroyed && code === 'ECONNRESET';
}

/**
 * The raw answer to a request Node's HTTP parser refused (bad framing, headers over 16 KiB, an
 * unknown method): a JSON error like every other answer, with 431 for oversized headers.
 */
function malformedRequestAnswer(err: Error & { code?: string }, requestId: string): string {
  const tooLarge = err.code === 'HPE_HEADER_OVERFLOW';
  const status = tooLarge ? '431 Request Header Fields Too Large' : '400 Bad Request';
  const message = tooLarge ? 'the request headers are too large' : 'malformed HTTP request';
  const body = JSON.stringify({ error: { code: 'C2_VALIDATION', message, requestId } });
  // The headers every API answer carries (docs/api.md), the request id matching the log line.
  return (
    `HTTP/1.1 ${status}\r\nContent-Type: application/json\r\n` +
    `X-Request-Id: ${requestId}\r\nCache-Control: no-store\r\n` +
    Object.entries(API_SECURITY_HEADERS)
      .map(([name, value]) => `${name}: ${value}\r\n`)
      .join('') +
    `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`
  );
}

/**
 * `failure` naming its field as the query string did: `after`, not the message's `after_seq`,
 * when the caller wrote `after`.
 */
function namedAsQueried(
  failure: ApiFailure,
  queryAliases: Readonly<Record<string, string>>,
  query: URLSearchParams,
): ApiFailure {
  const field = failure.details?.['field'];
  if (typeof field !== 'string' || query.has(field)) return failure;
  const alias = Object.entries(queryAliases).find(
    ([name, fieldName]) => fieldName === field && query.has(name),
  )?.[0];
  return alias === undefined
    ? failure
    : { ...failure, details: { ...failure.details, field: alias } };
}

/**
 * Closes an HTTP/2 request's stream after its answer (compatibility API). With NO_ERROR,
 * node:http2 sends what is still queued of the answer first, then RST_STREAM; the response's
 * own `finish` would not come while the client's side of the stream stays open.
 */
function closeStreamAfterAnswer(res: ServerResponse): void {
  const stream = http2StreamOf(res);
  if (stream !== undefined && !stream.closed) stream.close(http2Constants.NGHTTP2_NO_ERROR);
}
