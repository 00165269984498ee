/**
 * A device's rotation of its own identity key in public-key mode, as pure transitions of the
 * client state (`docs/protocol-extensions.md` §2). The device draws a new Ed25519 pair and holds
 * it as *pending* beside its current key *before* the C2 learns its public half
 * (RotateClientKey). From then on a command the current key does not authenticate is tried under
 * the pending one, and the first one it authenticates promotes it: whichever key the C2 used for
 * a command around the switch, the device opens it. {@link E4Client} applies these transitions,
 * saves them and keeps its derived keys in step.
 */
import { bytesEqual } from '../bytes.ts';
import { E4Error, E4ErrorCode } from '../errors.ts';
import { validateEd25519PrivKey } from '../validate.ts';
import { checkPkKeys, type ClientState, type PubKeyMaterial } from './client-state.ts';

/**
 * The key material of a public-key client.
 * @throws E4Error `UnsupportedOperation` for a symmetric-key client: its key is the C2's to
 *   choose (SetIDKey), it has no key pair to draw
 */
function ownKeyMaterial(state: ClientState): PubKeyMaterial {
  if (state.keyMaterial.mode !== 'public-key') {
    throw new E4Error(
      E4ErrorCode.UnsupportedOperation,
      'an own identity key rotation needs a public-key client',
    );
  }
  return state.keyMaterial;
}

/**
 * The pending key of a public-key client, and the material without it.
 * @throws E4Error `UnsupportedOperation` (symmetric-key client), `NoRotationPending`
 */
function pendingOf(state: ClientState): {
  readonly pending: Uint8Array;
  readonly rest: PubKeyMaterial;
} {
  const { pendingPrivateKey, ...rest } = ownKeyMaterial(state);
  if (pendingPrivateKey === undefined) {
    throw new E4Error(E4ErrorCode.NoRotationPending, 'no own identity key rotation is pending');
  }
  return { pending: pendingPrivateKey, rest };
}

/**
 * `state` holding `privateKey` as its pending identity key (a copy of it), or `state` itself when
 * that key is already pending: beginning the same rotation again changes nothing.
 * @param privateKey - a Go-format Ed25519 key (64 bytes, `seed || public`)
 * @throws E4Error `UnsupportedOperation` (symmetric-key client); `InvalidKey` for a key that is
 *   not a valid Ed25519 key with agreeing halves, or that is the current key; `RotationPending`
 *   when another key is pending
 */
export function withPendingKey(state: ClientState, privateKey: Uint8Array): ClientState {
  const material = ownKeyMaterial(state);
  validateEd25519PrivKey(privateKey);
  checkPkKeys(privateKey, material.c2PublicKey);
  if (bytesEqual(privateKey, material.privateKey)) {
    throw new E4Error(E4ErrorCode.InvalidKey, 'the new identity key is the current one');
  }
  const pending = material.pendingPrivateKey;
  if (pending !== undefined) {
    if (bytesEqual(pending, privateKey)) return state;
    throw new E4Error(
      E4ErrorCode.RotationPending,
      'another own identity key rotation is pending: complete or abandon it first',
    );
  }
  return {
    ...state,
    keyMaterial: { ...material, pendingPrivateKey: new Uint8Array(privateKey) },
  };
}

/**
 * `state` with its pending key promoted to current identity key; the key it replaces is dropped.
 * @throws E4Error `UnsupportedOperation` (symmetric-key client), `NoRotationPending`
 */
export function withPendingPromoted(state: ClientState): ClientState {
  const { pending, rest } = pendingOf(state);
  return { ...state, keyMaterial: { ...rest, privateKey: pending } };
}

/**
 * `state` without its pending key: the current key stays.
 * @throws E4Error `UnsupportedOperation` (symmetric-key client), `NoRotationPending`
 */
export function withoutPendingKey(state: ClientState): ClientState {
  return { ...state, keyMaterial: pendingOf(state).rest };
}
