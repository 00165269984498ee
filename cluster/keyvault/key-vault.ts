/** Envelope encryption of keys at rest (DESIGN R8). */
import { createSecretKey, randomBytes, randomInt, type KeyObject } from 'node:crypto';
import { inspect } from 'node:util';
import { concatBytes } from '../../e4/index.ts';
import { C2Error } from '../errors.ts';
import { gcmOpen, gcmSeal } from './aes-gcm.ts';
import type { DataKeyStore, StoredDataKey } from './data-key-store.ts';
import { envelopeHeader, parseEnvelope, sealAad, type SealBinding } from './envelope.ts';
import type { KekProvider, WrappedKey } from './kek-provider.ts';
import { KekRegistry, refreshKey, rewrapKey } from './kek-registry.ts';

/** Dependencies of {@link KeyVault.create}. */
export interface KeyVaultOptions {
  /** The current KEK: wraps new data keys. */
  readonly provider: KekProvider;
  /** Older KEKs still needed to unwrap data keys not yet re-wrapped (during a KEK rotation). */
  readonly previousProviders?: readonly KekProvider[];
  /** Where wrapped data keys are persisted. */
  readonly store: DataKeyStore;
  /** Clock for `createdAt` of new data keys. */
  readonly now?: () => Date;
}

/** A data key ready for use. */
interface DataKey {
  readonly id: string;
  readonly key: KeyObject;
  readonly createdAt: Date;
}

/**
 * Seals keys at rest with envelope encryption: each value is encrypted with AES-256-GCM under a
 * data key (DEK); DEKs are stored wrapped by a KEK from a {@link KekProvider} and held unwrapped
 * only in this process's memory (as `KeyObject`s, invisible to `util.inspect`).
 *
 * Every sealed value is bound to its (table, rowId, version): opening it with another binding
 * fails. DEKs can be rotated ({@link KeyVault.rotateDataKey}: new seals use the new DEK, old
 * values still open) and the KEK can be rotated ({@link KeyVault.rewrapAll}: every stored DEK is
 * re-wrapped; sealed values are untouched).
 *
 * Several nodes may share one store: a value sealed by another node under a DEK this node has
 * not seen yet makes `open` reload the store once.
 */
export class KeyVault {
  readonly #registry: KekRegistry;
  readonly #store: DataKeyStore;
  readonly #now: () => Date;
  readonly #keys = new Map<string, DataKey>();
  #current: DataKey;
  #refreshing: Promise<void> | undefined;
  /** Serializes rotations and re-wraps, so a new DEK is never wrapped by a KEK being retired. */
  #mutations: Promise<unknown> = Promise.resolve();

  private constructor(
    registry: KekRegistry,
    store: DataKeyStore,
    now: () => Date,
    current: DataKey,
  ) {
    this.#registry = registry;
    this.#store = store;
    this.#now = now;
    this.#current = current;
  }

  /**
   * Loads and unwraps every stored DEK (the newest becomes current), or creates and stores the
   * first DEK of an empty store. Unwrapping everything up front makes a wrong KEK a start-up
   * error instead of a failure at the first read.
   * @throws C2Error `C2_KEY_VAULT` when a stored DEK's KEK is not configured or does not unwrap it;
   *   `C2_UNAVAILABLE` when its KEK provider is out of reach
   */
  static async create(options: KeyVaultOptions): Promise<KeyVault> {
    const registry = new KekRegistry(options.provider, options.previousProviders);
    const now = options.now ?? ((): Date => new Date());
    const stored = await options.store.list();
    const loaded = await Promise.all(stored.map((k) => unwrapStored(registry, k)));
    let current = newest(loaded);
    if (current === undefined) {
      current = await createDataKey(registry.current, options.store, now);
      loaded.push(current);
    }
    const vault = new KeyVault(registry, options.store, now, current);
    for (const k of loaded) vault.#keys.set(k.id, k);
    return vault;
  }

  /** Id of the DEK new seals use. */
  get currentDataKeyId(): string {
    return this.#current.id;
  }

  /** Id of the KEK new DEKs are wrapped with. */
  get currentKekId(): string {
    return this.#registry.current.keyId;
  }

  /**
   * Encrypts `plaintext` for the row named by `binding`.
   * @returns `0x01 || len || dekId || iv(12) || ciphertext || tag(16)`
   * @throws C2Error `C2_VALIDATION` for an empty table or rowId or a negative version
   */
  seal(plaintext: Uint8Array, binding: SealBinding): Promise<Uint8Array> {
    const dek = this.#current;
    // The executor turns a thrown validation error into a rejection, as callers of a promise expect.
    return new Promise((resolve) => {
      const header = envelopeHeader(dek.id);
      resolve(concatBytes(header, gcmSeal(dek.key, plaintext, sealAad(header, binding))));
    });
  }

  /**
   * Decrypts a value sealed for `binding`.
   * @throws C2Error `C2_KEY_VAULT` when the bytes are malformed or tampered, were sealed for
   *   another binding, or name an unknown DEK; the message names the binding, never key bytes;
   *   `C2_UNAVAILABLE` when a DEK another node made must be unwrapped and its KEK provider is out
   *   of reach (a later call retries)
   */
  async open(sealed: Uint8Array, binding: SealBinding): Promise<Uint8Array> {
    const envelope = parseEnvelope(sealed);
    const aad = sealAad(envelope.header, binding);
    let dek = this.#keys.get(envelope.dekId);
    if (dek === undefined) {
      await this.#refresh();
      dek = this.#keys.get(envelope.dekId);
    }
    const where = { table: binding.table, rowId: binding.rowId, version: binding.version };
    if (dek === undefined) {
      throw new C2Error(
        'C2_KEY_VAULT',
        `cannot open ${describe(binding)}: unknown data key ${envelope.dekId}`,
        {
          details: { ...where, dataKeyId: envelope.dekId },
        },
      );
    }
    const plaintext = gcmOpen(dek.key, envelope.body, aad);
    if (plaintext === undefined) {
      throw new C2Error(
        'C2_KEY_VAULT',
        `cannot open ${describe(binding)}: authentication failed (tampered, or sealed for another row or version)`,
        { details: where },
      );
    }
    return plaintext;
  }

  /**
   * Creates, stores and switches to a new DEK; values sealed under older DEKs still open.
   * @returns the new DEK's id
   */
  rotateDataKey(): Promise<string> {
    return this.#serialize(async () => {
      const dek = await createDataKey(this.#registry.current, this.#store, this.#now);
      this.#keys.set(dek.id, dek);
      this.#current = dek;
      return dek.id;
    });
  }

  /**
   * KEK rotation: re-wraps every stored DEK under `newProvider` (each checked by a round trip
   * before it is written) and makes it the current KEK. DEKs under `newProvider` already are
   * moved to its newest version when it has versions of its own ({@link KekProvider.refresh}). Sealed values do not change. Afterwards
   * the old KEK is no longer needed, except for DEKs that other nodes still create under it: run
   * this again once every node is configured with the new KEK (it skips keys already re-wrapped).
   * @returns how many DEKs were re-wrapped
   * @throws C2Error `C2_KEY_VAULT` when a DEK's KEK is missing or the new KEK fails its round
   *   trip; keys already re-wrapped stay re-wrapped, and a re-run resumes
   */
  rewrapAll(newProvider: KekProvider): Promise<number> {
    return this.#serialize(async () => {
      let count = 0;
      for (const stored of await this.#store.list()) {
        const { wrapped } = stored;
        let rewrapped: WrappedKey;
        if (wrapped.kekKind === newProvider.kind && wrapped.kekId === newProvider.keyId) {
          // Under this KEK already: only a KEK with versions of its own has anything to do.
          rewrapped = await refreshKey(wrapped, newProvider);
          if (rewrapped === wrapped) continue;
        } else {
          rewrapped = await rewrapKey(wrapped, this.#registry, newProvider);
        }
        await this.#store.update({ ...stored, wrapped: rewrapped });
        count++;
      }
      this.#registry.setCurrent(newProvider);
      return count;
    });
  }

  /** Shows ids only. */
  [inspect.custom](): string {
    return `KeyVault { currentDataKeyId: '${this.#current.id}', dataKeys: ${this.#keys.size}, kekId: '${this.currentKekId}' }`;
  }

  /** Loads DEKs created elsewhere since start-up; concurrent callers share one reload. */
  #refresh(): Promise<void> {
    this.#refreshing ??= (async () => {
      try {
        for (const stored of await this.#store.list()) {
          if (this.#keys.has(String(stored.id))) continue;
          const dek = await unwrapStored(this.#registry, stored);
          this.#keys.set(dek.id, dek);
        }
      } finally {
        this.#refreshing = undefined;
      }
    })();
    return this.#refreshing;
  }

  #serialize<T>(task: () => Promise<T>): Promise<T> {
    const run = this.#mutations.then(task, task);
    this.#mutations = run.catch(() => undefined);
    return run;
  }
}

function describe(binding: SealBinding): string {
  return `${binding.table}/${binding.rowId} version ${binding.version}`;
}

/** Imports raw key bytes into a `KeyObject` and wipes the bytes. */
function toDataKey(id: string, raw: Uint8Array, createdAt: Date): DataKey {
  try {
    if (raw.length !== 32) throw new C2Error('C2_KEY_VAULT', `data key ${id} has the wrong length`);
    return { id, key: createSecretKey(raw), createdAt };
  } finally {
    raw.fill(0);
  }
}

async function unwrapStored(registry: KekRegistry, stored: StoredDataKey): Promise<DataKey> {
  const id = String(stored.id);
  let raw: Uint8Array;
  try {
    raw = await registry.unwrap(stored.wrapped);
  } catch (err) {
    const reason = C2Error.is(err) ? err.message : 'KEK provider failed';
    // A KEK that is out of reach for now (Vault sealed, an HSM not answering) stays
    // C2_UNAVAILABLE: callers retry that, whereas C2_KEY_VAULT says a key will never open (a
    // device's delivery counts it as a failure and gives up).
    const code = C2Error.is(err, 'C2_UNAVAILABLE') ? 'C2_UNAVAILABLE' : 'C2_KEY_VAULT';
    throw new C2Error(code, `cannot unwrap data key ${id}: ${reason}`, {
      cause: err,
      details: { dataKeyId: id, kekKind: stored.wrapped.kekKind, kekId: stored.wrapped.kekId },
    });
  }
  return toDataKey(id, raw, stored.createdAt);
}

function newest(keys: readonly DataKey[]): DataKey | undefined {
  let best: DataKey | undefined;
  for (const k of keys) if (best === undefined || k.createdAt >= best.createdAt) best = k;
  return best;
}

/**
 * Makes a random DEK, stores it wrapped, and returns it. Its id is a random integer below 2^48:
 * unique in practice, and valid for a `bigint` column as well as a `text` one.
 */
async function createDataKey(
  kek: KekProvider,
  store: DataKeyStore,
  now: () => Date,
): Promise<DataKey> {
  const raw = new Uint8Array(randomBytes(32));
  const id = randomInt(1, 2 ** 48);
  const createdAt = now();
  try {
    await store.insert({ id, wrapped: await kek.wrap(raw), createdAt });
    return toDataKey(String(id), raw, createdAt);
  } finally {
    raw.fill(0);
  }
}
