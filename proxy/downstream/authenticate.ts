/**
 * Which E4 identity a downstream client uses. Local mode: the one identity, for any client on
 * the loopback. Gateway mode: the first `devices` entry whose every given field (client id,
 * username, verified certificate common name) equals the connection's, with its password when
 * the entry has a hash; else the gateway identity, when configured.
 */
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
  | { readonly ok: true; readonly identity: HeldIdentity }
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
      return fallback === undefined
        ? { ok: false, reason: 'not-authorized' }
        : { ok: true, identity: fallback };
    }
    if (device.passwordHash !== undefined) {
      if (c.password === undefined || !(await verifyPassword(c.password, device.passwordHash))) {
        return { ok: false, reason: 'bad-credentials' };
      }
    }
    const identity = ring.get(device.identity);
    return identity === undefined
      ? { ok: false, reason: 'not-authorized' }
      : { ok: true, identity };
  };
}
