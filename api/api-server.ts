/**
 * An API node: the gRPC server and the HTTP server over one C2 service, with readiness, a
 * draining switch and a graceful, bounded shutdown.
 */
import { createSecureContext } from 'node:tls';
import type { AutomationService, C2Service } from '../cluster/domain/index.ts';
import { C2Error } from '../cluster/errors.ts';
import type { EventWakeups } from '../cluster/events/index.ts';
import { READINESS_CHECK_TIMEOUT_MS, type RpcTelemetry } from '../cluster/telemetry/index.ts';
import {
  anonymousAuthenticate,
  type ApiDeps,
  type ApiLogger,
  type Authenticate,
  type DependencyState,
  type ReadinessReport,
} from './api-types.ts';
import { loadProtos } from './codec/protos.ts';
import { GrpcApiServer } from './grpc/grpc-server.ts';
import { eventStreamHandler, type EventSseOptions } from './http/event-sse.ts';
import { ConsoleFiles } from './http/console-files.ts';
import { HttpApiServer } from './http/http-server.ts';
import { buildRoutes } from './http/routes.ts';
import { adminOperations } from './operations/admin-ops.ts';
import { automationOperations } from './operations/automation-ops.ts';
import { c2aeOperations } from './operations/c2ae-ops.ts';
import { referenceOperations } from './operations/reference-ops.ts';
import type { BoundAddress } from './transport-common.ts';

/** Default largest payload: 4 MiB (gRPC's own default message size). */
export const DEFAULT_MAX_MESSAGE_BYTES = 4 * 1024 * 1024;
/** Room for the rest of a request (topic, names, JSON punctuation) beside its payload. */
export const REQUEST_ENVELOPE_BYTES = 64 * 1024;

/** The limits both transports derive from the payload limit (see {@link ApiServerOptions}). */
export function transportLimits(
  maxMessageBytes: number,
  maxBodyBytes?: number,
): { readonly grpcReceiveBytes: number; readonly httpBodyBytes: number } {
  return {
    grpcReceiveBytes: maxMessageBytes + REQUEST_ENVELOPE_BYTES,
    httpBodyBytes: maxBodyBytes ?? Math.ceil(maxMessageBytes / 3) * 4 + REQUEST_ENVELOPE_BYTES,
  };
}

/** Options of {@link ApiServer.start}. */
export interface ApiServerOptions {
  readonly service: C2Service;
  /** The automation rules API (`e4c2.v1.C2Automation`); its calls fail cleanly without it. */
  readonly automation?: AutomationService;
  /** gRPC listener; port 0 picks a free port. */
  readonly grpc: { readonly host: string; readonly port: number };
  /** HTTP listener; port 0 picks a free port. */
  readonly http: { readonly host: string; readonly port: number };
  /**
   * TLS for both listeners: the PEM *contents* of the certificate chain and the private key (the
   * composition root reads the files, e.g. `config.tls.certPath`). Plain text without it.
   */
  readonly tls?: {
    readonly cert: string | Buffer;
    readonly key: string | Buffer;
    /** PEM CA bundle of client certificates: when given, every client must present one. */
    readonly clientCa?: string | Buffer;
  };
  /** Dependency checks for `/readyz` and grpc.health.v1; should not throw. */
  readonly readiness: () => Promise<ReadinessReport>;
  readonly logger: ApiLogger;
  /**
   * Largest payload a request may carry (config `limits.maxMessageBytes`, the domain's limit on
   * ProtectMessage data). The gRPC receive limit is this plus {@link REQUEST_ENVELOPE_BYTES};
   * larger calls fail with RESOURCE_EXHAUSTED. Default {@link DEFAULT_MAX_MESSAGE_BYTES}.
   */
  readonly maxMessageBytes?: number;
  /**
   * Largest HTTP request body; more is answered 413. Default: the base64 size of
   * `maxMessageBytes` plus {@link REQUEST_ENVELOPE_BYTES} (about 1.4 MiB for 1 MiB).
   */
  readonly maxBodyBytes?: number;
  /** Longest wait for an HTTP request body, then 408. Default 300 s (`http/http-io.ts`). */
  readonly httpBodyTimeoutMs?: number;
  /** The actor of each request (the authentication seam). Default: the peer address. */
  readonly authenticate?: Authenticate;
  /**
   * Without `authenticate`, HTTP API requests must name an IP address, `localhost`, or one of
   * these host names (config `E4C2_HTTP_ALLOWED_HOSTS`): see `http/host-guard.ts`. Ignored with
   * `authenticate`.
   */
  readonly allowedHosts?: readonly string[];
  /**
   * Scope idempotency keys by actor: set it when actors are authenticated principals (a peer
   * address changes with every connection, so it cannot scope retries). Default false.
   */
  readonly idempotencyPerActor?: boolean;
  /**
   * Directory of the web console (the repository's `web/`), served under `/console/` by the
   * HTTP listener. No console without it.
   */
  readonly consoleDir?: string;
  /** Pause between journal polls of event streams. Default 200 ms. */
  readonly eventPollIntervalMs?: number;
  /** Wakes event streams when any node positioned events (LISTEN/NOTIFY). */
  readonly eventWakeups?: EventWakeups;
  /** Heartbeat and slow-consumer limits of the server-sent events stream. */
  readonly eventStream?: EventSseOptions;
  /**
   * A readiness function slower than this counts as not ready. Default: a second more than the
   * node's bound on each dependency check (`READINESS_CHECK_TIMEOUT_MS`), so that a silent
   * dependency is reported by its own check, and one that is not required leaves the node ready.
   */
  readonly readinessTimeoutMs?: number;
  /** Spans and metrics of every call (cluster/telemetry); none when absent. */
  readonly telemetry?: RpcTelemetry;
}

function toBuffer(pem: string | Buffer): Buffer {
  return typeof pem === 'string' ? Buffer.from(pem, 'utf8') : pem;
}

/**
 * @throws C2Error `C2_CONFIG` when the certificate and key are not a usable PEM pair
 */
function checkTls(tls: NonNullable<ApiServerOptions['tls']>): {
  cert: Buffer;
  key: Buffer;
  clientCa?: Buffer;
} {
  const pair = { cert: toBuffer(tls.cert), key: toBuffer(tls.key) };
  try {
    createSecureContext(pair);
  } catch (cause) {
    throw new C2Error(
      'C2_CONFIG',
      'the API TLS certificate and key are not a matching PEM certificate chain and private key',
      { cause },
    );
  }
  if (tls.clientCa === undefined) return pair;
  const clientCa = toBuffer(tls.clientCa);
  try {
    createSecureContext({ ca: clientCa });
  } catch (cause) {
    throw new C2Error('C2_CONFIG', 'the API client CA is not a PEM certificate bundle', { cause });
  }
  return { ...pair, clientCa };
}

async function boundedReadiness(
  check: () => Promise<ReadinessReport>,
  timeoutMs: number,
  log: ApiLogger,
): Promise<ReadinessReport> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<'timeout'>((resolve) => {
    timer = setTimeout(() => {
      resolve('timeout');
    }, timeoutMs);
  });
  try {
    const report = await Promise.race([check(), timeout]);
    if (report !== 'timeout') {
      const checks: Record<string, DependencyState> = {};
      for (const [name, state] of Object.entries(report.checks))
        checks[name] = typeof state === 'boolean' ? { ok: state } : state;
      return { ready: report.ready, checks };
    }
    log.warn({ timeoutMs }, 'readiness check timed out');
    return { ready: false, checks: { readiness: { ok: false, message: 'the check timed out' } } };
  } catch (err) {
    log.warn({ err }, 'readiness check failed');
    return { ready: false, checks: { readiness: { ok: false, message: 'the check failed' } } };
  } finally {
    clearTimeout(timer);
  }
}

/** A started API node. */
export class ApiServer {
  #ready = true;
  #closed: Promise<void> | undefined;

  private constructor(
    private readonly grpcServer: GrpcApiServer,
    private readonly httpServer: HttpApiServer,
    private readonly log: ApiLogger,
  ) {}

  /**
   * Starts both listeners. If the second cannot start, the first is stopped again.
   * @throws C2Error `C2_UNAVAILABLE` when an address cannot be bound (e.g. "port 5555 on
   *   127.0.0.1 is already in use"); `C2_CONFIG` for an unusable TLS pair
   */
  static async start(options: ApiServerOptions): Promise<ApiServer> {
    const log = options.logger.child?.({ component: 'api' }) ?? options.logger;
    const tls = options.tls === undefined ? undefined : checkTls(options.tls);
    const protos = loadProtos();
    const holder: { api?: ApiServer } = {};
    const readinessTimeoutMs = options.readinessTimeoutMs ?? READINESS_CHECK_TIMEOUT_MS + 1000;
    const deps: ApiDeps = {
      service: options.service,
      logger: log,
      authenticate: options.authenticate ?? anonymousAuthenticate,
      idempotencyPerActor: options.idempotencyPerActor ?? false,
      eventPollIntervalMs: options.eventPollIntervalMs ?? 200,
      ...(options.eventWakeups === undefined ? {} : { eventWakeups: options.eventWakeups }),
      ...(options.telemetry === undefined ? {} : { telemetry: options.telemetry }),
      readiness: async () => {
        const report = await boundedReadiness(options.readiness, readinessTimeoutMs, log);
        if (holder.api === undefined || holder.api.#ready) return report;
        return {
          ready: false,
          checks: { ...report.checks, api: { ok: false, message: 'this node is draining' } },
        };
      },
    };
    const limits = transportLimits(
      options.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES,
      options.maxBodyBytes,
    );
    const consoleFiles =
      options.consoleDir === undefined ? undefined : await ConsoleFiles.load(options.consoleDir);
    const reference = referenceOperations(options.service);
    const admin = adminOperations(options.service);
    const automation = automationOperations(options.automation);
    const c2ae = c2aeOperations(options.automation);
    const grpcServer = await GrpcApiServer.start({
      host: options.grpc.host,
      port: options.grpc.port,
      ...(tls === undefined ? {} : { tls }),
      maxMessageBytes: limits.grpcReceiveBytes,
      protos,
      reference,
      admin,
      automation,
      c2ae,
      deps,
    });
    let httpServer: HttpApiServer;
    try {
      httpServer = await HttpApiServer.start({
        host: options.http.host,
        port: options.http.port,
        ...(tls === undefined ? {} : { tls }),
        maxBodyBytes: limits.httpBodyBytes,
        ...(options.httpBodyTimeoutMs === undefined
          ? {}
          : { bodyTimeoutMs: options.httpBodyTimeoutMs }),
        schema: protos.schema,
        deps,
        ...(consoleFiles === undefined ? {} : { console: consoleFiles }),
        ...(options.authenticate === undefined
          ? { allowedHosts: new Set((options.allowedHosts ?? []).map((h) => h.toLowerCase())) }
          : {}),
        routes: buildRoutes({
          reference,
          admin,
          automation,
          c2ae,
          liveness: () => Promise.resolve({ status: 200, body: { status: 'ok' } }),
          readiness: async () => {
            const report = await deps.readiness();
            return { status: report.ready ? 200 : 503, body: report };
          },
          eventStream: eventStreamHandler(deps, options.eventStream),
        }),
      });
    } catch (err) {
      await grpcServer.close(0);
      throw err;
    }
    holder.api = new ApiServer(grpcServer, httpServer, log);
    log.info(
      {
        grpc: `${grpcServer.address.host}:${grpcServer.address.port}`,
        http: `${httpServer.address.host}:${httpServer.address.port}`,
        tls: tls !== undefined,
      },
      'API listening',
    );
    return holder.api;
  }

  /** Where gRPC listens. */
  get grpcAddress(): BoundAddress {
    return this.grpcServer.address;
  }

  /** Where HTTP listens. */
  get httpAddress(): BoundAddress {
    return this.httpServer.address;
  }

  /** Marks the node ready or not (draining): `/readyz` and grpc.health.v1 follow at once. */
  setReady(ready: boolean): void {
    this.#ready = ready;
  }

  /**
   * Graceful shutdown: not ready, event streams ended, no new connections or calls, in-flight
   * requests finish; after `timeoutMs` the rest is cut. Idempotent; never rejects.
   */
  close(timeoutMs = 10_000): Promise<void> {
    this.#closed ??= (async () => {
      this.#ready = false;
      const results = await Promise.allSettled([
        this.grpcServer.close(timeoutMs),
        this.httpServer.close(timeoutMs),
      ]);
      for (const r of results)
        if (r.status === 'rejected')
          this.log.error({ err: r.reason as unknown }, 'API shutdown step failed');
      this.log.info({}, 'API closed');
    })();
    return this.#closed;
  }
}
