/**
 * An API node on the C2 integration harness (real PostgreSQL schema, real Mosquitto), with
 * clients for both surfaces: a @grpc/grpc-js client built from the same .proto files, and a raw
 * node:http client (raw paths, raw bodies, every header visible).
 */
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { request as httpsRequest } from 'node:https';
import {
  Client,
  credentials as grpcCredentials,
  Metadata,
  type ChannelCredentials,
  type ClientReadableStream,
  type ServiceError,
} from '@grpc/grpc-js';
import type { ServiceDefinition } from '@grpc/proto-loader';
import {
  startHarness,
  type C2Harness,
  type HarnessOptions,
} from '../../../cluster/test/support/c2-harness.ts';
import { ApiServer, loadProtos, type ApiServerOptions, type ReadinessReport } from '../../index.ts';

/** A message as proto-loader represents it. */
export type Message = Record<string, unknown>;

/** A log line recorded by {@link MemoryLogger}. */
export interface LogLine {
  readonly level: 'debug' | 'info' | 'warn' | 'error';
  readonly obj: Record<string, unknown>;
  readonly msg: string | undefined;
}

/** A pino-compatible logger that keeps every line (to assert what reaches the logs). */
export class MemoryLogger {
  readonly lines: LogLine[] = [];
  debug(obj: object, msg?: string): void {
    this.lines.push({ level: 'debug', obj: obj as Record<string, unknown>, msg });
  }
  info(obj: object, msg?: string): void {
    this.lines.push({ level: 'info', obj: obj as Record<string, unknown>, msg });
  }
  warn(obj: object, msg?: string): void {
    this.lines.push({ level: 'warn', obj: obj as Record<string, unknown>, msg });
  }
  error(obj: object, msg?: string): void {
    this.lines.push({ level: 'error', obj: obj as Record<string, unknown>, msg });
  }
}

/** A gRPC client for one service of the API protos. */
export class GrpcTestClient {
  readonly #client: Client;
  readonly #service: ServiceDefinition;

  constructor(address: string, serviceName: string, creds?: ChannelCredentials, options = {}) {
    this.#client = new Client(address, creds ?? grpcCredentials.createInsecure(), options);
    this.#service = loadProtos().service(serviceName);
  }

  #method(rpc: string): ServiceDefinition[string] {
    const method = this.#service[rpc];
    if (method === undefined) throw new Error(`no RPC ${rpc}`);
    return method;
  }

  /** A unary call; rejects with the ServiceError. */
  call(rpc: string, request: Message = {}, metadata = new Metadata()): Promise<Message> {
    const m = this.#method(rpc);
    return new Promise((resolve, reject) => {
      this.#client.makeUnaryRequest(
        m.path,
        m.requestSerialize,
        m.responseDeserialize,
        request,
        metadata,
        { deadline: Date.now() + 10_000 },
        (err: ServiceError | null, value?: object) => {
          if (err !== null) reject(err);
          else resolve(value as Message);
        },
      );
    });
  }

  /** A server stream. */
  stream(rpc: string, request: Message = {}): ClientReadableStream<Message> {
    const m = this.#method(rpc);
    return this.#client.makeServerStreamRequest(
      m.path,
      m.requestSerialize,
      m.responseDeserialize,
      request,
      new Metadata(),
      {},
    ) as ClientReadableStream<Message>;
  }

  close(): void {
    this.#client.close();
  }
}

/** An HTTP response. */
export interface HttpResult {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly text: string;
  /** The parsed JSON body (undefined when it is not JSON). */
  readonly json: unknown;
}

/** Options of {@link httpCall}. */
export interface HttpCallOptions {
  readonly body?: string | Buffer | object;
  readonly headers?: Record<string, string>;
  /** HTTPS with this CA. */
  readonly ca?: string;
  /** A client certificate and key (mutual TLS), PEM; with `ca` only. */
  readonly clientCert?: { readonly cert: string; readonly key: string };
}

/** One HTTP request with a raw path (nothing is normalised or re-encoded). */
export function httpCall(
  port: number,
  method: string,
  path: string,
  options: HttpCallOptions = {},
): Promise<HttpResult> {
  const body =
    options.body === undefined
      ? undefined
      : typeof options.body === 'string' || Buffer.isBuffer(options.body)
        ? options.body
        : JSON.stringify(options.body);
  return new Promise((resolve, reject) => {
    const send = options.ca === undefined ? httpRequest : httpsRequest;
    const req = send(
      {
        host: '127.0.0.1',
        port,
        method,
        path,
        agent: false,
        headers: {
          ...(body === undefined ? {} : { 'content-type': 'application/json' }),
          // Framed: without a length Node sends a DELETE's body unframed (it chunks no DELETE),
          // and the server reads it as the next request. A test may ask for chunking instead.
          ...(body === undefined || options.headers?.['transfer-encoding'] !== undefined
            ? {}
            : { 'content-length': Buffer.byteLength(body) }),
          ...options.headers,
        },
        ...(options.ca === undefined ? {} : { ca: options.ca, servername: 'localhost' }),
        ...(options.clientCert === undefined ? {} : options.clientCert),
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let json: unknown;
          try {
            json = JSON.parse(text) as unknown;
          } catch {
            json = undefined;
          }
          resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json });
        });
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    if (body !== undefined) req.end(body);
    else req.end();
  });
}

/** Options of {@link startApi}. */
export interface ApiHarnessOptions extends HarnessOptions {
  readonly api?: Partial<Omit<ApiServerOptions, 'service' | 'logger'>>;
}

/** Everything an API test needs. */
export interface ApiHarness {
  readonly h: C2Harness;
  readonly api: ApiServer;
  readonly log: MemoryLogger;
  readonly grpc: GrpcTestClient;
  readonly admin: GrpcTestClient;
  /** HTTP request to the node. */
  http(method: string, path: string, options?: HttpCallOptions): Promise<HttpResult>;
  /** Marks the readiness function's answer. */
  setReadiness(report: ReadinessReport): void;
  close(): Promise<void>;
}

/** Starts the C2 harness and an API node on free loopback ports. */
export async function startApi(options: ApiHarnessOptions = {}): Promise<ApiHarness> {
  const h = await startHarness(options);
  const log = new MemoryLogger();
  let readiness: ReadinessReport = { ready: true, checks: { postgres: { ok: true } } };
  let api: ApiServer;
  try {
    api = await ApiServer.start({
      service: h.service,
      grpc: { host: '127.0.0.1', port: 0 },
      http: { host: '127.0.0.1', port: 0 },
      readiness: () => Promise.resolve(readiness),
      logger: log,
      eventPollIntervalMs: 50,
      // As the composition root passes config limits.maxMessageBytes (the harness's domain limit).
      maxMessageBytes: 1 << 20,
      ...options.api,
    });
  } catch (err) {
    await h.close();
    throw err;
  }
  const target = `127.0.0.1:${api.grpcAddress.port}`;
  const grpc = new GrpcTestClient(target, 'pb.C2');
  const admin = new GrpcTestClient(target, 'e4c2.v1.C2Admin');
  return {
    h,
    api,
    log,
    grpc,
    admin,
    http: (method, path, callOptions) => httpCall(api.httpAddress.port, method, path, callOptions),
    setReadiness(report) {
      readiness = report;
    },
    async close() {
      grpc.close();
      admin.close();
      await api.close(2000);
      await h.close();
    },
  };
}

/** Counts of everything a rejected request must leave unchanged. */
export async function snapshot(h: C2Harness): Promise<Record<string, string>> {
  const { rows } = await h.schema.pool.query<Record<string, string>>(
    `SELECT
       (SELECT count(*) FROM clients)::text AS clients,
       (SELECT count(*) FROM topics)::text AS topics,
       (SELECT coalesce(sum(key_version), 0) FROM topics)::text AS topic_versions,
       (SELECT coalesce(sum(key_version), 0) FROM clients)::text AS client_versions,
       (SELECT count(*) FROM audit_log)::text AS audit,
       (SELECT count(*) FROM events)::text AS events,
       (SELECT count(*) FROM c2_keys)::text AS c2_keys,
       (SELECT count(*) FROM device_topics)::text AS memberships,
       (SELECT coalesce(sum(desired_version), 0) FROM device_topics)::text AS desired,
       (SELECT count(*) FROM client_links)::text AS links,
       (SELECT count(*) FROM request_ids)::text AS request_ids`,
  );
  return rows[0] ?? {};
}
