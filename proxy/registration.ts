/**
 * Registration of the proxy's identities with the C2, over the C2's HTTP API (`docs/api.md`):
 * create the client with its current key (reference route `POST /e4/client/{name}`), create the
 * topic only when it does not exist (`GET /v1/topics/{name}`; `POST /e4/topic/...` would rotate an
 * existing one), attach it (`PUT /e4/client/{name}/topic/{topic}`), and, for trust on first use,
 * ask the C2 to rotate the identity key at once (`POST /v1/clients/{name}/rotate`).
 */
import { randomBytes } from 'node:crypto';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { ed25519PublicKey, fromHex } from '../e4/index.ts';
import { readCaFile, type ProxyConfig } from './config.ts';
import { ProxyError, ProxyErrorCode } from './errors.ts';
import type { HeldIdentity, NewIdentityKeys } from './key-ring.ts';

/**
 * The C2 could not be asked at all (no connection, a timeout, or a gateway or C2 answering that
 * it is unavailable): unlike a refusal, it tells nothing about the identity.
 */
export class C2UnreachableError extends ProxyError {
  constructor(message: string, options?: ErrorOptions) {
    super(ProxyErrorCode.Registration, message, options);
  }
}

/** Statuses that say the C2 is not there now (a load balancer without a node, or unavailable). */
const UNAVAILABLE_STATUSES: ReadonlySet<number> = new Set([502, 503, 504]);

/**
 * What a failed answer says, as `HTTP <status> <code>: <message>`: the `/v1` body is
 * `{"error":{"code","message"}}`, the `/e4` (grpc-gateway) body `{"message","details":[{"reason"}]}`
 * with `error` holding the message again (docs/api.md, "Errors").
 */
export function describeFailure(status: number, json: unknown): string {
  const body = isRecord(json) ? json : {};
  const nested = isRecord(body['error']) ? body['error'] : undefined;
  const details = Array.isArray(body['details']) ? (body['details'] as unknown[]) : [];
  const reason = details.find((d) => isRecord(d) && typeof d['reason'] === 'string');
  const code = nested?.['code'] ?? (isRecord(reason) ? reason['reason'] : undefined);
  const message =
    nested?.['message'] ??
    body['message'] ??
    (typeof body['error'] === 'string' ? body['error'] : undefined);
  const codeText = typeof code === 'string' && code.length > 0 ? ` ${code}` : '';
  return typeof message === 'string' && message.length > 0
    ? `HTTP ${status}${codeText}: ${message}`
    : `HTTP ${status}${codeText}`;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** TLS errors that say the C2's certificate is not trusted (its CA is unknown to the proxy). */
const UNTRUSTED_CERT_CODES: ReadonlySet<string> = new Set([
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'CERT_UNTRUSTED',
]);

/** Longest answer the proxy reads: the C2's answers are small; a larger one is not the C2's. */
export const MAX_ANSWER_BYTES = 1024 * 1024;

/** Why a request failed, as `<message> (<code>)`, with what to do when the CA is unknown. */
function requestFailure(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const code = (err as NodeJS.ErrnoException).code;
  const text =
    typeof code === 'string' && !err.message.includes(code)
      ? `${err.message} (${code})`
      : err.message;
  return typeof code === 'string' && UNTRUSTED_CERT_CODES.has(code)
    ? `${text}; set c2.caFile to the PEM certificate of the C2's CA (of a C2 with its own self-signed certificate, that certificate)`
    : text;
}

/** How the proxy reaches the C2. */
export interface C2RegistrarOptions {
  /** PEM file of the CA (or self-signed certificate) to trust for an `https` C2 (`c2.caFile`). */
  readonly caFile?: string | undefined;
  /** Longest wait for one answer. Default 10 s. */
  readonly timeoutMs?: number;
  /**
   * Abandons every call (a stop during start-up): a call in flight is aborted and rejects with
   * the signal's reason, as does any later one.
   */
  readonly signal?: AbortSignal | undefined;
}

/**
 * A topic as the segments of a reference route (`/e4/topic/{topic=**}`): each segment
 * percent-encoded, and `.` and `..` segments as `%2E` so that neither the request nor the C2's
 * router takes them for path steps (`a/./b` is a topic of its own, not `a/b`).
 */
export function topicPath(topic: string): string {
  return topic
    .split('/')
    .map((segment) =>
      segment === '.' || segment === '..'
        ? segment.replaceAll('.', '%2E')
        : encodeURIComponent(segment),
    )
    .join('/');
}

/** An HTTP client of the C2's API. */
export class C2Registrar {
  readonly #ca: Buffer | undefined;
  readonly #timeoutMs: number;
  readonly #signal: AbortSignal | undefined;

  /**
   * @param baseUrl - `http(s)://host:port` of a C2 node or its load balancer
   * @param token - bearer token, when the C2 requires one
   * @throws ProxyError `PROXY_CONFIG` naming `c2.caFile` when it cannot be read or holds no PEM
   *   certificate
   */
  constructor(
    readonly baseUrl: string,
    private readonly token: string | undefined,
    options: C2RegistrarOptions = {},
  ) {
    const { caFile } = options;
    if (caFile !== undefined) {
      this.#ca = readCaFile('c2.caFile', caFile);
    }
    this.#timeoutMs = options.timeoutMs ?? 10_000;
    this.#signal = options.signal;
  }

  /**
   * The registrar of the `c2` settings (of a configuration whose `c2.url` is set).
   * @param signal - abandons its calls (see {@link C2RegistrarOptions.signal})
   */
  static of(c2: ProxyConfig['c2'] & { readonly url: string }, signal?: AbortSignal): C2Registrar {
    return new C2Registrar(c2.url, c2.token, { caFile: c2.caFile, signal });
  }

  async #call(
    method: string,
    path: string,
    body?: unknown,
  ): Promise<{ status: number; json: unknown }> {
    const headers: Record<string, string> = { accept: 'application/json' };
    if (body !== undefined) headers['content-type'] = 'application/json';
    if (this.token !== undefined) headers['authorization'] = `Bearer ${this.token}`;
    // A retried call must not act twice (the C2 stores the first answer under the key).
    if (method !== 'GET') headers['idempotency-key'] = `e4proxy-${randomBytes(12).toString('hex')}`;
    this.#signal?.throwIfAborted();
    let answer: { status: number; text: string; location: string | undefined };
    try {
      answer = await this.#request(
        method,
        new URL(this.baseUrl),
        path,
        headers,
        body === undefined ? undefined : JSON.stringify(body),
      );
    } catch (err) {
      // Abandoned, or an answer that is not the C2's: neither says the C2 is unreachable.
      this.#signal?.throwIfAborted();
      if (ProxyError.is(err)) {
        throw new ProxyError(err.code, `${method} ${path}: ${err.message}`, { cause: err });
      }
      throw new C2UnreachableError(
        `cannot reach the C2 at ${this.baseUrl}: ${requestFailure(err)}`,
        { cause: err },
      );
    }
    if (answer.status >= 300 && answer.status <= 399) {
      // Never followed: a C2 does not redirect, and the bearer token would go along.
      throw new ProxyError(
        ProxyErrorCode.Registration,
        `${method} ${path}: HTTP ${answer.status} redirect to ${answer.location ?? '(no Location header)'}, not followed; set c2.url to the C2's API address (${this.baseUrl} redirects)`,
      );
    }
    let json: unknown;
    try {
      json = JSON.parse(answer.text) as unknown;
    } catch {
      json = undefined;
    }
    return { status: answer.status, json };
  }

  /**
   * One request with node:http(s), whose TLS takes a CA (the global `fetch` takes none without
   * a dependency on undici). The answer is read up to {@link MAX_ANSWER_BYTES}, within the
   * timeout; a redirect's body is not read.
   * @throws Error why no complete answer came; ProxyError `PROXY_REGISTRATION` for an answer
   *   too large
   */
  #request(
    method: string,
    url: URL,
    path: string,
    headers: Record<string, string>,
    body: string | undefined,
  ): Promise<{ status: number; text: string; location: string | undefined }> {
    const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
    const timeout = AbortSignal.timeout(this.#timeoutMs);
    const signal = this.#signal === undefined ? timeout : AbortSignal.any([timeout, this.#signal]);
    return new Promise((resolve, reject) => {
      let answered = false;
      let refused: ProxyError | undefined;
      const fail = (err: Error): void => {
        if (refused !== undefined) {
          reject(refused);
        } else if (timeout.aborted && !(this.#signal?.aborted ?? false)) {
          reject(
            new Error(
              answered
                ? `no complete answer within ${this.#timeoutMs} ms (the body stalled after the headers)`
                : `no answer within ${this.#timeoutMs} ms`,
              { cause: err },
            ),
          );
        } else {
          reject(err);
        }
      };
      const req = send(
        url,
        {
          method,
          // As written: resolving it as a URL would drop a topic's `.` and `..` segments.
          path: `${url.pathname.replace(/\/+$/, '')}${path}`,
          headers:
            body === undefined
              ? headers
              : { ...headers, 'content-length': Buffer.byteLength(body) },
          signal,
          ...(this.#ca === undefined ? {} : { ca: this.#ca }),
        },
        (res: IncomingMessage) => {
          answered = true;
          const status = res.statusCode ?? 0;
          const location = res.headers.location;
          if (status >= 300 && status <= 399) {
            resolve({ status, text: '', location });
            req.destroy();
            return;
          }
          const tooLarge = (): void => {
            refused = new ProxyError(
              ProxyErrorCode.Registration,
              `HTTP ${status}: the answer of ${this.baseUrl} exceeds ${MAX_ANSWER_BYTES} bytes (the C2's answers are small: is c2.url the C2's API?)`,
            );
            req.destroy(refused);
          };
          if (Number(res.headers['content-length'] ?? 0) > MAX_ANSWER_BYTES) {
            tooLarge();
            return;
          }
          const chunks: Buffer[] = [];
          let size = 0;
          res.on('data', (chunk: Buffer) => {
            size += chunk.length;
            if (size > MAX_ANSWER_BYTES) tooLarge();
            else chunks.push(chunk);
          });
          res.on('error', fail);
          res.on('end', () => {
            resolve({ status, text: Buffer.concat(chunks).toString('utf8'), location });
          });
        },
      );
      req.on('error', fail);
      req.end(body);
    });
  }

  async #expectOk(method: string, path: string, body?: unknown): Promise<unknown> {
    const { status, json } = await this.#call(method, path, body);
    if (status < 200 || status > 299) {
      throw new ProxyError(
        ProxyErrorCode.Registration,
        `${method} ${path}: ${describeFailure(status, json)}`,
      );
    }
    return json;
  }

  /**
   * Creates (or updates) the C2 client of `identity` with the key it holds now: its symmetric
   * key, or in public-key mode its Ed25519 public key (the private key never leaves the proxy).
   */
  async createClient(identity: HeldIdentity): Promise<void> {
    const material = identity.client.state.keyMaterial;
    const key =
      material.mode === 'symmetric' ? material.key : ed25519PublicKey(material.privateKey);
    await this.#expectOk('POST', `/e4/client/${encodeURIComponent(identity.name)}`, {
      key: Buffer.from(key).toString('base64'),
    });
  }

  /** The C2's current Curve25519 public key (public-key mode), for new identities. */
  async c2PublicKey(): Promise<Uint8Array> {
    const answer = await this.#expectOk('GET', '/v1/c2-public-key');
    const hex =
      typeof answer === 'object' && answer !== null
        ? (answer as Record<string, unknown>)['publicKey']
        : undefined;
    if (typeof hex !== 'string' || !/^[0-9a-fA-F]{64}$/.test(hex)) {
      throw new ProxyError(
        ProxyErrorCode.Registration,
        `GET /v1/c2-public-key: no public key in the answer (is the C2 in public-key mode?)`,
      );
    }
    return new Uint8Array(Buffer.from(hex, 'hex'));
  }

  /** Creates `topic` unless it exists (never rotates it), then attaches it to the client. */
  async attachTopic(name: string, topic: string): Promise<void> {
    const existing = await this.#call('GET', `/v1/topics/${encodeURIComponent(topic)}`);
    if (existing.status === 404) {
      await this.#expectOk('POST', `/e4/topic/${topicPath(topic)}`);
    } else if (existing.status !== 200) {
      throw new ProxyError(
        ProxyErrorCode.Registration,
        `GET /v1/topics/${encodeURIComponent(topic)}: ${describeFailure(existing.status, existing.json)}`,
      );
    }
    await this.#expectOk('PUT', `/e4/client/${encodeURIComponent(name)}/topic/${topicPath(topic)}`);
  }

  /** Asks the C2 to rotate the identity key (it delivers SetIdKey on the control topic). */
  async rotateClient(name: string): Promise<void> {
    await this.#expectOk('POST', `/v1/clients/${encodeURIComponent(name)}/rotate`, {});
  }

  /**
   * Whether the C2 knows a client of this name.
   * @throws C2UnreachableError when the C2 cannot be asked (no connection, 502, 503, 504);
   *   ProxyError `PROXY_REGISTRATION` when it refuses to tell
   */
  async isRegistered(name: string): Promise<boolean> {
    const path = `/v1/clients/${encodeURIComponent(name)}`;
    const { status, json } = await this.#call('GET', path);
    if (status === 404) return false;
    if (status >= 200 && status <= 299) return true;
    const failure = `GET ${path}: ${describeFailure(status, json)}`;
    if (UNAVAILABLE_STATUSES.has(status)) {
      throw new C2UnreachableError(`the C2 at ${this.baseUrl} is unavailable: ${failure}`);
    }
    throw new ProxyError(ProxyErrorCode.Registration, failure);
  }

  /**
   * Asks the C2 to send the client its whole desired state again (keys of every topic), as to a
   * device that lost it.
   */
  async resync(name: string): Promise<void> {
    await this.#expectOk('POST', `/v1/clients/${encodeURIComponent(name)}/resync`, {});
  }

  /** Registers one identity: client, then each of its topics. */
  async register(identity: HeldIdentity): Promise<void> {
    await this.createClient(identity);
    for (const topic of identity.topics) await this.attachTopic(identity.name, topic);
  }
}

/**
 * How the identities of `config` that have no state yet get their keys: in public-key mode with
 * the C2's public key from the configuration, or else asked of the C2 (only when one is needed).
 * @param signal - abandons the request for the C2's public key (a stop during start-up)
 */
export function newIdentityKeys(config: ProxyConfig, signal?: AbortSignal): NewIdentityKeys {
  if (config.c2.mode === 'symmetric') return { mode: 'symmetric' };
  const { publicKeyHex, url } = config.c2;
  return {
    mode: 'public-key',
    c2PublicKey: async () => {
      if (publicKeyHex !== undefined) return fromHex(publicKeyHex);
      if (url === undefined)
        throw new ProxyError(ProxyErrorCode.Config, 'c2.publicKey or c2.url is required');
      return C2Registrar.of({ ...config.c2, url }, signal).c2PublicKey();
    },
  };
}
