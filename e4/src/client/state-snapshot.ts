/**
 * The copies of a client's state that {@link E4Client.state} hands out. The internal state shares
 * its byte arrays and maps with nobody, so that what a caller does to a copy never reaches the
 * client's keys or what it saves next.
 */
import type { ClientState, KeyMaterial } from './client-state.ts';

function copyMap(map: ReadonlyMap<string, Uint8Array>): ReadonlyMap<string, Uint8Array> {
  return new Map([...map].map(([k, v]) => [k, new Uint8Array(v)]));
}

function copyKeyMaterial(material: KeyMaterial): KeyMaterial {
  if (material.mode === 'symmetric') {
    return Object.freeze({ mode: material.mode, key: new Uint8Array(material.key) });
  }
  const pending = material.pendingPrivateKey;
  return Object.freeze({
    mode: material.mode,
    privateKey: new Uint8Array(material.privateKey),
    c2PublicKey: new Uint8Array(material.c2PublicKey),
    pubKeys: copyMap(material.pubKeys),
    ...(pending === undefined ? {} : { pendingPrivateKey: new Uint8Array(pending) }),
  });
}

/**
 * Frozen copies of successive states of one client. A copy is made only when the state changed,
 * and its topic keys and key material only when they changed: reading `state` stays cheap on hot
 * paths, and `state`, `state.topicKeys` and `state.keyMaterial` keep their identity until what
 * they copy changes (callers compare them with `===` to see a command take effect).
 */
export class StateSnapshots {
  #source: ClientState | undefined;
  #copy: ClientState | undefined;

  /** The copy of `state`, reusing the previous copy's parts where `state` reuses its parts. */
  of(state: ClientState): ClientState {
    const source = this.#source;
    const previous = this.#copy;
    if (source === state && previous !== undefined) return previous;
    const copy: ClientState = Object.freeze({
      id: new Uint8Array(state.id),
      receivingTopic: state.receivingTopic,
      topicKeys:
        source?.topicKeys === state.topicKeys && previous
          ? previous.topicKeys
          : copyMap(state.topicKeys),
      keyMaterial:
        source?.keyMaterial === state.keyMaterial && previous
          ? previous.keyMaterial
          : copyKeyMaterial(state.keyMaterial),
    });
    this.#source = state;
    this.#copy = copy;
    return copy;
  }
}
