/**
 * The key vault (DESIGN R8): envelope encryption of keys at rest. Values are sealed with data
 * keys (DEKs) bound to their row; DEKs are stored wrapped by a key-encryption key (KEK) from a
 * {@link KekProvider}.
 */
export type { DataKeyStore, StoredDataKey } from './data-key-store.ts';
export { ENVELOPE_V1, type SealBinding } from './envelope.ts';
export { keyFingerprint } from './fingerprint.ts';
export type { KekProvider, WrappedKey } from './kek-provider.ts';
export { KekRegistry, refreshKey, rewrapKey } from './kek-registry.ts';
export type { KeyFileOptions } from './key-file.ts';
export { KeyVault, type KeyVaultOptions } from './key-vault.ts';
export { LocalKekProvider } from './local-kek-provider.ts';
export { InMemoryDataKeyStore } from './memory-data-key-store.ts';
export { loadPkcs11Binding, type Pkcs11Api, type Pkcs11Binding } from './pkcs11-binding.ts';
export { Pkcs11KekProvider, type Pkcs11KekOptions } from './pkcs11-kek-provider.ts';
export {
  VaultTransitKekProvider,
  type VaultAuth,
  type VaultTransitOptions,
} from './vault-transit-kek-provider.ts';
export { MIN_PASSPHRASE_BYTES, SALT_BYTES } from './passphrase-kdf.ts';
