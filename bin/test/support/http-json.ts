/**
 * JSON over HTTP for cluster tests, one TCP connection per request (no keep-alive): every request
 * is balanced anew by the load balancer, so a failure can only hit the requests in flight on a
 * node at the moment it dies, never a later one that happened to reuse a pooled connection.
 */
import { request } from 'node:http';

/** An answer: status and parsed body (`{}` when the body is not a JSON object). */
export interface JsonAnswer {
  readonly status: number;
  readonly json: Record<string, unknown>;
}

/** Longest answer read. */
const MAX_BODY = 1024 * 1024;

/**
 * Sends one request; rejects on a network error, a timeout or an oversized answer.
 * @param base - `http://host:port`
 */
export function httpJson(
  base: string,
  method: string,
  path: string,
  options: { body?: unknown; idempotencyKey?: string; timeoutMs?: number } = {},
): Promise<JsonAnswer> {
  return new Promise((resolve, reject) => {
    const body = options.body === undefined ? undefined : JSON.stringify(options.body);
    const req = request(
      new URL(path, base),
      {
        method,
        agent: false,
        headers: {
          connection: 'close',
          accept: 'application/json',
          ...(body === undefined
            ? {}
            : {
                'content-type': 'application/json',
                'content-length': String(Buffer.byteLength(body)),
              }),
          ...(options.idempotencyKey === undefined
            ? {}
            : { 'idempotency-key': options.idempotencyKey }),
        },
        timeout: options.timeoutMs ?? 10_000,
      },
      (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (chunk: Buffer) => {
          size += chunk.length;
          if (size > MAX_BODY) req.destroy(new Error('answer too large'));
          else chunks.push(chunk);
        });
        res.on('end', () => {
          let json: Record<string, unknown> = {};
          try {
            const parsed: unknown = JSON.parse(Buffer.concat(chunks).toString('utf8'));
            if (typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed))
              json = parsed as Record<string, unknown>;
          } catch {
            // not JSON: an empty object
          }
          resolve({ status: res.statusCode ?? 0, json });
        });
        res.on('error', reject);
      },
    );
    req.on('timeout', () => {
      req.destroy(
        new Error(`${method} ${path}: no answer within ${options.timeoutMs ?? 10_000} ms`),
      );
    });
    req.on('error', reject);
    req.end(body);
  });
}
