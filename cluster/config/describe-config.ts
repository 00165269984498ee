/** A printable view of the effective configuration, for `npm start` and diagnostics. */
import type { Config } from './config-types.ts';
import { Secret } from './secret.ts';

const REDACTED = '[redacted]';

/**
 * Shows where a service URL points without what authenticates to it: scheme, host, port and path
 * stay; user info and the query string (libpq accepts `?password=`) become `[redacted]`.
 */
function redactUrl(secret: Secret): string {
  let url: URL;
  try {
    url = new URL(secret.reveal());
  } catch {
    return REDACTED;
  }
  const credentials = url.username !== '' || url.password !== '' ? `${REDACTED}@` : '';
  const query = url.search === '' ? '' : `?${REDACTED}`;
  return `${url.protocol}//${credentials}${url.host}${url.pathname}${query}`;
}

const isListenAddress = (v: object): v is { host: string; port: number } => {
  const keys = Object.keys(v);
  return keys.length === 2 && keys.includes('host') && keys.includes('port');
};

/** Secrets whose non-secret part (where the service is) is worth printing. */
const URL_PATHS = new Set(['database.url', 'redis.url', 'redis.redlockUrls']);

function describe(value: unknown, path: string): unknown {
  if (value instanceof Secret) return URL_PATHS.has(path) ? redactUrl(value) : REDACTED;
  if (typeof value !== 'object' || value === null) return value;
  if (Array.isArray(value)) return value.map((item: unknown) => describe(item, path));
  if (isListenAddress(value)) {
    return value.host.includes(':')
      ? `[${value.host}]:${value.port}`
      : `${value.host}:${value.port}`;
  }
  return Object.fromEntries(
    Object.entries(value).map(([k, v]) => [k, describe(v, path === '' ? k : `${path}.${k}`)]),
  );
}

/**
 * A JSON-friendly copy of `config` for printing: every secret is `'[redacted]'` (service URLs keep
 * their scheme, host, port and path), listen addresses are `host:port` strings.
 */
export function describeConfig(config: Config): Record<string, unknown> {
  return describe(config, '') as Record<string, unknown>;
}
