/**
 * Key stores lost from a state directory that served their identities before. Opening the key
 * ring would draw a new key for such an identity, which is not the one the C2 holds: every later
 * command would be rejected and every message dropped, silently. So they are refused unless the
 * new key is going to the C2 (`register --replace`, trust on first use).
 */
import { access } from 'node:fs/promises';
import type { IdentityConfig } from './config.ts';
import { subscribedIdentities } from './control-subscriptions.ts';
import { ProxyError, ProxyErrorCode } from './errors.ts';
import { identityStatePath } from './key-ring.ts';

/**
 * Refuses identities without a key store that an earlier start recorded as served
 * (`control-subscriptions.json`): their store was lost (or removed).
 * @throws ProxyError `PROXY_KEY_STORE` naming them and what to do; also when the record is not
 *   readable
 */
export async function refuseLostStores(
  stateDir: string,
  identities: readonly IdentityConfig[],
): Promise<void> {
  const served = await subscribedIdentities(stateDir);
  const lost: string[] = [];
  for (const { name } of identities) {
    if (!served.has(name)) continue;
    const found = await access(identityStatePath(stateDir, name)).then(
      () => true,
      () => false,
    );
    if (!found) lost.push(name);
  }
  if (lost.length === 0) return;
  const paths = lost.map((name) => identityStatePath(stateDir, name)).join(', ');
  throw new ProxyError(
    ProxyErrorCode.KeyStore,
    `no key store for ${lost.join(', ')} (${paths}), although this state directory served ${lost.length === 1 ? 'it' : 'them'} before: a new key would not be the C2's. Restore the key store from a backup, or run register --replace and resync the identity at the C2 (trust on first use, c2.tofu, does both at start)`,
  );
}
