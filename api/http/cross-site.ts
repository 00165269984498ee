/**
 * Refusal of state-changing requests that a browser sends on behalf of another site's page
 * (cross-site request forgery).
 *
 * The HTTP API accepts any content type and, without credentials configured, any caller; with
 * client certificates the browser presents the certificate on every request. So a page of any
 * site the operator visits could otherwise create topics or rotate keys through the operator's
 * browser with a form or a `fetch` in `no-cors` mode. Browsers say where a request comes from:
 * `Sec-Fetch-Site` (every current browser) and `Origin` (on every POST, PUT, PATCH and DELETE).
 * A request either marks as coming from another origin is refused; non-browser clients (the CLI,
 * c2cli, scripts, the proxies) send neither header and are unaffected, and the console, served
 * by the API itself, is same-origin.
 */
import { C2Error } from '../../cluster/errors.ts';

/** `Sec-Fetch-Site` values of a request made by another origin's page. */
const OTHER_SITE = new Set(['cross-site', 'same-site']);

/**
 * Throws when a state-changing request comes from another origin's page.
 *
 * @param header - reads one request header by its lower-case name
 * @param secure - the request came over TLS to this node: an `http:` Origin is then another
 *   origin (same host and port, other scheme). Without TLS at the node either scheme is accepted:
 *   a balancer in front may terminate TLS, so the browser's origin is `https:` there.
 * @throws C2Error `C2_PERMISSION_DENIED` (403)
 */
export function refuseCrossOrigin(
  header: (name: string) => string | undefined,
  secure = false,
): void {
  const fetchSite = header('sec-fetch-site')?.toLowerCase();
  if (fetchSite !== undefined && OTHER_SITE.has(fetchSite)) {
    throw refusal(`the browser marks it ${fetchSite}`);
  }
  const origin = header('origin');
  if (origin === undefined) return;
  const host = header('host')?.toLowerCase();
  const parsed = parseOrigin(origin);
  if (host === undefined || parsed?.host !== host || (secure && parsed.scheme !== 'https:')) {
    throw refusal(`its Origin (${origin.slice(0, 200)}) is not this server (${host ?? 'no Host'})`);
  }
}

/** The scheme and `host[:port]` of an Origin header; undefined for `null` or anything else. */
function parseOrigin(origin: string): { scheme: string; host: string } | undefined {
  try {
    const url = new URL(origin);
    return url.protocol === 'http:' || url.protocol === 'https:'
      ? { scheme: url.protocol, host: url.host }
      : undefined;
  } catch {
    return undefined;
  }
}

function refusal(why: string): C2Error {
  return new C2Error(
    'C2_PERMISSION_DENIED',
    `a state-changing request from another site's page is refused: ${why}`,
    { details: { reason: 'cross-origin' } },
  );
}
