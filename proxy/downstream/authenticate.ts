/**
 * Which E4 identity a downstream client uses. Local mode: the one identity, for any client on
 * the loopback. Gateway mode: the first `devices` entry whose every given field (client id,
 * username, verified certificate common name) equals the connection's, with its password when
 * the entry has a hash; else the gateway identity, when configured.
 *
 * In gateway mode the result also names the entry (or the gateway identity) that accepted the
 * client, as a session tag that goes into the upstream client id: a client accepted by another
 * entry never gets the same upstream session, whatever client id it claims.
 */
import { createHash } from 'node:crypto';
import type { DeviceConfig } from '../config.ts';
import type { HeldIdentity, KeyRing } from '../key-ring.ts';
import { verifyPassword } from '../password.ts';

/** What a CONNECT and its transport say about the client. */
export interface ConnectCredentials {
  readonly clientId: string;
  readonly username: string | undefined;
  readonly password: Buffer | undefined;
  /** Common name of a TLS client certificate the listener verified. */
  readonly certCommonName: string | undefined;
}

/** Outcome of an authentication. */
export type AuthResult =
  | {
      readonly ok: true;
      readonly identity: HeldIdentity;
      /**
       * {@link SESSION_TAG_LENGTH} hex digits naming what accepted the client (gateway mode),
       * put before the client id upstream; none: the client id alone (local mode).
       */
      readonly sessionTag?: string;
    }
  | { readonly ok: false; readonly reason: 'bad-credentials' | 'not-authorized' };

/** Decides a downstream client's identity. */
export type Authenticator = (credentials: ConnectCredentials) => Promise<AuthResult>;

/** Local mode: every client uses `identity`. */
export function localAuthenticator(identity: HeldIdentity): Authenticator {
  return () => Promise.resolve({ ok: true, identity });
}

function matches(device: DeviceConfig, c: ConnectCredentials): boolean {
  return (
    (device.clientId === undefined || device.clientId === c.clientId) &&
    (device.username === undefined || device.username === c.username) &&
    (device.certCommonName === undefined || device.certCommonName === c.certCommonName)
  );
}

/** Length of a session tag: 48 bits, hex. */
export const SESSION_TAG_LENGTH = 12;

/**
 * The session tag of a `devices` entry (its identity and the fields it matches on, not its
 * password hash, so a new password keeps the sessions), or of the gateway identity.
 */
export function sessionTag(accepted: DeviceConfig | { readonly gatewayIdentity: string }): string {
  const key =
    'gatewayIdentity' in accepted
      ? ['gateway', accepted.gatewayIdentity]
      : [
          'device',
          accepted.identity,
          accepted.clientId ?? null,
          accepted.username ?? null,
          accepted.certCommonName ?? null,
        ];
  return createHash('sha256')
    .update(JSON.stringify(key))
    .digest('hex')
    .slice(0, SESSION_TAG_LENGTH);
}

/** Gateway mode: per-device identities from the configuration. */
export function gatewayAuthenticator(
  devices: readonly DeviceConfig[],
  ring: KeyRing,
  gatewayIdentity: string | undefined,
): Authenticator {
  return async (c) => {
    const device = devices.find((d) => matches(d, c));
    if (device === undefined) {
      const fallback = gatewayIdentity === undefined ? undefined : ring.get(gatewayIdentity);
      return fallback === undefined || gatewayIdentity === undefined
        ? { ok: false, reason: 'not-authorized' }
        : { ok: true, identity: fallback, sessionTag: sessionTag({ gatewayIdentity }) };
    }
    if (device.passwordHash !== undefined) {
      if (c.password === undefined || !(await verifyPassword(c.password, device.passwordHash))) {
        return { ok: false, reason: 'bad-credentials' };
      }
    }
    const identity = ring.get(device.identity);
    return identity === undefined
      ? { ok: false, reason: 'not-authorized' }
      : { ok: true, identity, sessionTag: sessionTag(device) };
  };
}
