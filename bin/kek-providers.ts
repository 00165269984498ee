/**
 * The KEK providers a configuration names (DESIGN R8): a key file, a passphrase (its salt kept in
 * the database), a key inside an HSM over PKCS#11, or a HashiCorp Vault transit key. Shared by
 * the nodes and `npm run kek`.
 */
import { access, readFile } from 'node:fs/promises';
import type { KekConfig } from '../cluster/config/index.ts';
import { C2Error } from '../cluster/errors.ts';
import {
  LocalKekProvider,
  Pkcs11KekProvider,
  VaultTransitKekProvider,
  type KekProvider,
  type Pkcs11KekOptions,
  type VaultTransitOptions,
} from '../cluster/keyvault/index.ts';
import type { Lifecycle, LifecycleLogger } from '../cluster/lifecycle.ts';
import type { PgC2Store } from '../cluster/storage/index.ts';

/** The `c2_settings` row that holds the passphrase KDF's salt (public, shared by every node). */
export const KEK_SALT_SETTING = 'kek_salt';

/** Where a KEK reports what happens to it after it opened. */
export type KekLogger = Pick<LifecycleLogger, 'error'>;

/**
 * Opens a PKCS#11 KEK and closes its session when `lifecycle` shuts down. A PIN the token refuses
 * later (changed while the process runs) is logged once at error level: from then on every call
 * fails without logging in, so that the token does not lock the PIN.
 */
export async function openPkcs11Kek(
  options: Pkcs11KekOptions,
  lifecycle: Lifecycle,
  logger: KekLogger,
): Promise<Pkcs11KekProvider> {
  const provider = await Pkcs11KekProvider.open({
    ...options,
    onPinRefused: (err) => {
      logger.error(
        { kek: `pkcs11/${provider.keyId}`, code: err.code, reason: err.details?.['reason'] },
        err.message,
      );
    },
  });
  lifecycle.add('pkcs11 session', () => {
    provider.close();
  });
  return provider;
}

/**
 * The KEK of a node's configuration. The embedded mode's generated key file is created on first
 * start; a passphrase's salt is created in the database on first start.
 * @param dataKeysUnder - the KEKs (`kind/id`) that wrap the database's data keys, when it has
 *   any: then no KEK is made (no key file generated, no salt chosen), since a new KEK could open
 *   none of them; its absence is reported instead
 * @throws C2Error `C2_KEY_VAULT` or `C2_CONFIG` when the KEK cannot be opened
 */
export async function configuredKek(
  kek: KekConfig,
  store: PgC2Store,
  lifecycle: Lifecycle,
  logger: KekLogger,
  dataKeysUnder: readonly string[] = [],
): Promise<KekProvider> {
  const made = dataKeysUnder.length === 0;
  switch (kek.kind) {
    case 'file':
      return LocalKekProvider.fromKeyFile(kek.path);
    case 'generated-file':
      if (!made) await mustExist(kek.path, dataKeysUnder);
      return LocalKekProvider.loadOrGenerateKeyFile(kek.path);
    case 'passphrase': {
      if (!made) return storedPassphraseKek(kek.passphrase.reveal(), store, dataKeysUnder);
      const saltHex = await store.transaction((tx) =>
        tx.journal.initSetting(
          KEK_SALT_SETTING,
          Buffer.from(LocalKekProvider.newSalt()).toString('hex'),
        ),
      );
      return LocalKekProvider.fromPassphrase(
        kek.passphrase.reveal(),
        new Uint8Array(Buffer.from(saltHex, 'hex')),
      );
    }
    case 'vault-transit':
      return VaultTransitKekProvider.connect(await vaultOptions(kek));
    case 'pkcs11':
      return openPkcs11Kek(
        {
          modulePath: kek.modulePath,
          tokenLabel: kek.tokenLabel,
          keyLabel: kek.keyLabel,
          pin: kek.pin.reveal(),
        },
        lifecycle,
        logger,
      );
  }
}

/** Options of the Vault transit KEK of a configuration, `keyName` replaced when given. */
export async function vaultOptions(
  kek: Extract<KekConfig, { kind: 'vault-transit' }>,
  keyName = kek.keyName,
): Promise<VaultTransitOptions> {
  let caPem: string | undefined;
  if (kek.caFile !== undefined) {
    try {
      caPem = await readFile(kek.caFile, 'utf8');
    } catch (err) {
      throw new C2Error('C2_CONFIG', `cannot read the Vault CA file ${kek.caFile}`, { cause: err });
    }
  }
  return {
    addr: kek.addr,
    keyName,
    mount: kek.mount,
    auth:
      kek.auth.kind === 'token'
        ? { kind: 'token', token: kek.auth.token.reveal() }
        : { kind: 'approle', roleId: kek.auth.roleId, secretId: kek.auth.secretId.reveal() },
    ...(kek.namespace === undefined ? {} : { namespace: kek.namespace }),
    ...(caPem === undefined ? {} : { caPem }),
  };
}

/**
 * The generated KEK file of a database that has data keys: it must be there, as a new one would
 * open none of them.
 * @throws C2Error `C2_KEY_VAULT` when it is missing
 */
async function mustExist(path: string, dataKeysUnder: readonly string[]): Promise<void> {
  try {
    await access(path);
  } catch {
    throw new C2Error(
      'C2_KEY_VAULT',
      `KEK file ${path} does not exist, but this database's data keys are wrapped by KEK ${dataKeysUnder.join(', ')}: restore the file from the KEK's backup (a new KEK would open none of them)`,
    );
  }
}

/**
 * A passphrase KEK of this database, for unwrapping only: the salt must exist already (a
 * passphrase KEK that never wrapped anything here has none).
 * @param dataKeysUnder - the KEKs of the data keys, named when there is no salt
 * @throws C2Error `C2_CONFIG` when the database has no salt
 */
export async function storedPassphraseKek(
  passphrase: string,
  store: PgC2Store,
  dataKeysUnder: readonly string[] = [],
): Promise<LocalKekProvider> {
  const saltHex = await store.read.journal.setting(KEK_SALT_SETTING);
  if (saltHex === undefined) {
    const under = dataKeysUnder.length === 0 ? '' : ` (they are under ${dataKeysUnder.join(', ')})`;
    throw new C2Error(
      'C2_CONFIG',
      `this database has no passphrase salt: its data keys were never wrapped by a passphrase KEK${under}`,
    );
  }
  return LocalKekProvider.fromPassphrase(passphrase, new Uint8Array(Buffer.from(saltHex, 'hex')));
}
