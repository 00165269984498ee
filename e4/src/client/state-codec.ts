/**
 * Serialises client state in e4go's own JSON layout (Go `encoding/json`, byte slices as standard
 * base64), so a state file can move between e4go and this library:
 * `{"ID","TopicKeys":{hexHash:b64},"Key":{"keyType":0|1,"keyData":{...}},"ReceivingTopic"}`.
 * keyType 0 is symmetric (`{"Key"}`), 1 is public-key
 * (`{"PrivateKey","SignerID","C2PubKey","PubKeys":{hexId:b64}}`).
 *
 * One field of our own, `"PendingPrivateKey": b64` after `ReceivingTopic`, is written only while
 * a public-key device rotates its own identity key (`E4Client.beginOwnKeyRotation`): a state
 * without a pending rotation is byte for byte e4go's. e4go's loader reads the fields it knows by
 * name and ignores the others, so such a state still loads there, as the rotation abandoned
 * (e4go keeps the current key, and drops the field at its next save).
 */
import { bytesEqual, isAllZero } from '../bytes.ts';
import { KEY_LEN } from '../constants.ts';
import { E4Error, E4ErrorCode } from '../errors.ts';
import {
  validateCurve25519PubKey,
  validateEd25519PrivKey,
  validateEd25519PubKey,
  validateSymKey,
} from '../validate.ts';
import {
  requireClientState,
  TRANSITION_ENTRY_LEN,
  type ClientState,
  type KeyMaterial,
} from './client-state.ts';

const SYMMETRIC_KEY_TYPE = 0;
const PUBLIC_KEY_TYPE = 1;

/** Base64 of `bytes`, read in place (a client saves its state after every command). */
function b64(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64');
}

function b64Map(map: ReadonlyMap<string, Uint8Array>): Record<string, string> {
  return Object.fromEntries([...map].map(([k, v]) => [k, b64(v)]));
}

/**
 * Encodes a state as e4go's JSON, followed by a newline as e4go writes it.
 * @throws E4Error `InvalidArgument` when a field has the wrong type (plain JavaScript): a string
 *   where bytes belong was written as garbage base64, a missing field was a bare TypeError
 */
export function encodeClientState(state: ClientState): string {
  requireClientState(state);
  const material = state.keyMaterial;
  const key =
    material.mode === 'symmetric'
      ? { keyType: SYMMETRIC_KEY_TYPE, keyData: { Key: b64(material.key) } }
      : {
          keyType: PUBLIC_KEY_TYPE,
          keyData: {
            PrivateKey: b64(material.privateKey),
            SignerID: b64(state.id),
            C2PubKey: b64(material.c2PublicKey),
            PubKeys: b64Map(material.pubKeys),
          },
        };
  const pending = material.mode === 'public-key' ? material.pendingPrivateKey : undefined;
  return (
    JSON.stringify({
      ID: b64(state.id),
      TopicKeys: b64Map(state.topicKeys),
      Key: key,
      ReceivingTopic: state.receivingTopic,
      ...(pending === undefined ? {} : { PendingPrivateKey: b64(pending) }),
    }) + '\n'
  );
}

function invalid(message: string, cause?: unknown): E4Error {
  return new E4Error(E4ErrorCode.InvalidState, `invalid client state: ${message}`, { cause });
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * Standard padded base64, as Go's `encoding/json` writes byte slices and reads them back: Node's
 * decoder also takes unpadded or otherwise loose text, which e4go would then refuse to load.
 */
function bytesField(obj: Record<string, unknown>, field: string): Uint8Array {
  const value = obj[field];
  if (typeof value !== 'string' || !/^[A-Za-z0-9+/]*={0,2}$/.test(value)) {
    throw invalid(`${field} must be a base64 string`);
  }
  const bytes = Buffer.from(value, 'base64');
  if (bytes.toString('base64') !== value) throw invalid(`${field} must be padded standard base64`);
  return new Uint8Array(bytes);
}

function bytesMap(obj: Record<string, unknown>, field: string): Map<string, Uint8Array> {
  const value = obj[field] ?? {};
  if (!isRecord(value)) throw invalid(`${field} must be an object`);
  const map = new Map<string, Uint8Array>();
  for (const key of Object.keys(value)) {
    // Not quoted: a damaged file can have anything there, key base64 included.
    if (!/^[0-9a-f]{32}$/.test(key)) throw invalid(`${field} has a key that is not a hex id`);
    map.set(key, bytesField(value, key));
  }
  return map;
}

/** Peers' Ed25519 keys, each checked as SetPubKey checks a key before it stores one. */
function peerPubKeys(data: Record<string, unknown>): Map<string, Uint8Array> {
  const pubKeys = bytesMap(data, 'PubKeys');
  for (const [idHex, key] of pubKeys) {
    try {
      validateEd25519PubKey(key);
    } catch (err) {
      // Names the peer, not the key; the cause says only what is wrong (length or all zeros).
      throw invalid(`PubKeys entry ${idHex} is not a valid Ed25519 public key`, err);
    }
  }
  return pubKeys;
}

function decodeKeyMaterial(key: unknown, id: Uint8Array): KeyMaterial {
  if (!isRecord(key) || !isRecord(key['keyData']))
    throw invalid('Key must hold keyType and keyData');
  const data = key['keyData'];
  try {
    if (key['keyType'] === SYMMETRIC_KEY_TYPE) {
      const symKey = bytesField(data, 'Key');
      validateSymKey(symKey);
      return { mode: 'symmetric', key: symKey };
    }
    if (key['keyType'] === PUBLIC_KEY_TYPE) {
      const privateKey = bytesField(data, 'PrivateKey');
      validateEd25519PrivKey(privateKey);
      const c2PublicKey = bytesField(data, 'C2PubKey');
      validateCurve25519PubKey(c2PublicKey);
      const signerId = bytesField(data, 'SignerID');
      if (Buffer.compare(signerId, id) !== 0) throw invalid('SignerID differs from ID');
      return { mode: 'public-key', privateKey, c2PublicKey, pubKeys: peerPubKeys(data) };
    }
  } catch (err) {
    if (E4Error.is(err, E4ErrorCode.InvalidState)) throw err;
    throw invalid('bad key material', err);
  }
  throw invalid('unknown keyType');
}

/**
 * Decodes e4go JSON state and validates every key in it.
 * @throws E4Error `InvalidState` for anything malformed; neither its message nor its cause
 *   (the key validation error, when there is one) quotes the state text
 */
export function decodeClientState(text: string): ClientState {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    // No cause: V8's SyntaxError quotes the text around the error, which may be key base64.
    throw invalid('not JSON');
  }
  if (!isRecord(parsed)) throw invalid('not an object');
  const id = bytesField(parsed, 'ID');
  if (id.length !== 16) throw invalid('ID must be 16 bytes');
  const receivingTopic = parsed['ReceivingTopic'];
  if (typeof receivingTopic !== 'string' || receivingTopic.length === 0) {
    throw invalid('ReceivingTopic must be a non-empty string');
  }
  const topicKeys = bytesMap(parsed, 'TopicKeys');
  for (const [hash, value] of topicKeys) {
    if (value.length !== KEY_LEN && value.length !== TRANSITION_ENTRY_LEN) {
      throw invalid(`topic key ${hash} has length ${value.length}`);
    }
    // SetTopicKey refuses an all-zero key, so no state holds one, current or previous.
    if (isAllZero(value.subarray(0, KEY_LEN))) throw invalid(`topic key ${hash} is all zeros`);
  }
  const keyMaterial = decodeKeyMaterial(parsed['Key'], id);
  return { id, receivingTopic, topicKeys, keyMaterial: decodePendingKey(parsed, keyMaterial) };
}

/**
 * The key material with the pending key of an own rotation, when the state has one: a valid
 * Ed25519 private key of a public-key client, other than its current key (as
 * `E4Client.beginOwnKeyRotation` holds one). Whether it can sign and make a command key is checked
 * by `E4Client.load`, as for the current key.
 */
function decodePendingKey(parsed: Record<string, unknown>, material: KeyMaterial): KeyMaterial {
  if (parsed['PendingPrivateKey'] === undefined) return material;
  if (material.mode !== 'public-key') throw invalid('PendingPrivateKey needs keyType 1');
  const pendingPrivateKey = bytesField(parsed, 'PendingPrivateKey');
  try {
    validateEd25519PrivKey(pendingPrivateKey);
  } catch (err) {
    throw invalid('PendingPrivateKey is not a valid Ed25519 private key', err);
  }
  if (bytesEqual(pendingPrivateKey, material.privateKey))
    throw invalid('PendingPrivateKey is the current key');
  return { ...material, pendingPrivateKey };
}
