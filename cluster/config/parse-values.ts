/**
 * Pure parsers for single setting values. Environment values are strings; config file values may
 * also be JSON numbers and booleans. A failure carries a reason that never contains the value
 * itself: the caller decides whether quoting the value is safe.
 */
import { isIPv4, isIPv6 } from 'node:net';
import type { ListenAddress } from './config-types.ts';

/** Result of a parser. `sensitive` failures must not be reported with the offending value. */
export type Parsed<T> =
  | { readonly ok: true; readonly value: T }
  | { readonly ok: false; readonly reason: string; readonly sensitive?: true };

/** A parser of one raw value. */
export type Parser<T> = (raw: unknown) => Parsed<T>;

const ok = <T>(value: T): Parsed<T> => ({ ok: true, value });
const fail = <T>(reason: string): Parsed<T> => ({ ok: false, reason });

/** Any non-empty string. */
export const parseString: Parser<string> = (raw) =>
  typeof raw === 'string' && raw.length > 0 ? ok(raw) : fail('must be a non-empty string');

/** A non-empty string matching `pattern`; `description` says what is expected. */
export function parsePattern(pattern: RegExp, description: string): Parser<string> {
  return (raw) => {
    const s = parseString(raw);
    if (!s.ok) return s;
    return pattern.test(s.value) ? s : fail(`must be ${description}`);
  };
}

/** An integer in `min..max`, from a JSON number or a string of decimal digits. */
export function parseInteger(min: number, max: number): Parser<number> {
  const expected = `must be an integer from ${min} to ${max}`;
  return (raw) => {
    let n: number;
    if (typeof raw === 'number') n = raw;
    // Digits only: Number() would also accept '', '0x10', '1e3' and ' 7 '.
    else if (typeof raw === 'string' && /^[+-]?\d{1,16}$/.test(raw)) n = Number(raw);
    else return fail(expected);
    return Number.isSafeInteger(n) && n >= min && n <= max ? ok(n) : fail(expected);
  };
}

/** `true`/`false`/`1`/`0` (strings, case-insensitive), or a JSON boolean. */
export const parseBoolean: Parser<boolean> = (raw) => {
  if (typeof raw === 'boolean') return ok(raw);
  if (typeof raw === 'string') {
    const s = raw.toLowerCase();
    if (s === 'true' || s === '1') return ok(true);
    if (s === 'false' || s === '0') return ok(false);
  }
  return fail('must be true, false, 1 or 0');
};

/** One of `allowed`, exactly. */
export function parseEnum<T extends string>(allowed: readonly T[]): Parser<T> {
  const expected = `must be one of ${allowed.join(', ')}`;
  return (raw) =>
    typeof raw === 'string' && (allowed as readonly string[]).includes(raw)
      ? ok(raw as T)
      : fail(expected);
}

const HOSTNAME =
  /^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;

/**
 * `host:port` or `[ipv6]:port`, port 0..65535 (0 = any free port). The host is required, so
 * listening on every interface is an explicit `0.0.0.0` or `[::]`, never an accident.
 */
export const parseListenAddress: Parser<ListenAddress> = (raw) => {
  const expected = 'must be host:port or [ipv6]:port with a port from 0 to 65535';
  if (typeof raw !== 'string') return fail(expected);
  const m = /^(?:\[([^\]]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(raw);
  if (m === null) return fail(expected);
  const [, v6, host4OrName, portText] = m;
  const port = Number(portText);
  if (port > 65535) return fail(expected);
  if (v6 !== undefined) return isIPv6(v6) ? ok({ host: v6, port }) : fail(expected);
  if (host4OrName === undefined) return fail(expected);
  // A dotted quad that is not a valid IPv4 address (999.1.1.1) must not pass as a hostname.
  const looksNumeric = /^[\d.]+$/.test(host4OrName);
  const valid = looksNumeric ? isIPv4(host4OrName) : HOSTNAME.test(host4OrName);
  return valid ? ok({ host: host4OrName, port }) : fail(expected);
};

/** Options of {@link parseUrl}. */
export interface UrlRules {
  /** Accepted schemes, without the colon. */
  readonly schemes: readonly string[];
  /** Whether `user:password@` may appear (if not, the failure is `sensitive`). */
  readonly allowCredentials: boolean;
  /** Where credentials go instead, said when the URL carries some. */
  readonly credentialsHint?: string;
  /**
   * Whether a query string may appear. A URL of a service that takes no parameters has no use for
   * one, and an `?api_key=` there would be a secret shown wherever the URL is.
   */
  readonly allowQuery?: boolean;
}

/**
 * An absolute `scheme://…` URL. Failures are always `sensitive`: a URL that does not parse may
 * still hold a password, so it is never quoted back.
 */
export function parseUrl(rules: UrlRules): Parser<URL> {
  const schemes = rules.schemes.map((s) => `${s}://`).join(' or ');
  const sensitive = (reason: string): Parsed<URL> => ({ ok: false, reason, sensitive: true });
  return (raw) => {
    if (typeof raw !== 'string' || raw.length === 0) return sensitive('must be a non-empty URL');
    // Requiring "//" makes the URL parser split the authority, so a password can never end up in
    // the path (where a redacted view would show it).
    const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(raw)?.[1]?.toLowerCase();
    if (scheme === undefined || !rules.schemes.includes(scheme)) {
      return sensitive(`must be a URL starting with ${schemes}`);
    }
    let url: URL;
    try {
      url = new URL(raw);
    } catch {
      return sensitive('is not a valid URL');
    }
    if (!rules.allowCredentials && (url.username !== '' || url.password !== '')) {
      return sensitive(
        `must not contain credentials (${rules.credentialsHint ?? 'use the separate username/password settings'})`,
      );
    }
    if (rules.allowQuery === false && (url.search !== '' || raw.includes('#')))
      return sensitive('must not carry a query string or fragment');
    return ok(url);
  };
}

/** One DNS label: letters, digits and inner hyphens, 1 to 63 characters. */
const DNS_LABEL = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;

/**
 * Host names, comma-separated (or, in a config file, a JSON array of strings): DNS names without
 * port or scheme, lower-cased. An empty list is allowed (`""`).
 */
export const parseHostNames: Parser<readonly string[]> = (raw) => {
  const items =
    typeof raw === 'string'
      ? raw.split(',')
      : Array.isArray(raw) && raw.every((x) => typeof x === 'string')
        ? raw
        : undefined;
  if (items === undefined) return fail('must be comma-separated host names');
  const names: string[] = [];
  for (const item of items) {
    const name = item.trim().toLowerCase().replace(/\.$/, '');
    if (name === '') continue;
    if (name.length > 253 || !name.split('.').every((label) => DNS_LABEL.test(label))) {
      return fail(
        `must be comma-separated host names (letters, digits, hyphens and dots; no port or scheme): ${JSON.stringify(item.trim().slice(0, 80))} is not one`,
      );
    }
    names.push(name);
  }
  return ok(names);
};
