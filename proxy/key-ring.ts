/**
 * The E4 identities the proxy holds, each an {@link E4Client} with its own encrypted key store
 * (`<stateDir>/identities/<client id hex>.e4s`), looked up by name or by control topic.
 */
import { randomBytes } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import {
  clientIdFromName,
  E4Client,
  E4Error,
  ed25519KeyFromSeed,
  fromHex,
  randomSymKey,
  SharedTopicCiphers,
  toHex,
  type ClientStore,
} from '../e4/index.ts';
import type { IdentityConfig } from './config.ts';
import { EncryptedFileClientStore } from './encrypted-file-store.ts';
import { fsFailure, ProxyError, ProxyErrorCode } from './errors.ts';

/** One identity and what the proxy knows about it. */
export interface HeldIdentity {
  readonly name: string;
  readonly client: E4Client;
  readonly store: ClientStore;
  /** Topics to attach at registration. */
  readonly topics: readonly string[];
  /** True when its state was created by this start (nothing was stored before). */
  readonly created: boolean;
}

/** Where the state file of an identity lives. */
export function identityStatePath(stateDir: string, name: string): string {
  return join(stateDir, 'identities', `${toHex(clientIdFromName(name))}.e4s`);
}

/** How a new identity gets its key: the C2's mode, and its public key in public-key mode. */
export type NewIdentityKeys =
  | { readonly mode: 'symmetric' }
  | { readonly mode: 'public-key'; readonly c2PublicKey: () => Promise<Uint8Array> };

/** A new identity's client, with its configured initial key or a random one. */
async function createIdentity(
  config: IdentityConfig,
  keys: NewIdentityKeys,
  store: ClientStore,
  sharedTopicCiphers: SharedTopicCiphers,
): Promise<E4Client> {
  const initial = config.initialKeyHex === undefined ? undefined : fromHex(config.initialKeyHex);
  if (keys.mode === 'symmetric') {
    return E4Client.createSymmetric(
      { name: config.name },
      { key: initial ?? randomSymKey() },
      { store, sharedTopicCiphers },
    );
  }
  const privateKey = initial ?? ed25519KeyFromSeed(new Uint8Array(randomBytes(32)));
  const c2PublicKey = await keys.c2PublicKey();
  try {
    return await E4Client.createPublicKey({ name: config.name }, { privateKey }, c2PublicKey, {
      store,
      sharedTopicCiphers,
    });
  } catch (err) {
    if (!E4Error.is(err)) throw err;
    // A configured key whose halves do not belong together, or an unusable C2 public key.
    throw new ProxyError(
      ProxyErrorCode.Config,
      `identity ${config.name}: cannot create a public-key identity (${err.code}): check initialKey (seed and public key, 64 bytes) and the C2's public key`,
      { cause: err },
    );
  }
}

/** The identities, loaded (or created) from their stores. */
export class KeyRing {
  readonly #byName = new Map<string, HeldIdentity>();
  readonly #byControlTopic = new Map<string, HeldIdentity>();

  private constructor(
    identities: readonly HeldIdentity[],
    /**
     * The identities' prepared topic keys: identities on the same topics (a gateway's devices)
     * share each key's preparation instead of holding a copy each.
     */
    readonly topicCiphers: SharedTopicCiphers,
  ) {
    for (const identity of identities) {
      this.#byName.set(identity.name, identity);
      this.#byControlTopic.set(identity.client.receivingTopic, identity);
    }
  }

  /**
   * Loads every configured identity from its store; an identity without a store is created from
   * its configured initial key, or a random one: a symmetric key, or in public-key mode an Ed25519
   * key pair (with the C2's public key, asked for only then).
   * @throws ProxyError `PROXY_KEY_STORE` when the state directory cannot be made, or a store
   *   exists but cannot be read or decrypted
   */
  static async open(
    stateDir: string,
    localKey: Uint8Array,
    identities: readonly IdentityConfig[],
    keys: NewIdentityKeys = { mode: 'symmetric' },
  ): Promise<KeyRing> {
    try {
      await mkdir(join(stateDir, 'identities'), { recursive: true, mode: 0o700 });
    } catch (err) {
      throw new ProxyError(
        ProxyErrorCode.KeyStore,
        `stateDir ${stateDir}: cannot create the directory of the key stores: ${fsFailure(err)}`,
        { cause: err },
      );
    }
    const sharedTopicCiphers = new SharedTopicCiphers();
    const held: HeldIdentity[] = [];
    for (const config of identities) {
      const store = new EncryptedFileClientStore(
        identityStatePath(stateDir, config.name),
        localKey,
        config.name,
      );
      const existing = await store.load();
      const client =
        existing === undefined
          ? await createIdentity(config, keys, store, sharedTopicCiphers)
          : await E4Client.load(store, { sharedTopicCiphers });
      const storedMode = client.state.keyMaterial.mode;
      if (storedMode !== keys.mode) {
        // A stored identity is never converted: its key is what the C2 knows it by.
        throw new ProxyError(
          ProxyErrorCode.KeyStore,
          `identity ${config.name} holds a ${storedMode} key but c2.mode is ${keys.mode}: set c2.mode back, or remove ${identityStatePath(stateDir, config.name)} to create the identity anew`,
        );
      }
      held.push({
        name: config.name,
        client,
        store,
        topics: config.topics,
        created: existing === undefined,
      });
    }
    return new KeyRing(held, sharedTopicCiphers);
  }

  /** The identity named `name`. */
  get(name: string): HeldIdentity | undefined {
    return this.#byName.get(name);
  }

  /** The identity whose control topic is `topic`. */
  byControlTopic(topic: string): HeldIdentity | undefined {
    return this.#byControlTopic.get(topic);
  }

  /** Every identity. */
  all(): HeldIdentity[] {
    return [...this.#byName.values()];
  }
}
