/**
 * The device state of e4go's client as an immutable value, and the pure transition that applies
 * a C2 command to it. {@link E4Client} wraps this with caches and persistence.
 */
import { requireBytes, requireBytesMap, requireObject, requireString } from '../arguments.ts';
import { bytesEqual, concatBytes, toHex, writeUint64LE } from '../bytes.ts';
import type { Command } from '../commands.ts';
import { commandKeyFromClient, ed25519SigningKey } from '../curve.ts';
import { encodeCommand, PK_ONLY_COMMANDS } from '../commands.ts';
import { E4Error, E4ErrorCode, referenceError } from '../errors.ts';
import {
  validateCurve25519PubKey,
  validateEd25519PrivKey,
  validateEd25519PubKey,
  validateSymKey,
} from '../validate.ts';
import { transitionSlotHex } from './hash-memo.ts';

/** Symmetric-key mode: one 32-byte identity key, also the command key. */
export interface SymKeyMaterial {
  readonly mode: 'symmetric';
  readonly key: Uint8Array;
}

/** Public-key mode: an Ed25519 identity, the C2's Curve25519 key and peers' Ed25519 keys. */
export interface PubKeyMaterial {
  readonly mode: 'public-key';
  /** Go format `seed || public`. */
  readonly privateKey: Uint8Array;
  readonly c2PublicKey: Uint8Array;
  /** Peers' Ed25519 public keys by lowercase hex id. */
  readonly pubKeys: ReadonlyMap<string, Uint8Array>;
  /**
   * During the device's own rotation of its identity key (`E4Client.beginOwnKeyRotation`): the
   * new key (Go format), held beside `privateKey` until a command authenticates under it. Absent
   * otherwise, and never equal to `privateKey`. Not part of e4go's state: saved in a field e4go
   * ignores (`state-codec.ts`).
   */
  readonly pendingPrivateKey?: Uint8Array;
}

/** Identity key material of either mode. */
export type KeyMaterial = SymKeyMaterial | PubKeyMaterial;

/** Crypto mode of a client. */
export type CryptoMode = KeyMaterial['mode'];

/**
 * A client's whole state. `topicKeys` is keyed by lowercase hex topic hash, exactly as e4go:
 * it holds 32-byte current keys and, under each topic's transition slot hash, a 40-byte entry
 * `previousKey(32) || le64(changedAt seconds)`.
 */
export interface ClientState {
  readonly id: Uint8Array;
  readonly receivingTopic: string;
  readonly topicKeys: ReadonlyMap<string, Uint8Array>;
  readonly keyMaterial: KeyMaterial;
}

/** Length of a transition entry: old key and the Unix second it was replaced. */
export const TRANSITION_ENTRY_LEN = 40;

/** Called to check a new PK identity or C2 key before it is adopted (computes the command key). */
export type PkKeyCheck = (privateKey: Uint8Array, c2PublicKey: Uint8Array) => void;

/**
 * The check a PK key pair must pass to be adopted: the private key signs (its halves agree) and
 * the command key can be computed (the C2 key is not a low-order point).
 * @throws E4Error `InvalidKey`
 */
export const checkPkKeys: PkKeyCheck = (privateKey, c2PublicKey) => {
  ed25519SigningKey(privateKey);
  commandKeyFromClient(privateKey, c2PublicKey);
};

function withTopicKey(
  state: ClientState,
  topicHash: Uint8Array,
  key: Uint8Array,
  nowSeconds: bigint,
): ClientState {
  const topicKeys = new Map(state.topicKeys);
  const hashHex = toHex(topicHash);
  const previous = topicKeys.get(hashHex);
  // e4go keeps the previous key only when the key really changes; resending the same key keeps
  // the older transition entry intact.
  if (previous !== undefined && !bytesEqual(previous, key)) {
    topicKeys.set(transitionSlotHex(hashHex), concatBytes(previous, writeUint64LE(nowSeconds)));
  }
  topicKeys.set(hashHex, new Uint8Array(key));
  return { ...state, topicKeys };
}

function withoutTopic(state: ClientState, topicHash: Uint8Array): ClientState {
  const topicKeys = new Map(state.topicKeys);
  const hashHex = toHex(topicHash);
  topicKeys.delete(hashHex);
  topicKeys.delete(transitionSlotHex(hashHex));
  return { ...state, topicKeys };
}

function pkMaterial(state: ClientState): PubKeyMaterial {
  if (state.keyMaterial.mode !== 'public-key') throw referenceError('UnsupportedOperation');
  return state.keyMaterial;
}

function withPubKeyMaterial(state: ClientState, keyMaterial: PubKeyMaterial): ClientState {
  return { ...state, keyMaterial };
}

/**
 * Applies a command and returns the new state; the input state is never modified, so a failed
 * command leaves the client unchanged. A command built by hand is held to the lengths
 * {@link parseCommand} checks: a topic hash or id of another length would be saved under a key
 * that {@link decodeClientState} refuses, and the state could never be loaded again.
 *
 * Deliberate differences from e4go, all toward consistency: SetC2Key and a PK SetIDKey adopt the
 * new key only after the new command key was computed (`checkPkKeys`), never half-way. A pending
 * key of the device's own rotation (`pendingPrivateKey`) is kept through every command (SetC2Key
 * checks it too); only a SetIDKey of that very key ends the rotation.
 * @param nowSeconds - Unix seconds stamped on a transition entry
 * @param checkKeys - the check of a new PK key pair, by default {@link checkPkKeys} (what
 *   {@link E4Client} applies). A check that lets everything through adopts a low-order C2 key or
 *   a Go key with mismatched halves: the device could then never authenticate a command again.
 * @throws E4Error `UnsupportedOperation`, `InvalidKey`, `UnknownPubKeyId`; `InvalidCommand` and
 *   `InvalidCommandLength` for a command `parseCommand` would not return, `InvalidArgument` for
 *   an argument that is not a `Uint8Array`
 */
export function applyCommand(
  state: ClientState,
  command: Command,
  nowSeconds: bigint,
  checkKeys: PkKeyCheck = checkPkKeys,
): ClientState {
  // Checks the type and every argument length, as parseCommand does. The encoding holds the
  // command's key: wiped at once, as every other copy of a key the library makes.
  encodeCommand(command).fill(0);
  if (PK_ONLY_COMMANDS.has(command.type)) pkMaterial(state);
  switch (command.type) {
    case 'RemoveTopic':
      return withoutTopic(state, command.topicHash);
    case 'ResetTopics':
      return { ...state, topicKeys: new Map() };
    case 'SetTopicKey':
      validateSymKey(command.key);
      return withTopicKey(state, command.topicHash, command.key, nowSeconds);
    case 'SetIDKey': {
      const material = state.keyMaterial;
      if (material.mode === 'symmetric') {
        validateSymKey(command.key);
        return { ...state, keyMaterial: { mode: 'symmetric', key: new Uint8Array(command.key) } };
      }
      validateEd25519PrivKey(command.key);
      checkKeys(command.key, material.c2PublicKey);
      // A pending key of the device's own rotation stays pending (the C2 may still register it),
      // unless the C2 sent that very key: it is then current, and no longer pending.
      const { pendingPrivateKey, ...rest } = material;
      const pending =
        pendingPrivateKey === undefined || bytesEqual(pendingPrivateKey, command.key)
          ? {}
          : { pendingPrivateKey };
      return withPubKeyMaterial(state, {
        ...rest,
        ...pending,
        privateKey: new Uint8Array(command.key),
      });
    }
    case 'RemovePubKey': {
      const material = pkMaterial(state);
      const idHex = toHex(command.id);
      if (!material.pubKeys.has(idHex)) {
        throw new E4Error(E4ErrorCode.UnknownPubKeyId, `no public key exists for id: ${idHex}`);
      }
      const pubKeys = new Map(material.pubKeys);
      pubKeys.delete(idHex);
      return withPubKeyMaterial(state, { ...material, pubKeys });
    }
    case 'ResetPubKeys':
      return withPubKeyMaterial(state, { ...pkMaterial(state), pubKeys: new Map() });
    case 'SetPubKey': {
      const material = pkMaterial(state);
      try {
        validateEd25519PubKey(command.publicKey);
      } catch {
        // e4go's client drops AddPubKey's validation error and reports success; stock C2s and
        // tests rely on that, so an invalid key is ignored, not stored.
        return state;
      }
      const pubKeys = new Map(material.pubKeys);
      pubKeys.set(toHex(command.id), new Uint8Array(command.publicKey));
      return withPubKeyMaterial(state, { ...material, pubKeys });
    }
    case 'SetC2Key': {
      const material = pkMaterial(state);
      validateCurve25519PubKey(command.publicKey);
      checkKeys(material.privateKey, command.publicKey);
      // Both command keys are derived from the C2 key: neither may become unusable.
      if (material.pendingPrivateKey !== undefined)
        checkKeys(material.pendingPrivateKey, command.publicKey);
      return withPubKeyMaterial(state, {
        ...material,
        c2PublicKey: new Uint8Array(command.publicKey),
      });
    }
  }
}

/**
 * Checks the types of a state given from outside (plain JavaScript): bytes where bytes belong,
 * maps of bytes, a known key mode. Key values are not checked here ({@link decodeClientState}
 * checks them when a state is loaded).
 * @throws E4Error `InvalidArgument`, naming the field and the type given, never the value
 */
export function requireClientState(state: unknown): asserts state is ClientState {
  requireObject(state, 'state');
  const { id, receivingTopic, topicKeys, keyMaterial } = state as Partial<ClientState>;
  requireBytes(id, 'state.id');
  requireString(receivingTopic, 'state.receivingTopic');
  requireBytesMap(topicKeys, 'state.topicKeys');
  requireObject(keyMaterial, 'state.keyMaterial');
  const material = keyMaterial as Partial<SymKeyMaterial> | Partial<PubKeyMaterial>;
  if (material.mode === 'symmetric') {
    requireBytes(material.key, 'state.keyMaterial.key');
  } else if (material.mode === 'public-key') {
    requireBytes(material.privateKey, 'state.keyMaterial.privateKey');
    requireBytes(material.c2PublicKey, 'state.keyMaterial.c2PublicKey');
    requireBytesMap(material.pubKeys, 'state.keyMaterial.pubKeys');
    if (material.pendingPrivateKey !== undefined)
      requireBytes(material.pendingPrivateKey, 'state.keyMaterial.pendingPrivateKey');
  } else {
    throw new E4Error(
      E4ErrorCode.InvalidArgument,
      "state.keyMaterial.mode must be 'symmetric' or 'public-key'",
    );
  }
}

/**
 * Current topic keys only (32-byte entries), by hex topic hash.
 * @throws E4Error `InvalidArgument` when `state` has no `Map` of byte arrays as `topicKeys`
 */
export function currentTopicKeys(state: ClientState): Map<string, Uint8Array> {
  requireObject(state, 'state');
  requireBytesMap(state.topicKeys, 'state.topicKeys');
  return new Map([...state.topicKeys].filter(([, v]) => v.length !== TRANSITION_ENTRY_LEN));
}
