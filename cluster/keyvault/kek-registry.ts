/**
 * The KEKs a vault knows: the current one (wraps new data keys) and, during a KEK rotation, the
 * previous ones (only unwrap). Wrapped keys name their KEK, so each finds its provider here.
 */
import { timingSafeEqual } from 'node:crypto';
import { C2Error } from '../errors.ts';
import type { KekProvider, WrappedKey } from './kek-provider.ts';

const keyOf = (kind: string, id: string): string => `${kind}/${id}`;

/** Providers by kind and KEK id. */
export class KekRegistry {
  readonly #providers = new Map<string, KekProvider>();
  #current: KekProvider;

  /**
   * @param current - wraps every new data key
   * @param previous - KEKs that only unwrap (keys not yet re-wrapped after a rotation)
   */
  constructor(current: KekProvider, previous: readonly KekProvider[] = []) {
    for (const p of previous) this.#providers.set(keyOf(p.kind, p.keyId), p);
    this.#current = current;
    this.#providers.set(keyOf(current.kind, current.keyId), current);
  }

  /** The KEK that wraps new data keys. */
  get current(): KekProvider {
    return this.#current;
  }

  /** Makes `provider` current, keeping the others for unwrapping. */
  setCurrent(provider: KekProvider): void {
    this.#providers.set(keyOf(provider.kind, provider.keyId), provider);
    this.#current = provider;
  }

  /**
   * The provider that wrapped `wrapped`.
   * @throws C2Error `C2_KEY_VAULT` naming the missing KEK, so the operator knows which to configure
   */
  providerFor(wrapped: WrappedKey): KekProvider {
    const provider = this.#providers.get(keyOf(wrapped.kekKind, wrapped.kekId));
    if (provider === undefined) {
      throw new C2Error(
        'C2_KEY_VAULT',
        `KEK ${keyOf(wrapped.kekKind, wrapped.kekId)} is not configured (current KEK: ${keyOf(this.#current.kind, this.#current.keyId)}); configure the KEK the data keys were wrapped with`,
        { details: { kekKind: wrapped.kekKind, kekId: wrapped.kekId } },
      );
    }
    return provider;
  }

  /** Unwraps with whichever known provider wrapped the key. @throws C2Error `C2_KEY_VAULT` */
  unwrap(wrapped: WrappedKey): Promise<Uint8Array> {
    return this.providerFor(wrapped).unwrap(wrapped);
  }
}

/**
 * Re-wraps one data key for a KEK rotation: unwraps it with its own provider from `registry`,
 * wraps it with `to`, and checks that `to` unwraps the result to the same key before returning,
 * so a misconfigured new KEK can never replace a working wrapped key.
 * @throws C2Error `C2_KEY_VAULT` when either KEK fails or the round trip does not match
 */
export async function rewrapKey(
  wrapped: WrappedKey,
  registry: KekRegistry,
  to: KekProvider,
): Promise<WrappedKey> {
  const dataKey = await registry.unwrap(wrapped);
  let check: Uint8Array | undefined;
  try {
    const rewrapped = await to.wrap(dataKey);
    check = await to.unwrap(rewrapped);
    if (check.length !== dataKey.length || !timingSafeEqual(check, dataKey)) {
      throw new C2Error(
        'C2_KEY_VAULT',
        `KEK ${keyOf(to.kind, to.keyId)} did not round-trip a data key`,
      );
    }
    return rewrapped;
  } finally {
    dataKey.fill(0);
    check?.fill(0);
  }
}

/**
 * Moves one data key to the newest version of its own KEK ({@link KekProvider.refresh}), checking
 * that the result unwraps to the same key before it is returned. @returns `wrapped` itself when it
 * was at the newest version
 * @throws C2Error `C2_KEY_VAULT` when the provider fails or the result does not match
 */
export async function refreshKey(wrapped: WrappedKey, provider: KekProvider): Promise<WrappedKey> {
  if (provider.refresh === undefined) return wrapped;
  const refreshed = await provider.refresh(wrapped);
  // At the newest version already: nothing moved, nothing to check.
  if (refreshed === wrapped) return wrapped;
  const before = await provider.unwrap(wrapped);
  let after: Uint8Array | undefined;
  try {
    after = await provider.unwrap(refreshed);
    if (after.length !== before.length || !timingSafeEqual(after, before)) {
      throw new C2Error(
        'C2_KEY_VAULT',
        `KEK ${keyOf(provider.kind, provider.keyId)} did not keep a data key across its refresh`,
      );
    }
    return refreshed;
  } finally {
    before.fill(0);
    after?.fill(0);
  }
}
