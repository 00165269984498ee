/** Reading request bodies within a limit, and writing JSON responses and error bodies. */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { C2Error } from '../../cluster/errors.ts';
import type { ApiFailure } from '../errors-map.ts';
import { firstDuplicateKey } from './duplicate-json-keys.ts';

/** Which error body a route answers with. */
export type ErrorStyle = 'gateway' | 'v1';

/** Thrown by {@link readBody} when the body is over the limit. */
export class PayloadTooLarge extends Error {
  constructor(readonly limit: number) {
    super(`the request body is larger than ${limit} bytes`);
  }
}

/**
 * How long a request body may take to arrive, from the moment it is read: node:http's own
 * `requestTimeout` (300 s) bounds a whole HTTP/1.1 request, but node:http2 has no such bound, so
 * a client could hold a stream (and its handler) open by sending a body a byte at a time.
 */
export const DEFAULT_BODY_TIMEOUT_MS = 300_000;

/** Thrown by {@link readBody} when the body has not arrived in time. */
export class BodyTimeout extends Error {
  constructor(readonly timeoutMs: number) {
    super(`the request body did not arrive within ${timeoutMs / 1000} s`);
  }
}

/**
 * Reads the whole body, refusing more than `limit` bytes (a declared Content-Length over the
 * limit is refused before reading) or a body still arriving after `timeoutMs`. On a refusal the
 * request is left as it is (not destroyed), so that the caller can still answer it and discard
 * the rest.
 * @throws PayloadTooLarge
 * @throws BodyTimeout
 */
export async function readBody(
  req: IncomingMessage,
  limit: number,
  timeoutMs = DEFAULT_BODY_TIMEOUT_MS,
): Promise<Buffer> {
  const declared = Number(req.headers['content-length'] ?? Number.NaN);
  if (Number.isFinite(declared) && declared > limit) throw new PayloadTooLarge(limit);
  const chunks: Buffer[] = [];
  let size = 0;
  const body = req.iterator({ destroyOnReturn: false }) as AsyncIterator<Buffer>;
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      reject(new BodyTimeout(timeoutMs));
    }, timeoutMs);
  });
  try {
    for (;;) {
      const next = await Promise.race([body.next(), late]);
      if (next.done === true) break;
      size += next.value.length;
      if (size > limit) throw new PayloadTooLarge(limit);
      chunks.push(next.value);
    }
  } catch (err) {
    // Stops reading without destroying the request (destroyOnReturn: false).
    void body.return?.();
    throw err;
  } finally {
    clearTimeout(timer);
  }
  return Buffer.concat(chunks, size);
}

/** Decodes strictly: a lossy decoder would turn bytes that are not UTF-8 into U+FFFD in names. */
const STRICT_UTF8 = new TextDecoder('utf-8', { fatal: true });

/**
 * Parses a JSON body; an empty body is `{}` (grpc-gateway accepts an empty body for `body: "*"`).
 * @throws C2Error `C2_VALIDATION` for a body that is not UTF-8 or not JSON, or that gives a key
 *   twice in one object
 */
export function parseJsonBody(body: Buffer): unknown {
  let text: string;
  try {
    text = STRICT_UTF8.decode(body);
  } catch {
    throw new C2Error('C2_VALIDATION', 'the body is not valid UTF-8', {
      details: { field: 'body' },
    });
  }
  if (text.trim() === '') return {};
  let parsed: unknown;
  try {
    parsed = JSON.parse(text) as unknown;
  } catch (err) {
    // V8's message quotes the text around the error, which may be a key or a plaintext: the
    // answer and the log keep its position only.
    const position = /position (\d+)/.exec(String(err))?.[1];
    const where = position === undefined ? '' : ` at position ${position}`;
    throw new C2Error('C2_VALIDATION', `malformed JSON${where}`, { details: { field: 'body' } });
  }
  const duplicate = firstDuplicateKey(text);
  if (duplicate !== undefined) {
    // A key is the client's own text, but may be long: the answer names a bounded part of it.
    const field = duplicate.length > 200 ? `${duplicate.slice(0, 200)}…` : duplicate;
    throw new C2Error('C2_VALIDATION', `${field} is given twice in the body`, {
      details: { field },
    });
  }
  return parsed;
}

/**
 * Headers of every API answer read by machines, not browsers: a browser must never take one
 * (which may quote a name) for HTML or a script, nor run or frame anything from it.
 */
export const API_SECURITY_HEADERS: Readonly<Record<string, string>> = {
  'x-content-type-options': 'nosniff',
  'content-security-policy': "default-src 'none'; frame-ancestors 'none'",
};

/** Writes a JSON response. */
export function sendJson(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  const payload = Buffer.from(JSON.stringify(body), 'utf8');
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': String(payload.length),
    'cache-control': 'no-store',
    ...API_SECURITY_HEADERS,
    ...headers,
  });
  res.end(payload);
}

/**
 * The error body of a failure.
 *
 * `v1`: `{"error": {"code": "C2_NOT_FOUND", "message": "...", "details": {...}, "requestId": "..."}}`.
 *
 * `gateway` (the `/e4/...` routes): grpc-gateway v1's body, `{"error": msg, "code": <gRPC code>,
 * "message": msg, "details": [...]}`, whose `details` holds one `google.rpc.ErrorInfo` (as
 * grpc-gateway renders a status detail) carrying our code as `reason` and the details as
 * `metadata`, so reference tools read what they always read and new ones get the stable code.
 */
export function errorBody(failure: ApiFailure, style: ErrorStyle): unknown {
  if (style === 'v1') {
    return {
      error: {
        code: failure.code,
        message: failure.message,
        ...(failure.details === undefined ? {} : { details: failure.details }),
        requestId: failure.requestId,
      },
    };
  }
  const metadata: Record<string, string> = { requestId: failure.requestId };
  for (const [key, value] of Object.entries(failure.details ?? {})) metadata[key] = String(value);
  return {
    error: failure.message,
    code: failure.grpc,
    message: failure.message,
    details: [
      {
        '@type': 'type.googleapis.com/google.rpc.ErrorInfo',
        reason: failure.code,
        domain: 'e4c2',
        metadata,
      },
    ],
  };
}
