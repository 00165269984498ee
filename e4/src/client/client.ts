/**
 * A device (client) equivalent to e4go's `client`: it protects and unprotects messages with its
 * topic keys and applies the C2's commands that arrive on its control topic.
 */
import type { KeyObject } from 'node:crypto';
import { AesSivKey } from '../aes-siv.ts';
import {
  requireBytes,
  requireInstance,
  requireMessageBytes,
  requireObject,
  requireString,
} from '../arguments.ts';
import { bytesEqual, readInt64LE } from '../bytes.ts';
import { systemClock, unixSeconds, validateTransitionTimestamp, type Clock } from '../clock.ts';
import { parseCommand, type Command } from '../commands.ts';
import { KEY_LEN } from '../constants.ts';
import {
  commandKeyFromClient,
  ed25519KeyFromSeed,
  ed25519PublicKey,
  ed25519PublicKeyObject,
  ed25519SigningKey,
} from '../curve.ts';
import { E4Error, E4ErrorCode } from '../errors.ts';
import { clientIdFromName, controlTopic } from '../hash.ts';
import { deriveSymKey, randomId } from '../keys.ts';
import {
  protectPubKey,
  protectSymKey,
  unprotectPubKey,
  unprotectSymKey,
  type PkSigner,
} from '../protect.ts';
import { ReceiptEmitter, type ReceiptContext, type ReceiptOptions } from '../receipts/emitter.ts';
import { validateCurve25519PubKey, validateId, validateName, validateSymKey } from '../validate.ts';
import {
  applyCommand,
  checkPkKeys,
  TRANSITION_ENTRY_LEN,
  type ClientState,
  type CryptoMode,
} from './client-state.ts';
import { MemoryClientStore, type ClientStore } from './client-store.ts';
import { withoutPendingKey, withPendingKey, withPendingPromoted } from './own-key-rotation.ts';
import { topicHashHex, transitionSlotHex } from './hash-memo.ts';
import { PreparedCache } from './prepared-cache.ts';
import { SharedTopicCiphers } from './shared-topic-ciphers.ts';
import { decodeClientState, encodeClientState } from './state-codec.ts';
import { StateSnapshots } from './state-snapshot.ts';

/**
 * How a client is identified: a 16-byte id, a name whose hash is the id, or both when they agree
 * (the id is the name's hash), as the reference C2 takes a name and id pair
 * (`ValidateE4NameOrIDPair`). A pair that disagrees is refused with `InvalidID`.
 */
export type ClientIdentity =
  | { readonly id: Uint8Array; readonly name?: string }
  | { readonly name: string; readonly id?: Uint8Array };

/**
 * Secret of an SK client: the 32-byte key, or a password to derive it from; not both
 * (`InvalidArgument`).
 */
export type SymmetricSecret = { readonly key: Uint8Array } | { readonly password: string };

/**
 * Secret of a PK client: a Go-format Ed25519 key (64 bytes, `seed || public`), or a password to
 * derive it from. A device that made its own key pair passes `ed25519KeyFromSeed(seed)` for a
 * 32-byte seed (RFC 8032's private key), or `ed25519KeyFromKeyObject(privateKey)` for a
 * node:crypto key (`generateKeyPairSync('ed25519')`); a bare seed is refused as `InvalidKey`,
 * and a secret with both a key and a password as `InvalidArgument`.
 */
export type PublicKeySecret = { readonly privateKey: Uint8Array } | { readonly password: string };

/** Options shared by every way of making a client. */
export interface ClientOptions {
  /** Where state is saved after every change (default: memory only). */
  readonly store?: ClientStore;
  /** Clock in milliseconds (default `Date.now`); inject one for tests. */
  readonly clock?: Clock;
  /**
   * Overrides the control topic `e4/<hex id>` (e4go `WithReceivingTopic`); it must not be empty.
   * It is part of the saved state; given to {@link E4Client.load}, it replaces the saved one.
   */
  readonly receivingTopic?: string;
  /**
   * Opt-in delivery receipts to the C2 (`docs/protocol-extensions.md`); off by default. Checked
   * when the client is made (`InvalidArgument`, `InvalidTopic`).
   */
  readonly receipts?: ReceiptOptions;
  /**
   * Prepared topic keys shared with the other clients of this process that were given the same
   * pool (a host of many identities, such as a gateway): each topic key is then prepared once
   * per process instead of once per client. Default: the client prepares its own. Checked when
   * the client is made (`InvalidArgument` for anything but a {@link SharedTopicCiphers}).
   */
  readonly sharedTopicCiphers?: SharedTopicCiphers;
}

/**
 * What {@link E4Client.unprotect} found. A command result holds the command's key material as
 * raw bytes (SetTopicKey's topic key, SetIDKey's new identity key): treat it as a secret, and do
 * not log the result as it is.
 */
export type UnprotectResult =
  | { readonly kind: 'message'; readonly payload: Uint8Array }
  /** A C2 command that was applied (and saved). It returns no payload, as in e4go. */
  | { readonly kind: 'command'; readonly command: Command };

/** Key objects derived from the state, rebuilt when the state changes. */
interface DerivedKeys {
  readonly commandKey: AesSivKey;
  readonly signer: PkSigner | undefined;
  /** The command key of the pending identity key of an own rotation (PK mode), if any. */
  readonly pendingCommandKey: AesSivKey | undefined;
}

/**
 * A name is checked as the C2 checks it (e4go derives an id from any string): an empty, overlong
 * or ill-formed name gives an id no C2 can address by name, and an ill-formed one shares its id.
 * With both a name and an id, the id must be the name's hash: either alone would otherwise be
 * silently ignored, and the device would listen on a control topic its C2 does not send to.
 */
function resolveId(identity: ClientIdentity | undefined): Uint8Array {
  if (identity === undefined) return randomId();
  requireObject(identity, 'identity');
  const { id, name } = identity;
  if (name === undefined) {
    requireBytes(id, 'identity.id'); // also when neither is given
    validateId(id);
    return new Uint8Array(id);
  }
  requireString(name, 'identity.name');
  validateName(name);
  const nameId = clientIdFromName(name);
  if (id === undefined) return nameId;
  requireBytes(id, 'identity.id');
  if (!bytesEqual(id, nameId)) {
    throw new E4Error(
      E4ErrorCode.InvalidID,
      'inconsistent name and client ID: the ID is not the hash of the name',
    );
  }
  return nameId;
}

/**
 * Refuses a secret that gives both a key and a password: either would be silently ignored, and
 * checking that they agree would cost an Argon2i derivation.
 */
function requireOneSecret(secret: object, keyField: 'key' | 'privateKey'): void {
  if (keyField in secret && 'password' in secret) {
    throw new E4Error(
      E4ErrorCode.InvalidArgument,
      `secret must have either ${keyField} or password, not both`,
    );
  }
}

/** The password of a secret given without its key. */
function secretPassword(secret: object): string {
  const password = (secret as { password?: unknown }).password;
  requireString(password, 'secret.password');
  return password;
}

/**
 * The topic commands arrive on: `e4/<hex id>` unless overridden. An override must pass the check
 * `decodeClientState` makes, or the client would save a state it can never load again.
 * @throws E4Error `InvalidTopic`
 */
function resolveReceivingTopic(override: string | undefined, id: Uint8Array): string {
  if (override === undefined) return controlTopic(id);
  // `typeof`: plain JavaScript callers are not held to the type.
  if (typeof override !== 'string' || override.length === 0) {
    throw new E4Error(E4ErrorCode.InvalidTopic, 'receiving topic must be a non-empty string');
  }
  return override;
}

/** `state` with its receiving topic overridden, or `state` itself when there is nothing to change. */
function withReceivingTopic(state: ClientState, override: string | undefined): ClientState {
  if (override === undefined || override === state.receivingTopic) return state;
  return { ...state, receivingTopic: resolveReceivingTopic(override, state.id) };
}

/** Prepares a topic key (module level: no closure per message). */
function prepareSivKey(key: Uint8Array): AesSivKey {
  return new AesSivKey(key);
}

/**
 * An E4 device. Data messages are processed synchronously against the in-memory state; commands
 * are applied one at a time, saved, and only then visible, so a failed save loses nothing.
 */
export class E4Client {
  #state: ClientState;
  #derived: DerivedKeys;
  /** Prepared topic keys (two AES contexts each), kept across commands that leave them alone. */
  readonly #topicCiphers = new PreparedCache<AesSivKey>();
  /** How a topic key is prepared: by this client, or through the host's shared pool. */
  readonly #prepareTopicKey: (key: Uint8Array) => AesSivKey;
  /** Key objects of peers' public keys (PK mode), likewise. */
  readonly #pubKeyObjects = new PreparedCache<KeyObject>();
  /** Hex topic hash by topic name: hashing costs as much as encrypting a small message. */
  readonly #store: ClientStore;
  readonly #clock: Clock;
  /** Serialises command application so concurrent control messages cannot interleave saves. */
  #commandQueue: Promise<unknown> = Promise.resolve();
  /** Delivery receipts; `undefined` (the default) leaves command processing exactly as e4go's. */
  readonly #receipts: ReceiptEmitter | undefined;
  /** What the `state` getter hands out; the library itself reads `#state`. */
  readonly #snapshots = new StateSnapshots();

  private constructor(
    state: ClientState,
    store: ClientStore,
    clock: Clock,
    options: Pick<ClientOptions, 'receipts' | 'sharedTopicCiphers'>,
  ) {
    this.#state = state;
    this.#store = store;
    this.#clock = clock;
    this.#derived = E4Client.#derive(state);
    const { receipts, sharedTopicCiphers } = options;
    // Checked here, not at its first topic key: an object without `get` failed only then.
    if (sharedTopicCiphers !== undefined)
      requireInstance(sharedTopicCiphers, SharedTopicCiphers, 'sharedTopicCiphers');
    this.#receipts = receipts === undefined ? undefined : new ReceiptEmitter(receipts);
    this.#prepareTopicKey =
      sharedTopicCiphers === undefined
        ? prepareSivKey
        : (key: Uint8Array): AesSivKey => sharedTopicCiphers.get(key);
  }

  static #derive(state: ClientState): DerivedKeys {
    const material = state.keyMaterial;
    if (material.mode === 'symmetric') {
      return {
        commandKey: new AesSivKey(material.key),
        signer: undefined,
        pendingCommandKey: undefined,
      };
    }
    const pending = material.pendingPrivateKey;
    // The pending key is checked as the current one (it signs once promoted): a loaded state
    // whose pending key cannot serve is refused now, not at its promotion.
    if (pending !== undefined) checkPkKeys(pending, material.c2PublicKey);
    return {
      commandKey: new AesSivKey(commandKeyFromClient(material.privateKey, material.c2PublicKey)),
      signer: { id: state.id, signingKey: ed25519SigningKey(material.privateKey) },
      pendingCommandKey:
        pending === undefined
          ? undefined
          : new AesSivKey(commandKeyFromClient(pending, material.c2PublicKey)),
    };
  }

  static async #start(state: ClientState, options: ClientOptions): Promise<E4Client> {
    const client = new E4Client(
      state,
      options.store ?? new MemoryClientStore(),
      options.clock ?? systemClock,
      options,
    );
    await client.#store.save(encodeClientState(state));
    return client;
  }

  /**
   * A symmetric-key client (e4go `SymIDAndKey` / `SymNameAndPassword`). Without an identity a
   * random id is drawn. Ids must be 16 bytes in both modes (e4go accepts any length in SK mode);
   * an identity with both a name and an id must have the name's hash as its id.
   *
   * The fresh state is saved to `options.store`, replacing whatever it held: on a device's
   * later boots use {@link E4Client.load}, or every key received so far is forgotten.
   * @throws E4Error `InvalidID`, `InvalidName`, `InvalidKey`, `InvalidPassword`, `InvalidTopic`,
   *   `InvalidArgument`; and whatever the store throws
   */
  static async createSymmetric(
    identity: ClientIdentity | undefined,
    secret: SymmetricSecret,
    options: ClientOptions = {},
  ): Promise<E4Client> {
    const id = resolveId(identity);
    requireObject(secret, 'secret');
    requireOneSecret(secret, 'key');
    if ('key' in secret) requireBytes(secret.key, 'secret.key');
    const key = 'key' in secret ? new Uint8Array(secret.key) : deriveSymKey(secretPassword(secret));
    validateSymKey(key);
    return E4Client.#start(
      {
        id,
        receivingTopic: resolveReceivingTopic(options.receivingTopic, id),
        topicKeys: new Map(),
        keyMaterial: { mode: 'symmetric', key },
      },
      options,
    );
  }

  /**
   * A public-key client (e4go `PubIDAndKey` / `PubNameAndPassword`). The C2 registers the
   * client's {@link E4Client.publicKey}. Like {@link E4Client.createSymmetric}, it replaces what
   * `options.store` held: on later boots use {@link E4Client.load}.
   * @param secret - a Go-format key (see {@link PublicKeySecret}) or a password
   * @param c2PublicKey - the C2's Curve25519 public key
   * @throws E4Error `InvalidID`, `InvalidName`, `InvalidKey` (also for a 32-byte seed, a
   *   mismatched Go key or a low-order C2 key), `InvalidPassword`, `InvalidTopic`,
   *   `InvalidArgument`; and whatever the store throws
   */
  static async createPublicKey(
    identity: ClientIdentity | undefined,
    secret: PublicKeySecret,
    c2PublicKey: Uint8Array,
    options: ClientOptions = {},
  ): Promise<E4Client> {
    const id = resolveId(identity);
    requireObject(secret, 'secret');
    requireOneSecret(secret, 'privateKey');
    if ('privateKey' in secret) requireBytes(secret.privateKey, 'secret.privateKey');
    const privateKey =
      'privateKey' in secret
        ? new Uint8Array(secret.privateKey)
        : ed25519KeyFromSeed(deriveSymKey(secretPassword(secret)));
    requireBytes(c2PublicKey, 'c2PublicKey');
    validateCurve25519PubKey(c2PublicKey);
    checkPkKeys(privateKey, c2PublicKey);
    return E4Client.#start(
      {
        id,
        receivingTopic: resolveReceivingTopic(options.receivingTopic, id),
        topicKeys: new Map(),
        keyMaterial: {
          mode: 'public-key',
          privateKey,
          c2PublicKey: new Uint8Array(c2PublicKey),
          pubKeys: new Map(),
        },
      },
      options,
    );
  }

  /**
   * Restores a client from its store (e4go `LoadClient`). A `receivingTopic` option that differs
   * from the saved one replaces it and is saved before the client is returned, as at creation.
   * @throws E4Error `InvalidState` when the store is empty or its content is not a valid state,
   *   `InvalidTopic` for an empty `receivingTopic`; and whatever the store throws
   */
  static async load(
    store: ClientStore,
    options: Omit<ClientOptions, 'store'> = {},
  ): Promise<E4Client> {
    const text = await store.load();
    if (text === undefined) throw new E4Error(E4ErrorCode.InvalidState, 'no saved client state');
    const saved = decodeClientState(text);
    const state = withReceivingTopic(saved, options.receivingTopic);
    let derived: DerivedKeys;
    try {
      derived = E4Client.#derive(state);
    } catch (err) {
      throw new E4Error(E4ErrorCode.InvalidState, 'invalid client state: unusable keys', {
        cause: err,
      });
    }
    // Made first, so that options it refuses change nothing in the store; saved before it is
    // returned, so that the store never holds a topic other than the one commands arrive on.
    const client = new E4Client(state, store, options.clock ?? systemClock, options);
    client.#derived = derived;
    if (state !== saved) await store.save(encodeClientState(state));
    return client;
  }

  /** The 16-byte client id (a copy). */
  get id(): Uint8Array {
    return new Uint8Array(this.#state.id);
  }

  /** The topic on which this client receives C2 commands. */
  get receivingTopic(): string {
    return this.#state.receivingTopic;
  }

  /** `symmetric` or `public-key`. */
  get mode(): CryptoMode {
    return this.#state.keyMaterial.mode;
  }

  /**
   * The current state, as a frozen copy (it contains keys: never log it). Byte arrays and maps
   * cannot be frozen; changing them changes neither the client nor what it saves. A copy is made
   * only when a command changed the state, and only of the parts it changed: until then `state`,
   * `state.topicKeys` and `state.keyMaterial` return the same objects (`!==` tells a change).
   */
  get state(): ClientState {
    return this.#snapshots.of(this.#state);
  }

  /**
   * The Ed25519 public key of a PK client, `undefined` in SK mode: the one its current identity
   * key signs with (during an own rotation, until the pending key is promoted).
   */
  get publicKey(): Uint8Array | undefined {
    const material = this.#state.keyMaterial;
    return material.mode === 'public-key' ? ed25519PublicKey(material.privateKey) : undefined;
  }

  /**
   * The public key of the pending identity key of an own rotation
   * ({@link E4Client.beginOwnKeyRotation}): what the C2 must register. `undefined` when no
   * rotation is pending (and in SK mode).
   */
  get pendingPublicKey(): Uint8Array | undefined {
    const material = this.#state.keyMaterial;
    const pending = material.mode === 'public-key' ? material.pendingPrivateKey : undefined;
    return pending === undefined ? undefined : ed25519PublicKey(pending);
  }

  /**
   * Public-key mode: begins a rotation of the device's own identity key to `privateKey`, a pair
   * it drew itself, *before* the C2 is told (RotateClientKey with the returned public key). The
   * key is held as pending beside the current one and saved with the state (a device that
   * restarts keeps both). Until it is promoted:
   *
   * - a command the current key does not authenticate is tried under the pending key, and the
   *   first one applied under it promotes it: the current key is dropped, in the same save as the
   *   command. Commands the C2 protected under either key around the switch are all applied;
   * - the device still signs its messages with its current key ({@link E4Client.publicKey}), as
   *   its peers know it until the C2 sends them the new one.
   *
   * Beginning the same rotation again (the same key) changes nothing: after a restart, or when
   * the outcome of the registration is unknown, register {@link E4Client.pendingPublicKey} again
   * (the C2 makes no new version of a key it holds). Serialised with command processing.
   * @param privateKey - Go format (64 bytes, `seed || public`; `ed25519KeyFromSeed`,
   *   `ed25519KeyFromKeyObject`), copied on entry
   * @returns the new Ed25519 public key (32 bytes), to register with the C2
   * @throws E4Error `UnsupportedOperation` (SK client); `InvalidKey` (not a valid Ed25519 key,
   *   halves that disagree, or the current key); `RotationPending` (another key is pending);
   *   `InvalidArgument` (not a `Uint8Array`); and whatever the store throws. The state is
   *   unchanged after any error.
   */
  async beginOwnKeyRotation(privateKey: Uint8Array): Promise<Uint8Array> {
    requireBytes(privateKey, 'privateKey');
    const key = new Uint8Array(privateKey);
    await this.#enqueue(() => this.#change(withPendingKey(this.#state, key)));
    return ed25519PublicKey(key);
  }

  /**
   * Promotes the pending key now, without waiting for a command under it: for a device that
   * knows the C2 took its key and will send nothing more under the previous one. A command still
   * on its way under the previous key is then refused (`NotAuthentic`): prefer to let the first
   * command under the new key promote it.
   * @throws E4Error `UnsupportedOperation` (SK client), `NoRotationPending`; and whatever the
   *   store throws
   */
  async completeOwnKeyRotation(): Promise<void> {
    await this.#enqueue(() => this.#change(withPendingPromoted(this.#state)));
  }

  /**
   * Drops the pending key; the current key stays. Only for a rotation the C2 surely did not take
   * (it refused the registration): once the C2 holds the new key, a device without it can open
   * no command again.
   * @throws E4Error `UnsupportedOperation` (SK client), `NoRotationPending`; and whatever the
   *   store throws
   */
  async abandonOwnKeyRotation(): Promise<void> {
    await this.#enqueue(() => this.#change(withoutPendingKey(this.#state)));
  }

  #hashHex(topic: string): string {
    return topicHashHex(topic);
  }

  #topicCipher(hashHex: string): AesSivKey | undefined {
    const key = this.#state.topicKeys.get(hashHex);
    if (key?.length !== KEY_LEN) return undefined;
    return this.#topicCiphers.get(hashHex, key, this.#prepareTopicKey);
  }

  #lookupPubKey = (idHex: string): KeyObject | undefined => {
    const material = this.#state.keyMaterial;
    if (material.mode !== 'public-key') return undefined;
    const raw = material.pubKeys.get(idHex);
    if (raw === undefined) return undefined;
    return this.#pubKeyObjects.get(idHex, raw, ed25519PublicKeyObject);
  };

  /**
   * Protects `payload` for `topic` with the topic's current key (signed in PK mode).
   * @throws E4Error `TopicKeyNotFound` when the client holds no key for the topic,
   *   `InvalidTopic` for a topic with no UTF-8 form, `InvalidArgument` for a value of the wrong
   *   type, `PayloadTooLarge` past `MESSAGE_MAX_BYTES`
   */
  protectMessage(payload: Uint8Array, topic: string): Uint8Array {
    const cipher = this.#topicCipher(this.#hashHex(topic));
    if (cipher === undefined)
      throw new E4Error(E4ErrorCode.TopicKeyNotFound, 'topic key not found');
    const signer = this.#derived.signer;
    return signer === undefined
      ? protectSymKey(payload, cipher, this.#clock)
      : protectPubKey(payload, cipher, signer, this.#clock);
  }

  #unprotectWith(protectedMessage: Uint8Array, key: AesSivKey): Uint8Array {
    return this.#derived.signer === undefined
      ? unprotectSymKey(protectedMessage, key, this.#clock)
      : unprotectPubKey(protectedMessage, key, this.#lookupPubKey, this.#clock);
  }

  /**
   * Unprotects a data message received on `topic`. When authentication fails under the current
   * key, the previous key is tried if it was replaced less than 60 minutes ago (e4go's key
   * transition).
   * @throws E4Error `TopicKeyNotFound`, `TooShortCiphertext`, `InvalidProtectedLen`,
   *   `TimestampTooOld`, `TimestampInFuture`, `PubKeyNotFound`, `InvalidSignature`,
   *   `NotAuthentic`, `InvalidOldTopicKeyLength`; `InvalidTopic`, `InvalidArgument` and
   *   `PayloadTooLarge` as {@link E4Client.protectMessage}
   */
  unprotectMessage(protectedMessage: Uint8Array, topic: string): Uint8Array {
    const hashHex = this.#hashHex(topic);
    const cipher = this.#topicCipher(hashHex);
    if (cipher === undefined)
      throw new E4Error(E4ErrorCode.TopicKeyNotFound, 'topic key not found');
    try {
      return this.#unprotectWith(protectedMessage, cipher);
    } catch (err) {
      if (!E4Error.is(err, E4ErrorCode.NotAuthentic)) throw err;
      const entry = this.#state.topicKeys.get(transitionSlotHex(hashHex));
      if (entry === undefined) throw err;
      if (entry.length !== TRANSITION_ENTRY_LEN) {
        throw new E4Error(E4ErrorCode.InvalidOldTopicKeyLength, 'invalid old topic key length');
      }
      validateTransitionTimestamp(readInt64LE(entry, KEY_LEN), this.#clock);
      return this.#unprotectWith(protectedMessage, new AesSivKey(entry.subarray(0, KEY_LEN)));
    }
  }

  /**
   * e4go's `Unprotect`: a message on the receiving topic is a C2 command, which is authenticated
   * with the command key, applied and saved; anything else is a data message. During an own
   * identity key rotation, a command the current key does not authenticate is tried under the
   * pending key, which it promotes once applied ({@link E4Client.beginOwnKeyRotation}).
   * @throws E4Error as {@link unprotectMessage}, plus command errors (`InvalidCommand`,
   *   `InvalidCommandLength`, `UnsupportedOperation`, `InvalidKey`, `UnknownPubKeyId`) and
   *   whatever the store throws; the state is unchanged after any error
   */
  async unprotect(protectedMessage: Uint8Array, topic: string): Promise<UnprotectResult> {
    requireMessageBytes(protectedMessage, 'protected message');
    if (topic !== this.#state.receivingTopic) {
      return { kind: 'message', payload: this.unprotectMessage(protectedMessage, topic) };
    }
    // A command is read when its turn comes, after this call returned: a caller that reuses its
    // receive buffer must not change it meanwhile. (Data messages are read synchronously above.)
    const command = new Uint8Array(protectedMessage);
    const receipts = this.#receipts;
    return this.#enqueue(() =>
      receipts === undefined
        ? this.#processCommand(command)
        : this.#processCommandWithReceipt(command, receipts),
    );
  }

  /** Runs `task` after every command and state change queued before it. */
  #enqueue<T>(task: () => Promise<T>): Promise<T> {
    const run = this.#commandQueue.then(task);
    this.#commandQueue = run.catch(() => undefined);
    return run;
  }

  async #processCommand(protectedMessage: Uint8Array): Promise<UnprotectResult> {
    const { clear, state } = this.#openCommand(protectedMessage);
    const command = parseCommand(clear);
    await this.#change(applyCommand(state, command, unixSeconds(this.#clock)));
    return { kind: 'command', command: copyCommand(command) };
  }

  /**
   * A command's clear bytes, and the state it applies to: the client's, or during an own
   * rotation, when only the pending key authenticates it, the state with that key promoted (the
   * C2 uses the new key: it took it).
   */
  #openCommand(protectedMessage: Uint8Array): { clear: Uint8Array; state: ClientState } {
    try {
      const clear = unprotectSymKey(protectedMessage, this.#derived.commandKey, this.#clock);
      return { clear, state: this.#state };
    } catch (err) {
      const pending = this.#derived.pendingCommandKey;
      if (pending === undefined || !E4Error.is(err, E4ErrorCode.NotAuthentic)) throw err;
      const clear = unprotectSymKey(protectedMessage, pending, this.#clock);
      return { clear, state: withPendingPromoted(this.#state) };
    }
  }

  /** Saves `next` and makes it the client's state (nothing when it is the current state). */
  async #change(next: ClientState): Promise<void> {
    if (next === this.#state) return;
    const derived =
      next.keyMaterial === this.#state.keyMaterial ? this.#derived : E4Client.#derive(next);
    await this.#store.save(encodeClientState(next));
    this.#state = next;
    this.#derived = derived;
    // Only the keys this change altered or removed lose what was prepared from them.
    this.#topicCiphers.prune(next.topicKeys);
    this.#pubKeyObjects.prune(
      next.keyMaterial.mode === 'public-key' ? next.keyMaterial.pubKeys : undefined,
    );
  }

  /**
   * Delivery receipts (opt-in): `#processCommand`, then a receipt under the command
   * key the device holds afterwards. The outcome of the command is unchanged.
   */
  async #processCommandWithReceipt(
    protectedMessage: Uint8Array,
    receipts: ReceiptEmitter,
  ): Promise<UnprotectResult> {
    let result: UnprotectResult;
    try {
      result = await this.#processCommand(protectedMessage);
    } catch (err) {
      receipts.rejected(protectedMessage, err, this.#receiptContext());
      throw err;
    }
    if (result.kind === 'command') {
      receipts.applied(protectedMessage, result.command, this.#receiptContext());
    }
    return result;
  }

  #receiptContext(): ReceiptContext {
    const { commandKey, pendingCommandKey } = this.#derived;
    return {
      deviceId: this.#state.id,
      commandKey,
      ...(pendingCommandKey === undefined ? {} : { pendingCommandKey }),
      clock: this.#clock,
    };
  }
}

/** Detaches a parsed command from the decrypted buffer it views. */
function copyCommand(command: Command): Command {
  const copy: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(command))
    copy[k] = v instanceof Uint8Array ? new Uint8Array(v) : v;
  return copy as Command;
}
