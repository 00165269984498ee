/** What the gRPC and HTTP servers share: listen errors, addresses, idempotency keys, timing. */
import { C2Error } from '../cluster/errors.ts';

/** A bound address. */
export interface BoundAddress {
  readonly host: string;
  readonly port: number;
}

/** `host:port`, with brackets around an IPv6 host. */
export function formatHostPort(host: string, port: number): string {
  return host.includes(':') && !host.startsWith('[') ? `[${host}]:${port}` : `${host}:${port}`;
}

/**
 * A clear start-up error for a listener that could not bind (no stack trace needed to act).
 * `detail` is the system error text (`listen EADDRINUSE: ...`).
 */
export function listenFailure(
  surface: 'gRPC' | 'HTTP',
  host: string,
  port: number,
  detail: string,
  cause?: unknown,
): C2Error {
  const options = { cause, details: { host, port } };
  if (detail.includes('EADDRINUSE'))
    return new C2Error(
      'C2_UNAVAILABLE',
      `port ${port} on ${host} is already in use (${surface})`,
      options,
    );
  if (detail.includes('EADDRNOTAVAIL') || detail.includes('ENOTFOUND'))
    return new C2Error(
      'C2_UNAVAILABLE',
      `${host} is not an address of this machine (${surface})`,
      options,
    );
  if (detail.includes('EACCES'))
    return new C2Error(
      'C2_UNAVAILABLE',
      `no permission to listen on port ${port} of ${host} (${surface})`,
      options,
    );
  return new C2Error(
    'C2_UNAVAILABLE',
    `cannot listen on ${formatHostPort(host, port)} (${surface}): ${detail}`,
    options,
  );
}

/**
 * Checks an idempotency key from a header or metadata entry: 1 to 128 printable ASCII
 * characters; absent stays absent.
 * @throws C2Error `C2_VALIDATION`
 */
export function checkIdempotencyKey(value: string | undefined): string | undefined {
  if (value === undefined) return undefined;
  if (!/^[\x21-\x7e]{1,128}$/.test(value)) {
    throw new C2Error(
      'C2_VALIDATION',
      'the idempotency key must be 1 to 128 printable ASCII characters without spaces',
      { details: { field: 'idempotency-key' } },
    );
  }
  return value;
}

/** Milliseconds since `started` (a `performance.now()` value), rounded to 0.1 ms. */
export function elapsedMs(started: number): number {
  return Math.round((performance.now() - started) * 10) / 10;
}
