/**
 * A node's key vault, opened at start-up with the configured KEK. A KEK that cannot open this
 * database's data keys stops the node with an error naming the settings it came from, and
 * writes nothing: no data key, no key file, no salt.
 */
import type { KekConfig } from '../cluster/config/index.ts';
import { C2Error } from '../cluster/errors.ts';
import {
  KeyVault,
  type DataKeyStore,
  type KekProvider,
  type StoredDataKey,
} from '../cluster/keyvault/index.ts';
import type { Lifecycle } from '../cluster/lifecycle.ts';
import type { PgC2Store } from '../cluster/storage/index.ts';
import { configuredKek, type KekLogger } from './kek-providers.ts';
import { withKekSettings } from './kek-settings.ts';

/** `kind/id` of each KEK that wraps `stored`, with its count of data keys. */
function keksOf(stored: readonly StoredDataKey[]): Map<string, number> {
  const keks = new Map<string, number>();
  for (const k of stored) {
    const name = `${k.wrapped.kekKind}/${k.wrapped.kekId}`;
    keks.set(name, (keks.get(name) ?? 0) + 1);
  }
  return keks;
}

/**
 * Refuses a KEK that wraps none of the stored data keys, or not all of them, before anything
 * tries to unwrap them: the message says which KEKs would be needed.
 * @throws C2Error `C2_KEY_VAULT`
 */
function refuseOtherKek(provider: KekProvider, stored: readonly StoredDataKey[]): void {
  const own = `${provider.kind}/${provider.keyId}`;
  const others = [...keksOf(stored)].filter(([name]) => name !== own);
  if (others.length === 0) return;
  const list = others.map(([name, n]) => `${name} (${n} data key${n === 1 ? '' : 's'})`);
  throw new C2Error(
    'C2_KEY_VAULT',
    `the configured KEK is ${own}, but this database's data keys are wrapped by ${list.join(', ')}: set the KEK they were wrapped with ("npm run kek -- status" lists them; after "npm run kek -- rewrap", the new one)`,
    { details: { kekKind: provider.kind, kekId: provider.keyId } },
  );
}

/**
 * Opens the key vault of a node: the configured KEK (made on first start only, for a database
 * without data keys), checked against the stored data keys, then every data key unwrapped.
 * @throws C2Error `C2_KEY_VAULT`, `C2_CONFIG` or `C2_UNAVAILABLE`, its message starting with the
 *   settings of the KEK at fault
 */
export async function openNodeKeyVault(
  kek: KekConfig,
  store: PgC2Store,
  dataKeys: DataKeyStore,
  lifecycle: Lifecycle,
  logger: KekLogger,
): Promise<KeyVault> {
  const stored = await dataKeys.list();
  try {
    const provider = await configuredKek(kek, store, lifecycle, logger, [...keksOf(stored).keys()]);
    refuseOtherKek(provider, stored);
    return await KeyVault.create({ provider, store: dataKeys });
  } catch (err) {
    throw withKekSettings(kek, err);
  }
}
