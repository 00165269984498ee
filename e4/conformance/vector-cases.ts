/**
 * Conformance checks of the E4 library against the reference vectors (e4go, libe4).
 * Each vector file is turned into named cases; a case passes or fails with a reason.
 */
import {
  E4Client,
  E4Error,
  MemoryClientStore,
  clientIdFromName,
  commandKeyForClient,
  commandKeyFromClient,
  controlTopic,
  currentTopicKeys,
  deriveSymKey,
  ed25519KeyFromSeed,
  ed25519PrivateToCurve25519,
  ed25519PublicToCurve25519,
  ed25519SigningKey,
  encodeClientState,
  encodeCommand,
  fromHex,
  parseCommand,
  protectCommand,
  protectPubKey,
  protectSymKeyAt,
  readInt64LE,
  toHex,
  topicHash,
  transitionSlotHash,
  validateName,
  validateTopic,
  x25519,
  x25519PublicKey,
  type ClientState,
  type E4ErrorCode,
} from '../index.ts';

/** One checked vector. */
export interface CaseResult {
  readonly file: string;
  readonly name: string;
  readonly passed: boolean;
  readonly detail?: string;
}

/** Outcome the vectors expect: a value, or an e4go error by variable name and text. */
interface Expected {
  ok: boolean;
  plaintext?: string;
  error?: string;
  error_message?: string;
}

type Json = Record<string, unknown>;

function expectedOf(vector: Json): Expected {
  const e = vector['expected'];
  if (typeof e !== 'object' || e === null || typeof (e as Json)['ok'] !== 'boolean') {
    throw new Mismatch('vector has no expected outcome');
  }
  return e as Expected;
}

class Mismatch extends Error {}

function fail(message: string): never {
  throw new Mismatch(message);
}

function str(obj: Json, key: string): string {
  const v = obj[key];
  if (typeof v !== 'string') fail(`vector field ${key} is not a string`);
  return v;
}

function num(obj: Json, key: string): number {
  const v = obj[key];
  if (typeof v !== 'number') fail(`vector field ${key} is not a number`);
  return v;
}

function obj(o: Json, key: string): Json {
  const v = o[key];
  if (typeof v !== 'object' || v === null) fail(`vector field ${key} is not an object`);
  return v as Json;
}

function list(o: Json, key: string): Json[] {
  const v = o[key];
  if (!Array.isArray(v)) fail(`vector field ${key} is not a list`);
  return v as Json[];
}

function hex(o: Json, key: string): Uint8Array {
  return fromHex(str(o, key));
}

function eqHex(what: string, actual: Uint8Array, expected: string): void {
  if (toHex(actual) !== expected) fail(`${what}: got ${toHex(actual)}, expected ${expected}`);
}

const clockAt = (seconds: number) => (): number => seconds * 1000;

/** e4go error variable name -> our code. "Other" errors are matched by message. */
const referenceCodes: Record<string, E4ErrorCode> = {
  ErrTimestampTooOld: 'TimestampTooOld',
  ErrTimestampInFuture: 'TimestampInFuture',
  ErrTooShortCiphertext: 'TooShortCiphertext',
  ErrInvalidProtectedLen: 'InvalidProtectedLen',
  ErrInvalidSignature: 'InvalidSignature',
  ErrNotAuthentic: 'NotAuthentic',
  ErrPubKeyNotFound: 'PubKeyNotFound',
  ErrTopicKeyNotFound: 'TopicKeyNotFound',
  ErrInvalidCommand: 'InvalidCommand',
  ErrUnsupportedOperation: 'UnsupportedOperation',
};

// e4go prints the raw id bytes in this message; we print hex. The vectors mask the bytes.
const UNKNOWN_PUBKEY_PREFIX = 'no public key exists for id: ';

/** Runs `action` and checks its outcome against `expected`; returns the value on success. */
async function expectOutcome<T>(
  expected: Expected,
  action: () => Promise<T> | T,
): Promise<T | undefined> {
  let value: T;
  try {
    value = await action();
  } catch (err) {
    if (!(err instanceof E4Error)) throw err;
    if (expected.ok) fail(`unexpected error ${err.code}: ${err.message}`);
    const wanted = expected.error ?? '';
    const message = expected.error_message ?? '';
    if (wanted === 'Other') {
      const prefixMatch =
        message.startsWith(UNKNOWN_PUBKEY_PREFIX) &&
        err.code === 'UnknownPubKeyId' &&
        err.message.startsWith(UNKNOWN_PUBKEY_PREFIX);
      if (!prefixMatch && err.message !== message)
        fail(`got error "${err.message}", expected "${message}"`);
    } else {
      const code = referenceCodes[wanted] ?? fail(`unknown expected error ${wanted}`);
      if (err.code !== code) fail(`got error ${err.code}, expected ${code}`);
      if (err.message !== message) fail(`got message "${err.message}", expected "${message}"`);
    }
    return undefined;
  }
  if (!expected.ok) fail(`expected error ${expected.error ?? ''}, got success`);
  return value;
}

/** Builds a client with an exact state through the public API (encode, then load). */
async function clientFromState(state: ClientState, nowSeconds: number): Promise<E4Client> {
  return E4Client.load(new MemoryClientStore(encodeClientState(state)), {
    clock: clockAt(nowSeconds),
  });
}

function hexMap(o: Json): Map<string, Uint8Array> {
  return new Map(Object.entries(o).map(([k, v]) => [k, fromHex(v as string)]));
}

// ---------------------------------------------------------------- identities and hashes

function clientIdCases(file: Json): Array<[string, () => void]> {
  return list(file, 'vectors').map((v) => [
    str(v, 'description'),
    () => {
      const name = hex(v, 'name_hex');
      const id = clientIdFromName(name);
      eqHex('id', id, str(v, 'id'));
      if (controlTopic(id) !== str(v, 'control_topic')) fail('control topic differs');
      let error: string | undefined;
      try {
        validateName(name);
      } catch (err) {
        error = (err as Error).message;
      }
      if ((error === undefined) !== v['name_valid'])
        fail(`name validity: got error ${error ?? 'none'}`);
      if (error !== undefined && error !== v['name_error']) fail(`name error "${error}"`);
    },
  ]);
}

function topicHashCases(file: Json): Array<[string, () => void]> {
  return list(file, 'vectors').map((v) => [
    str(v, 'description'),
    () => {
      const hash = topicHash(hex(v, 'topic_hex'));
      eqHex('hash', hash, str(v, 'hash'));
      eqHex('transition slot', transitionSlotHash(hash), str(v, 'transition_slot_hash'));
      let error: string | undefined;
      try {
        validateTopic(str(v, 'topic'));
      } catch (err) {
        error = (err as Error).message;
      }
      if ((error === undefined) !== v['topic_valid'])
        fail(`topic validity: got error ${error ?? 'none'}`);
      if (error !== undefined && error !== v['topic_error']) fail(`topic error "${error}"`);
    },
  ]);
}

function passwordCases(file: Json): Array<[string, () => void]> {
  return list(file, 'vectors').map((v) => [
    str(v, 'description'),
    () => {
      const password = hex(v, 'password_hex');
      if (v['ok'] !== true) {
        try {
          deriveSymKey(password);
        } catch (err) {
          if (!E4Error.is(err, 'InvalidPassword')) throw err;
          if (err.message !== v['error_message']) fail(`message "${err.message}"`);
          return;
        }
        fail('password accepted, expected rejection');
      }
      const key = deriveSymKey(password);
      eqHex('symmetric key', key, str(v, 'symmetric_key'));
      const edKey = ed25519KeyFromSeed(key);
      eqHex('ed25519 private key', edKey, str(v, 'ed25519_private_key'));
      eqHex('ed25519 public key', edKey.subarray(32), str(v, 'ed25519_public_key'));
      const curvePriv = ed25519PrivateToCurve25519(edKey);
      eqHex('curve25519 private key', curvePriv, str(v, 'curve25519_private_key'));
      eqHex(
        'curve25519 public key',
        ed25519PublicToCurve25519(edKey.subarray(32)),
        str(v, 'curve25519_public_key'),
      );
      eqHex(
        'X25519 base multiplication',
        x25519PublicKey(curvePriv),
        str(v, 'curve25519_public_key'),
      );
    },
  ]);
}

// ---------------------------------------------------------------- messages

function skMessageCases(file: Json): Array<[string, () => Promise<void> | void]> {
  const protect = list(obj(file, 'protect'), 'vectors').map((v): [string, () => void] => [
    `protect: ${str(v, 'description')}`,
    () => {
      // The timestamp bytes, not the JSON number: 0x0102030405060708 exceeds a double's precision.
      const ts = new DataView(hex(v, 'timestamp_bytes').buffer).getBigUint64(0, true);
      eqHex(
        'protected',
        protectSymKeyAt(hex(v, 'plaintext'), hex(v, 'key'), ts),
        str(v, 'protected'),
      );
    },
  ]);
  const unprotect = list(obj(file, 'unprotect'), 'vectors').map(
    (v): [string, () => Promise<void>] => [
      `unprotect: ${str(v, 'description')}`,
      async () => {
        const topicKeys = new Map<string, Uint8Array>();
        for (const [topic, key] of Object.entries(obj(v, 'client_topic_keys'))) {
          topicKeys.set(toHex(topicHash(topic)), fromHex(key as string));
        }
        const client = await clientFromState(skState(topicKeys), num(v, 'now'));
        const plaintext = await expectOutcome(expectedOf(v), () =>
          client.unprotectMessage(hex(v, 'protected'), str(v, 'topic')),
        );
        if (plaintext !== undefined)
          eqHex('plaintext', plaintext, str(obj(v, 'expected'), 'plaintext'));
      },
    ],
  );
  const transition = list(obj(file, 'key_transition'), 'vectors').map(
    (v): [string, () => Promise<void>] => [
      `key transition: ${str(v, 'description')}`,
      async () => {
        const hash = topicHash(str(v, 'topic'));
        eqHex('transition slot', transitionSlotHash(hash), str(v, 'transition_slot_hash'));
        const slotValue = hex(v, 'transition_slot_value');
        if (readInt64LE(slotValue, 32) !== BigInt(num(v, 'old_key_timestamp')))
          fail('slot timestamp');
        const topicKeys = new Map([
          [toHex(hash), hex(v, 'current_key')],
          [str(v, 'transition_slot_hash'), slotValue],
        ]);
        const client = await clientFromState(skState(topicKeys), num(v, 'now'));
        const plaintext = await expectOutcome(expectedOf(v), () =>
          client.unprotectMessage(hex(v, 'protected'), str(v, 'topic')),
        );
        if (plaintext !== undefined)
          eqHex('plaintext', plaintext, str(obj(v, 'expected'), 'plaintext'));
      },
    ],
  );
  return [...protect, ...unprotect, ...transition];
}

const SK_RECEIVER_KEY = fromHex('11'.repeat(32));
const SK_RECEIVER_ID = clientIdFromName('vector-receiver');

function skState(topicKeys: Map<string, Uint8Array>): ClientState {
  return {
    id: SK_RECEIVER_ID,
    receivingTopic: controlTopic(SK_RECEIVER_ID),
    topicKeys,
    keyMaterial: { mode: 'symmetric', key: SK_RECEIVER_KEY },
  };
}

function pkMessageCases(file: Json): Array<[string, () => Promise<void> | void]> {
  const sender = obj(file, 'sender');
  const receiver = obj(file, 'receiver');
  const c2 = obj(file, 'c2');
  const protect = list(obj(file, 'protect'), 'vectors').map((v): [string, () => void] => [
    `protect: ${str(v, 'description')}`,
    () => {
      const signer = {
        id: hex(sender, 'id'),
        signingKey: ed25519SigningKey(hex(sender, 'ed25519_private_key')),
      };
      const out = protectPubKey(
        hex(v, 'plaintext'),
        hex(v, 'topic_key'),
        signer,
        clockAt(num(v, 'timestamp')),
      );
      eqHex('protected', out, str(v, 'protected'));
      eqHex('signed bytes', out.subarray(0, out.length - 64), str(v, 'signed_bytes'));
      eqHex('signature', out.subarray(out.length - 64), str(v, 'signature'));
    },
  ]);
  const unprotect = list(obj(file, 'unprotect'), 'vectors').map(
    (v): [string, () => Promise<void>] => [
      `unprotect: ${str(v, 'description')}`,
      async () => {
        const id = hex(receiver, 'id');
        const state: ClientState = {
          id,
          receivingTopic: controlTopic(id),
          topicKeys: new Map([[str(file, 'topic_hash'), hex(file, 'topic_key')]]),
          keyMaterial: {
            mode: 'public-key',
            privateKey: hex(receiver, 'ed25519_private_key'),
            c2PublicKey: hex(c2, 'c2_curve25519_public_key'),
            pubKeys: new Map([[str(sender, 'id'), hex(sender, 'ed25519_public_key')]]),
          },
        };
        const client = await clientFromState(state, num(v, 'now'));
        const expected = expectedOf(v);
        const plaintext = await expectOutcome(expected, () =>
          client.unprotectMessage(hex(v, 'protected'), str(v, 'topic')),
        );
        if (plaintext !== undefined) eqHex('plaintext', plaintext, expected.plaintext ?? '');
      },
    ],
  );
  return [...protect, ...unprotect];
}

// ---------------------------------------------------------------- commands

type Mode = 'sk' | 'pk';

function initialCommandState(file: Json, mode: Mode): ClientState {
  const initial = obj(file, 'initial_state');
  const client = obj(file, 'client');
  const id = hex(client, 'id');
  return {
    id,
    receivingTopic: controlTopic(id),
    topicKeys: hexMap(obj(initial, 'topic_keys')),
    keyMaterial:
      mode === 'sk'
        ? { mode: 'symmetric', key: hex(initial, 'id_key') }
        : {
            mode: 'public-key',
            privateKey: hex(initial, 'ed25519_private_key'),
            c2PublicKey: hex(initial, 'c2_public_key'),
            pubKeys: hexMap(obj(initial, 'pub_keys')),
          },
  };
}

/** Compares a client's state with a vector's `state_after` (or the initial state). */
function checkState(state: ClientState, expected: Json, processedAt: number): void {
  const current = currentTopicKeys(state);
  const wantTopics = obj(expected, 'topic_keys');
  const gotTopics = Object.fromEntries([...current].map(([k, v]) => [k, toHex(v)]));
  if (JSON.stringify(sortKeys(gotTopics)) !== JSON.stringify(sortKeys(wantTopics))) {
    fail(`topic keys ${JSON.stringify(gotTopics)}`);
  }
  const transitions = [...state.topicKeys].filter(([, v]) => v.length === 40);
  const wantTransitions = (expected['transition_keys'] ?? {}) as Json;
  if (transitions.length !== Object.keys(wantTransitions).length)
    fail('transition key count differs');
  for (const [slot, value] of transitions) {
    const want = wantTransitions[slot] as Json | undefined;
    if (want === undefined) fail(`unexpected transition slot ${slot}`);
    eqHex('transition old key', value.subarray(0, 32), str(want, 'old_key'));
    if (readInt64LE(value, 32) !== BigInt(processedAt))
      fail('transition timestamp is not the processing time');
  }
  const material = state.keyMaterial;
  if (material.mode === 'symmetric') {
    eqHex('id key', material.key, str(expected, 'id_key'));
    return;
  }
  eqHex('ed25519 private key', material.privateKey, str(expected, 'ed25519_private_key'));
  eqHex('c2 public key', material.c2PublicKey, str(expected, 'c2_public_key'));
  eqHex(
    'command key',
    commandKeyFromClient(material.privateKey, material.c2PublicKey),
    str(expected, 'command_key'),
  );
  const gotPub = Object.fromEntries([...material.pubKeys].map(([k, v]) => [k, toHex(v)]));
  const wantPub = (expected['pub_keys'] ?? {}) as Json; // omitted when empty
  if (JSON.stringify(sortKeys(gotPub)) !== JSON.stringify(sortKeys(wantPub))) {
    fail(`pub keys ${JSON.stringify(gotPub)}`);
  }
}

function sortKeys(o: Json): Json {
  return Object.fromEntries(Object.entries(o).sort(([a], [b]) => a.localeCompare(b)));
}

/** Applies one command vector to `client` and checks outcome, bytes and state. */
async function checkCommandStep(client: E4Client, v: Json, fallbackState: Json): Promise<void> {
  const clear = hex(v, 'clear');
  const timestamp = num(v, 'timestamp');
  eqHex(
    'protected command',
    protectCommand(clear, hex(v, 'command_key'), clockAt(timestamp)),
    str(v, 'protected'),
  );
  const expected = expectedOf(v);
  if (expected.ok) eqHex('re-encoded command', encodeCommand(parseCommand(clear)), str(v, 'clear'));
  const before = client.state;
  const outcome = await expectOutcome(expected, () =>
    client.unprotect(hex(v, 'protected'), client.receivingTopic),
  );
  if (outcome !== undefined && outcome.kind !== 'command')
    fail('control message not treated as a command');
  if (!expected.ok && client.state !== before) fail('failed command changed the state');
  checkState(client.state, (v['state_after'] as Json | undefined) ?? fallbackState, timestamp);
}

function commandCases(file: Json, mode: Mode): Array<[string, () => Promise<void> | void]> {
  const initial = initialCommandState(file, mode);
  const initialJson = obj(file, 'initial_state');
  const cases: Array<[string, () => Promise<void> | void]> = [];
  if (mode === 'pk') {
    const c2 = obj(file, 'c2');
    const client = obj(file, 'client');
    const derived = obj(file, 'client_keys_derived');
    cases.push([
      'command key derivation (C2 side and client side)',
      () => {
        const pub = hex(client, 'ed25519_public_key');
        eqHex(
          'client public key',
          ed25519KeyFromSeed(hex(client, 'ed25519_seed')).subarray(32),
          str(client, 'ed25519_public_key'),
        );
        eqHex(
          'curve public',
          ed25519PublicToCurve25519(pub),
          str(derived, 'curve25519_public_key'),
        );
        eqHex(
          'curve private',
          ed25519PrivateToCurve25519(hex(client, 'ed25519_private_key')),
          str(derived, 'curve25519_private_key'),
        );
        eqHex(
          'shared secret',
          x25519(hex(c2, 'c2_curve25519_private_key'), ed25519PublicToCurve25519(pub)),
          str(derived, 'x25519_shared_secret'),
        );
        eqHex(
          'command key (C2)',
          commandKeyForClient(hex(c2, 'c2_curve25519_private_key'), pub),
          str(derived, 'command_key'),
        );
        eqHex(
          'command key (client)',
          commandKeyFromClient(
            hex(client, 'ed25519_private_key'),
            hex(c2, 'c2_curve25519_public_key'),
          ),
          str(derived, 'command_key'),
        );
        eqHex(
          'C2 public key',
          x25519PublicKey(hex(c2, 'c2_curve25519_private_key')),
          str(c2, 'c2_curve25519_public_key'),
        );
      },
    ]);
  }
  for (const v of list(file, 'vectors')) {
    cases.push([
      str(v, 'description'),
      async () =>
        checkCommandStep(await clientFromState(initial, num(v, 'timestamp')), v, initialJson),
    ]);
  }
  const steps = list(obj(file, 'sequence'), 'steps');
  cases.push([
    `sequence of ${steps.length} commands on one client`,
    async () => {
      let now = 0;
      const client = await E4Client.load(new MemoryClientStore(encodeClientState(initial)), {
        clock: () => now * 1000,
      });
      let previousState = initialJson;
      for (const [i, step] of steps.entries()) {
        now = num(step, 'timestamp');
        try {
          await checkCommandStep(client, step, previousState);
        } catch (err) {
          if (err instanceof Mismatch)
            fail(`step ${i + 1} (${str(step, 'description')}): ${err.message}`);
          throw err;
        }
        previousState = (step['state_after'] as Json | undefined) ?? previousState;
      }
    },
  ]);
  return cases;
}

/** The vector files and how each is checked. */
export const vectorFiles: Record<
  string,
  (file: Json) => Array<[string, () => Promise<void> | void]>
> = {
  'client_ids.json': clientIdCases,
  'topic_hashes.json': topicHashCases,
  'password_keys.json': passwordCases,
  'sk_messages.json': skMessageCases,
  'pk_messages.json': pkMessageCases,
  'commands_sk.json': (file) => commandCases(file, 'sk'),
  'commands_pk.json': (file) => commandCases(file, 'pk'),
};

/** Runs every case of one parsed vector file. */
export async function checkVectorFile(fileName: string, content: Json): Promise<CaseResult[]> {
  const builder = vectorFiles[fileName];
  if (builder === undefined)
    return [{ file: fileName, name: '(file)', passed: false, detail: 'unknown vector file' }];
  const results: CaseResult[] = [];
  let cases: Array<[string, () => Promise<void> | void]>;
  try {
    cases = builder(content);
  } catch (err) {
    return [{ file: fileName, name: '(file)', passed: false, detail: (err as Error).message }];
  }
  for (const [name, run] of cases) {
    try {
      await run();
      results.push({ file: fileName, name, passed: true });
    } catch (err) {
      const detail =
        err instanceof Error
          ? `${err instanceof Mismatch ? '' : `${err.name}: `}${err.message}`
          : String(err);
      results.push({ file: fileName, name, passed: false, detail });
    }
  }
  return results;
}
