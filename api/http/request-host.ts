/**
 * The host a request names, for the host guard (`host-guard.ts`) and the cross-site check
 * (`cross-site.ts`): HTTP/1.1's `Host` header, or HTTP/2's `:authority` pseudo-header, which
 * browsers send instead of `Host` (RFC 9113 §8.3.1).
 */
import { C2Error } from '../../cluster/errors.ts';

/**
 * `:authority` when given, else `Host`; undefined with neither.
 *
 * @param header - reads one request header by its lower-case name
 * @throws C2Error `C2_VALIDATION` (400) when a request gives both and they differ: the checks
 *   would otherwise read one name while a proxy or a handler trusts the other (RFC 9113 lets a
 *   server treat the request as malformed)
 */
export function requestHost(header: (name: string) => string | undefined): string | undefined {
  const authority = header(':authority');
  const host = header('host');
  if (authority !== undefined && host !== undefined && authority !== host) {
    throw new C2Error('C2_VALIDATION', 'the Host header and :authority name different hosts', {
      details: { field: 'host' },
    });
  }
  return authority ?? host;
}
