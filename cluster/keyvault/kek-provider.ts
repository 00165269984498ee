/**
 * The key-encryption-key (KEK) port of the key vault. A provider wraps and unwraps data keys;
 * the KEK itself may never leave it (HashiCorp Vault transit, an HSM over PKCS#11), which is why
 * the interface is asynchronous and deals only in wrapped bytes.
 */
import { C2Error } from '../errors.ts';

/** A data key wrapped by a KEK, as stored next to the data it protects. */
export interface WrappedKey {
  /** {@link KekProvider.kind} of the provider that wrapped it. */
  readonly kekKind: string;
  /** {@link KekProvider.keyId} of the KEK version that wrapped it. */
  readonly kekId: string;
  /** Provider-specific bytes (for the local provider: iv || ciphertext || tag). */
  readonly ciphertext: Uint8Array;
}

/** Wraps data keys under one KEK version. */
export interface KekProvider {
  /** Provider family, e.g. `'local'`, `'vault-transit'`, `'pkcs11'`. */
  readonly kind: string;
  /**
   * Public identifier of the KEK version: stable for one KEK, different for another, and
   * revealing nothing about the key. Stored with every wrapped key to find its provider again.
   */
  readonly keyId: string;
  /** Wraps `dataKey`. @throws C2Error `C2_KEY_VAULT` or `C2_UNAVAILABLE` */
  wrap(dataKey: Uint8Array): Promise<WrappedKey>;
  /**
   * Unwraps a key this provider wrapped.
   * @throws C2Error `C2_KEY_VAULT` when the key is not this provider's or does not authenticate
   */
  unwrap(wrapped: WrappedKey): Promise<Uint8Array>;
  /**
   * For a KEK with versions of its own (Vault transit): the same data key wrapped under the KEK's
   * newest version, without it leaving the provider in clear; `wrapped` itself when it is at the
   * newest version already. Absent for single-version KEKs.
   * @throws C2Error as {@link unwrap}
   */
  refresh?(wrapped: WrappedKey): Promise<WrappedKey>;
}

/**
 * The error for a wrapped key that names another KEK than `provider` (each provider checks this
 * before it tries to unwrap), or `undefined` when the key is `provider`'s.
 */
export function notWrappedBy(provider: KekProvider, wrapped: WrappedKey): C2Error | undefined {
  if (wrapped.kekKind === provider.kind && wrapped.kekId === provider.keyId) return undefined;
  return new C2Error(
    'C2_KEY_VAULT',
    `data key is wrapped by KEK ${wrapped.kekKind}/${wrapped.kekId}, not ${provider.kind}/${provider.keyId}`,
  );
}
