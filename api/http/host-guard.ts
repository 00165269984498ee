/**
 * Refusal of API requests that name a host this node does not answer to, while callers are not
 * authenticated (DNS rebinding).
 *
 * Without an API credentials file every caller is admin, which is fit for a loopback development
 * node. But a page of any site the developer visits can point its own name at 127.0.0.1 (a DNS
 * answer with a short lifetime, then another), after which the browser treats the node as that
 * site: same origin, so the cross-site checks (`cross-site.ts`) see nothing wrong, and the page
 * may read every answer. What it cannot change is the `Host` header, which names the attacker's
 * domain. So, without authentication, a request must name an IP address, `localhost` (or a name
 * under `.localhost`, which resolvers keep on loopback), or a name the operator allowed
 * (`E4C2_HTTP_ALLOWED_HOSTS`). With authentication on, a page has no token to send and this
 * guard is off: the credentials decide.
 */
import { isIP } from 'node:net';
import { C2Error } from '../../cluster/errors.ts';

/** The host name of a `Host` header (port and IPv6 brackets removed, lower case). */
export function hostName(header: string): string {
  const value = header.trim().toLowerCase();
  if (value.startsWith('[')) {
    const end = value.indexOf(']');
    return end < 0 ? value : value.slice(1, end);
  }
  const colon = value.lastIndexOf(':');
  // More than one colon without brackets is not host:port (an IPv6 literal some clients send).
  return colon < 0 || value.indexOf(':') !== colon ? value : value.slice(0, colon);
}

/**
 * Whether a request naming `host` may be served: an IP address, `localhost`, a name under
 * `.localhost`, or one of `allowed` (lower case, without port). A request without a `Host`
 * header (HTTP/1.0 clients and some health checkers) is allowed: browsers always send one.
 */
export function hostAllowed(host: string | undefined, allowed: ReadonlySet<string>): boolean {
  if (host === undefined) return true;
  const name = hostName(host).replace(/\.$/, '');
  return (
    isIP(name) !== 0 || name === 'localhost' || name.endsWith('.localhost') || allowed.has(name)
  );
}

/**
 * Throws when a request names a host that is not allowed (see {@link hostAllowed}).
 * @throws C2Error `C2_PERMISSION_DENIED` (403), details `{ reason: 'host-not-allowed' }`
 */
export function refuseUnknownHost(host: string | undefined, allowed: ReadonlySet<string>): void {
  if (hostAllowed(host, allowed)) return;
  throw new C2Error(
    'C2_PERMISSION_DENIED',
    `requests naming host ${JSON.stringify((host ?? '').slice(0, 200))} are refused while API authentication is off (a page of another site could reach this node by DNS rebinding); use 127.0.0.1 or localhost, add the name to E4C2_HTTP_ALLOWED_HOSTS, or turn authentication on`,
    { details: { reason: 'host-not-allowed' } },
  );
}
