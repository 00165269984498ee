// Fuzzing of every entry point that takes untrusted bytes or text: random byte strings and
// near-valid inputs (valid messages truncated, extended, mutated) must give a result or an
// E4Error, never another exception; failed commands must leave the client state untouched.
import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import fc from 'fast-check';
import {
  AesSivKey,
  aesSivOpen,
  bytesEqual,
  checkPkKeys,
  clientIdFromName,
  cmdRemovePubKey,
  cmdRemoveTopic,
  cmdSetPubKey,
  cmdSetTopicKey,
  commandKeyForClient,
  commandKeyFromClient,
  concatBytes,
  decodeClientState,
  E4Client,
  E4Error,
  E4ErrorCode,
  ed25519KeyFromSeed,
  ed25519PrivateToCurve25519,
  ed25519PublicKey,
  ed25519PublicKeyObject,
  ed25519PublicToCurve25519,
  ed25519Sign,
  ed25519SigningKey,
  ed25519Verify,
  encodeClientState,
  fromHex,
  isAllZero,
  MemoryClientStore,
  parseCommand,
  protectCommand,
  protectPubKey,
  protectSymKey,
  readInt64LE,
  toHex,
  topicHash,
  unprotectPubKey,
  unprotectSymKey,
  validateName,
  validateTopic,
  x25519,
  x25519PublicKey,
  type Clock,
  type PkSigner,
  type PubKeyLookup,
} from '../index.ts';
import { assertBytes, codePointChar, fixedClock, loose } from './support.ts';

const T0 = 1_700_000_000_000;
/** Every message here is stamped with, and checked against, this reading (sub-second on purpose). */
const NOW = T0 + 250;
const clock: Clock = fixedClock(NOW);
const TOPIC = 'fuzz/topic';

/** Runs `fn`; any exception other than an E4Error fails the property. */
function resultOrE4Error<T>(fn: () => T): T | E4Error {
  try {
    return fn();
  } catch (err) {
    assert.ok(err instanceof E4Error, `non-E4Error thrown: ${String(err)}`);
    return err;
  }
}

async function resultOrE4ErrorAsync<T>(promise: Promise<T>): Promise<T | E4Error> {
  try {
    return await promise;
  } catch (err) {
    assert.ok(err instanceof E4Error, `non-E4Error thrown: ${String(err)}`);
    return err;
  }
}

// ---------------------------------------------------------------------------------------------
// Mutations of valid inputs.

type Mutation =
  | { readonly kind: 'none' }
  | { readonly kind: 'truncate'; readonly at: number }
  | { readonly kind: 'extend'; readonly extra: Uint8Array }
  | { readonly kind: 'flip'; readonly at: number; readonly mask: number }
  | { readonly kind: 'overwrite'; readonly at: number; readonly bytes: Uint8Array }
  | { readonly kind: 'insert'; readonly at: number; readonly bytes: Uint8Array }
  | { readonly kind: 'delete'; readonly at: number; readonly count: number };

const position = fc.nat({ max: 10_000 });
const mutationArb: fc.Arbitrary<Mutation> = fc.oneof(
  { arbitrary: fc.constant({ kind: 'none' as const }), weight: 1 },
  { arbitrary: fc.record({ kind: fc.constant('truncate' as const), at: position }), weight: 3 },
  {
    arbitrary: fc.record({
      kind: fc.constant('extend' as const),
      extra: fc.uint8Array({ minLength: 1, maxLength: 80 }),
    }),
    weight: 2,
  },
  {
    arbitrary: fc.record({
      kind: fc.constant('flip' as const),
      at: position,
      mask: fc.integer({ min: 1, max: 255 }),
    }),
    weight: 4,
  },
  {
    arbitrary: fc.record({
      kind: fc.constant('overwrite' as const),
      at: position,
      bytes: fc.uint8Array({ minLength: 1, maxLength: 40 }),
    }),
    weight: 2,
  },
  {
    arbitrary: fc.record({
      kind: fc.constant('insert' as const),
      at: position,
      bytes: fc.uint8Array({ minLength: 1, maxLength: 20 }),
    }),
    weight: 2,
  },
  {
    arbitrary: fc.record({
      kind: fc.constant('delete' as const),
      at: position,
      count: fc.integer({ min: 1, max: 30 }),
    }),
    weight: 2,
  },
);

function mutate(base: Uint8Array, m: Mutation): Uint8Array {
  const at = (n: number): number => (base.length === 0 ? 0 : n % (base.length + 1));
  switch (m.kind) {
    case 'none':
      return new Uint8Array(base);
    case 'truncate':
      return base.slice(0, at(m.at));
    case 'extend':
      return concatBytes(base, m.extra);
    case 'flip': {
      const out = new Uint8Array(base);
      if (out.length > 0) {
        const i = m.at % out.length;
        out[i] = (out[i] ?? 0) ^ m.mask;
      }
      return out;
    }
    case 'overwrite': {
      const out = new Uint8Array(base);
      out.set(m.bytes.subarray(0, Math.max(0, out.length - at(m.at))), at(m.at));
      return out;
    }
    case 'insert':
      return concatBytes(base.subarray(0, at(m.at)), m.bytes, base.subarray(at(m.at)));
    case 'delete':
      return concatBytes(base.subarray(0, at(m.at)), base.subarray(at(m.at) + m.count));
  }
}

const randomBytes = fc.uint8Array({ maxLength: 300 });
/** Random lengths concentrated around the protocol's thresholds (24, 104 bytes). */
const thresholdBytes = fc
  .integer({ min: 0, max: 140 })
  .chain((n) => fc.uint8Array({ minLength: n, maxLength: n }));

// ---------------------------------------------------------------------------------------------
// Fixtures: an SK and a PK device with a topic key (and a transition key), a known peer.

const topicKey = new Uint8Array(32).fill(0x31);
const oldTopicKey = new Uint8Array(32).fill(0x30);
const skClientKey = new Uint8Array(32).fill(0x41);
const peerGoKey = ed25519KeyFromSeed(new Uint8Array(32).fill(0x51));
const peer: PkSigner = {
  id: new Uint8Array(16).fill(0x52),
  signingKey: ed25519SigningKey(peerGoKey),
};
const peerLookup: PubKeyLookup = () => ed25519PublicKeyObject(ed25519PublicKey(peerGoKey));
const c2Private = new Uint8Array(32).fill(0x61);
const pkGoKey = ed25519KeyFromSeed(new Uint8Array(32).fill(0x71));
const pkCommandKey = commandKeyForClient(c2Private, ed25519PublicKey(pkGoKey));

interface Fixture {
  /** Serialised device state, so that each run can start from a fresh client. */
  readonly saved: string;
  readonly commandKey: Uint8Array;
  /** Valid messages on TOPIC (current key, transition key) and valid commands. */
  readonly dataMessages: readonly Uint8Array[];
  readonly commands: readonly Uint8Array[];
}

let sk: Fixture;
let pk: Fixture;

async function setUp(client: E4Client, commandKey: Uint8Array): Promise<void> {
  const at = (ms: number): Clock => fixedClock(ms);
  const apply = (command: Uint8Array, c: Clock): Promise<unknown> =>
    client.unprotect(protectCommand(command, commandKey, c), client.receivingTopic);
  await apply(cmdSetTopicKey(oldTopicKey, TOPIC), at(T0 - 100_000));
  await apply(cmdSetTopicKey(topicKey, TOPIC), at(T0 - 100_000));
  if (client.mode === 'public-key') {
    // The peer's id is 52..52: register it under that id through a raw SetPubKey.
    const command = cmdSetPubKey(ed25519PublicKey(peerGoKey), 'placeholder');
    command.set(peer.id, 33);
    await apply(command, at(T0 - 100_000));
  }
}

async function load(fixture: Fixture): Promise<E4Client> {
  return E4Client.load(new MemoryClientStore(fixture.saved), { clock });
}

before(async () => {
  const skClient = await E4Client.createSymmetric(
    { name: 'fuzz-sk' },
    { key: skClientKey },
    { clock: fixedClock(T0 - 100_000) },
  );
  await setUp(skClient, skClientKey);
  const c2Public = x25519PublicKey(c2Private);
  const pkClient = await E4Client.createPublicKey(
    { name: 'fuzz-pk' },
    { privateKey: pkGoKey },
    c2Public,
    { clock: fixedClock(T0 - 100_000) },
  );
  await setUp(pkClient, pkCommandKey);
  const payload = new TextEncoder().encode('near-valid payload');
  const commands = (key: Uint8Array): Uint8Array[] => [
    protectCommand(cmdSetTopicKey(new Uint8Array(32).fill(0x33), TOPIC), key, clock),
    protectCommand(Uint8Array.of(0), key, clock), // RemoveTopic without its hash
    protectCommand(Uint8Array.of(1), key, clock), // ResetTopics
    protectCommand(cmdSetPubKey(new Uint8Array(32).fill(9), 'p'), key, clock),
  ];
  sk = {
    saved: encodeClientState(skClient.state),
    commandKey: skClientKey,
    dataMessages: [
      protectSymKey(payload, topicKey, clock),
      protectSymKey(payload, oldTopicKey, clock),
      protectSymKey(new Uint8Array(1), topicKey, clock),
    ],
    commands: commands(skClientKey),
  };
  pk = {
    saved: encodeClientState(pkClient.state),
    commandKey: pkCommandKey,
    dataMessages: [
      protectPubKey(payload, topicKey, peer, clock),
      protectPubKey(payload, oldTopicKey, peer, clock),
      protectPubKey(new Uint8Array(0), topicKey, peer, clock),
    ],
    commands: commands(pkCommandKey),
  };
});

const nearValid = (messages: () => readonly Uint8Array[]): fc.Arbitrary<Uint8Array> =>
  fc
    .tuple(fc.nat(), fc.array(mutationArb, { minLength: 1, maxLength: 3 }))
    .map(([pick, mutations]) => {
      const all = messages();
      let bytes = all[pick % all.length] ?? new Uint8Array(0);
      for (const m of mutations) bytes = mutate(bytes, m);
      return bytes;
    });

// ---------------------------------------------------------------------------------------------

void describe('fuzz: unprotect functions', () => {
  void it('unprotectSymKey: random bytes and mutated messages', () => {
    const check = (bytes: Uint8Array): void => {
      const result = resultOrE4Error(() => unprotectSymKey(bytes, topicKey, clock));
      if (!(result instanceof E4Error)) assert.equal(result.length, bytes.length - 24);
    };
    fc.assert(fc.property(fc.oneof(randomBytes, thresholdBytes), check), { numRuns: 300 });
    fc.assert(
      fc.property(
        nearValid(() => sk.dataMessages),
        check,
      ),
      { numRuns: 300 },
    );
  });

  void it('unprotectPubKey: random bytes and mutated messages (every signer known)', () => {
    const check = (bytes: Uint8Array): void => {
      const result = resultOrE4Error(() => unprotectPubKey(bytes, topicKey, peerLookup, clock));
      if (!(result instanceof E4Error)) assert.equal(result.length, bytes.length - 104);
    };
    fc.assert(fc.property(fc.oneof(randomBytes, thresholdBytes), check), { numRuns: 200 });
    fc.assert(
      fc.property(
        nearValid(() => pk.dataMessages),
        check,
      ),
      { numRuns: 300 },
    );
  });

  void it('parseCommand: random bytes give a command or a command error', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          randomBytes,
          thresholdBytes.map((b) => b.subarray(0, 70)),
        ),
        (bytes) => {
          const result = resultOrE4Error(() => parseCommand(bytes));
          if (result instanceof E4Error) {
            assert.ok(
              result.code === E4ErrorCode.InvalidCommand ||
                result.code === E4ErrorCode.InvalidCommandLength,
            );
          }
        },
      ),
      { numRuns: 500 },
    );
  });
});

/** Random command bytes: mostly a real command byte, with argument lengths near the real ones. */
const commandBytes: fc.Arbitrary<Uint8Array> = fc
  .tuple(
    fc.oneof(
      { arbitrary: fc.integer({ min: 0, max: 7 }), weight: 9 },
      fc.integer({ min: 8, max: 255 }),
    ),
    fc.oneof(fc.constantFrom(0, 16, 32, 48, 64), fc.integer({ min: 0, max: 70 })),
    fc.oneof(
      { arbitrary: fc.constant('random' as const), weight: 3 },
      fc.constant('zeros' as const),
      fc.constant('goKey' as const),
    ),
    fc.uint8Array({ minLength: 70, maxLength: 70 }),
  )
  .map(([code, length, fill, noise]) => {
    let args: Uint8Array = noise.subarray(0, length);
    if (fill === 'zeros') args = new Uint8Array(length);
    // A valid Go-format Ed25519 key (for a PK SetIDKey that succeeds).
    if (fill === 'goKey' && length === 64) args = ed25519KeyFromSeed(noise.subarray(0, 32));
    return concatBytes(Uint8Array.of(code), args);
  });

for (const mode of ['sk', 'pk'] as const) {
  const fixture = (): Fixture => (mode === 'sk' ? sk : pk);

  void describe(`fuzz: E4Client.unprotect (${mode.toUpperCase()} client)`, () => {
    void it('on a data topic: random and near-valid messages; the state never changes', async () => {
      const client = await load(fixture());
      const stateBefore = client.state;
      const check = async (bytes: Uint8Array, topic: string): Promise<void> => {
        const result = await resultOrE4ErrorAsync(client.unprotect(bytes, topic));
        if (!(result instanceof E4Error)) assert.equal(result.kind, 'message');
        assert.equal(client.state, stateBefore);
      };
      await fc.assert(
        fc.asyncProperty(
          fc.oneof(randomBytes, thresholdBytes),
          fc.constantFrom(TOPIC, 'no/key'),
          check,
        ),
        { numRuns: 200 },
      );
      await fc.assert(
        fc.asyncProperty(
          nearValid(() => fixture().dataMessages),
          async (bytes) => {
            await check(bytes, TOPIC);
          },
        ),
        { numRuns: 300 },
      );
      // The unmutated messages themselves (current and transition key) are accepted.
      for (const message of fixture().dataMessages) {
        const result = await client.unprotect(message, TOPIC);
        assert.equal(result.kind, 'message');
      }
    });

    void it('on the control topic: random and mutated commands; failures keep the state', async () => {
      const client = await load(fixture());
      const check = async (bytes: Uint8Array): Promise<void> => {
        const stateBefore = client.state;
        const result = await resultOrE4ErrorAsync(client.unprotect(bytes, client.receivingTopic));
        if (result instanceof E4Error) assert.equal(client.state, stateBefore);
        else assert.equal(result.kind, 'command');
      };
      await fc.assert(fc.asyncProperty(fc.oneof(randomBytes, thresholdBytes), check), {
        numRuns: 200,
      });
      // Mutations rarely authenticate, so the client keeps its command key here.
      await fc.assert(
        fc.asyncProperty(
          nearValid(() => fixture().commands),
          check,
        ),
        {
          numRuns: 300,
        },
      );
      // The unmutated commands are valid: on a fresh client they apply (or fail as they should).
      const fresh = await load(fixture());
      const outcomes: string[] = [];
      for (const command of fixture().commands) {
        const result = await resultOrE4ErrorAsync(fresh.unprotect(command, fresh.receivingTopic));
        outcomes.push(result instanceof E4Error ? result.code : result.kind);
      }
      assert.deepEqual(outcomes, [
        'command',
        'InvalidCommandLength',
        'command',
        mode === 'sk' ? 'UnsupportedOperation' : 'command',
      ]);
    });

    void it('authenticated random commands: failures keep the state; every state persists', async () => {
      let applied = 0;
      let failed = 0;
      await fc.assert(
        fc.asyncProperty(
          fc.array(commandBytes, { minLength: 1, maxLength: 6 }),
          async (commands) => {
            const store = new MemoryClientStore(fixture().saved);
            const client = await E4Client.load(store, { clock });
            let commandKey = fixture().commandKey;
            for (const command of commands) {
              const stateBefore = client.state;
              const result = await resultOrE4ErrorAsync(
                client.unprotect(protectCommand(command, commandKey, clock), client.receivingTopic),
              );
              if (result instanceof E4Error) {
                assert.equal(client.state, stateBefore, `${result.code} changed the state`);
                failed++;
                continue;
              }
              applied++;
              assert.equal(result.kind, 'command');
              // Follow key changes the way a C2 would.
              if (result.command.type === 'SetIDKey') {
                commandKey =
                  mode === 'sk'
                    ? result.command.key
                    : commandKeyForClient(c2Private, ed25519PublicKey(result.command.key));
              }
              if (result.command.type === 'SetC2Key') {
                commandKey = new Uint8Array(0); // the test does not know the new C2 private key
              }
              if (commandKey.length === 0) break;
            }
            // Whatever state the commands produced is what was saved, and it loads back.
            const saved = await store.load();
            assert.equal(saved, encodeClientState(client.state));
            assert.deepEqual(decodeClientState(saved).topicKeys, client.state.topicKeys);
            const reloaded = await E4Client.load(store, { clock });
            assert.deepEqual(reloaded.state, client.state);
          },
        ),
        { numRuns: mode === 'sk' ? 120 : 80 },
      );
      // Both outcomes were exercised (hundreds of commands: neither count can be zero).
      assert.ok(applied > 0 && failed > 0, `applied ${applied}, failed ${failed}`);
    });
  });
}

// ---------------------------------------------------------------------------------------------
// Text, keys and helpers: the other exports that take bytes or strings from outside (a C2 reads
// device public keys from its API, a gateway reads hex keys and topics from its configuration).

/** Text of any shape: hex-like, topic-like, lone surrogates, long. */
const anyText = fc.oneof(
  fc.string({
    unit: fc.constantFrom(...Array.from('0123456789abcdefABCDEFxg /+#')),
    maxLength: 80,
  }),
  fc.string({ unit: codePointChar(true), maxLength: 80 }),
  fc.string({ unit: codePointChar(), minLength: 200, maxLength: 600 }),
);
/** Key-sized and other byte strings, all zeros included. */
const keyBytes = fc.oneof(
  fc
    .constantFrom(0, 16, 31, 32, 33, 48, 64, 65)
    .chain((n) =>
      fc.oneof(fc.uint8Array({ minLength: n, maxLength: n }), fc.constant(new Uint8Array(n))),
    ),
  fc.constant(ed25519PublicKey(pkGoKey)),
  fc.constant(pkGoKey),
);

/** Runs `fn`; an E4Error must have one of `codes`. */
function resultOrCode<T>(fn: () => T, codes: readonly E4ErrorCode[]): T | E4Error {
  const result = resultOrE4Error(fn);
  if (result instanceof E4Error) assert.ok(codes.includes(result.code), result.code);
  return result;
}

void describe('fuzz: text, keys and helpers', () => {
  void it('fromHex: the bytes of any even-length hex text, InvalidArgument for the rest', () => {
    fc.assert(
      fc.property(anyText, (text) => {
        const result = resultOrCode(() => fromHex(text), [E4ErrorCode.InvalidArgument]);
        const isHex = /^(?:[0-9a-fA-F]{2})*$/.test(text);
        assert.equal(!(result instanceof E4Error), isHex, JSON.stringify(text));
        if (!(result instanceof E4Error)) assert.equal(toHex(result), text.toLowerCase());
      }),
      { numRuns: 400 },
    );
  });

  void it('names and topics: validators and builders agree; hashes take any text', () => {
    fc.assert(
      fc.property(anyText, (text) => {
        assert.equal(clientIdFromName(text).length, 16);
        assert.equal(topicHash(text).length, 16);
        const name = resultOrCode(() => {
          validateName(text);
        }, [E4ErrorCode.InvalidName]);
        const removePubKey = resultOrCode(() => cmdRemovePubKey(text), [E4ErrorCode.InvalidName]);
        assert.equal(name instanceof E4Error, removePubKey instanceof E4Error);
        const topic = resultOrCode(() => {
          validateTopic(text);
        }, [E4ErrorCode.InvalidTopic]);
        const removeTopic = resultOrCode(() => cmdRemoveTopic(text), [E4ErrorCode.InvalidTopic]);
        assert.equal(topic instanceof E4Error, removeTopic instanceof E4Error);
        if (!(removeTopic instanceof E4Error))
          assertBytes(parseCommandTopic(removeTopic), topicHash(text));
      }),
      { numRuns: 400 },
    );
  });

  void it('E4Client: any topic string protects and unprotects to a result or an E4Error', async () => {
    const client = await load(sk);
    const stateBefore = client.state;
    const wire = protectSymKey(Uint8Array.of(1, 2), topicKey, clock);
    await fc.assert(
      fc.asyncProperty(anyText, async (topic) => {
        const codes: readonly E4ErrorCode[] = [
          E4ErrorCode.TopicKeyNotFound,
          E4ErrorCode.InvalidTopic,
        ];
        const sent = resultOrCode(() => client.protectMessage(Uint8Array.of(1), topic), codes);
        const received = await resultOrE4ErrorAsync(client.unprotect(wire, topic));
        if (received instanceof E4Error) assert.ok(codes.includes(received.code), received.code);
        // Only the fixture's topic has a key.
        assert.equal(sent instanceof E4Error, topic !== TOPIC);
        assert.equal(client.state, stateBefore);
      }),
      { numRuns: 200 },
    );
  });

  void it('curve helpers: a key or InvalidKey for any bytes; verify is a boolean', () => {
    const c2Public = x25519PublicKey(c2Private);
    const message = Uint8Array.of(1, 2, 3);
    fc.assert(
      fc.property(keyBytes, keyBytes, fc.uint8Array({ maxLength: 70 }), (a, b, signature) => {
        const invalidKey = [E4ErrorCode.InvalidKey];
        const publicKey = resultOrCode(() => ed25519PublicKeyObject(a), invalidKey);
        if (!(publicKey instanceof E4Error)) {
          assert.equal(typeof ed25519Verify(publicKey, message, signature), 'boolean');
        }
        for (const derived of [
          resultOrCode(() => commandKeyForClient(c2Private, a), invalidKey),
          resultOrCode(() => commandKeyFromClient(a, c2Public), invalidKey),
          resultOrCode(() => commandKeyFromClient(pkGoKey, a), invalidKey),
          resultOrCode(() => x25519(a, b), invalidKey),
          resultOrCode(() => ed25519PublicToCurve25519(a), invalidKey),
          resultOrCode(() => ed25519PrivateToCurve25519(a), invalidKey),
        ]) {
          if (!(derived instanceof E4Error)) assert.equal(derived.length, 32);
        }
        resultOrCode(() => {
          checkPkKeys(a, b);
        }, invalidKey);
        resultOrCode(() => ed25519SigningKey(a), invalidKey);
      }),
      { numRuns: 300 },
    );
  });

  void it('aesSivOpen: any associated data and sealed bytes open or fail as SIV fails', () => {
    fc.assert(
      fc.property(
        fc.array(fc.uint8Array({ maxLength: 40 }), { maxLength: 4 }),
        fc.oneof(randomBytes, thresholdBytes),
        (associatedData, sealed) => {
          const result = resultOrCode(
            () => aesSivOpen(topicKey, associatedData, sealed),
            [E4ErrorCode.TooShortCiphertext, E4ErrorCode.NotAuthentic],
          );
          if (!(result instanceof E4Error)) assert.equal(result.length, sealed.length - 16);
        },
      ),
      { numRuns: 300 },
    );
  });

  void it('byte entry points: any value that is not bytes is InvalidArgument, never a result', () => {
    // What plain JavaScript can pass where the types say Uint8Array: a string was sealed or
    // compared as if it were bytes (two equal strings were "equal", a string "all zeros"), a
    // missing one was a bare TypeError, a wrong key to verify was `false` like a bad signature.
    const siv = new AesSivKey(topicKey);
    const sealed = siv.seal([], Uint8Array.of(1));
    const publicKey = ed25519PublicKeyObject(ed25519PublicKey(pkGoKey));
    const signingKey = ed25519SigningKey(pkGoKey);
    const bytes = Uint8Array.of(1, 2, 3);
    const calls: ReadonlyArray<readonly [string, (bad: unknown) => unknown]> = [
      ['seal plaintext', (bad) => loose(siv.seal.bind(siv))([], bad)],
      ['seal associatedData', (bad) => loose(siv.seal.bind(siv))(bad, bytes)],
      ['seal associatedData[1]', (bad) => loose(siv.seal.bind(siv))([bytes, bad], bytes)],
      ['sealWithPrefix prefix', (bad) => loose(siv.sealWithPrefix.bind(siv))(bad, [], bytes)],
      ['open sealed', (bad) => loose(siv.open.bind(siv))([], bad)],
      ['open associatedData', (bad) => loose(siv.open.bind(siv))(bad, sealed)],
      ['open associatedData[0]', (bad) => loose(siv.open.bind(siv))([bad], sealed)],
      ['cmac', (bad) => loose(siv.cmac.bind(siv))(bad)],
      ['aesSivOpen', (bad) => loose(aesSivOpen)(topicKey, [], bad)],
      ['bytesEqual a', (bad) => loose(bytesEqual)(bad, bytes)],
      ['bytesEqual both', (bad) => loose(bytesEqual)(bad, bad)],
      ['concatBytes', (bad) => loose(concatBytes)(bytes, bad)],
      ['isAllZero', (bad) => loose(isAllZero)(bad)],
      ['ed25519Verify key', (bad) => loose(ed25519Verify)(bad, bytes, new Uint8Array(64))],
      ['ed25519Verify message', (bad) => loose(ed25519Verify)(publicKey, bad, new Uint8Array(64))],
      ['ed25519Verify signature', (bad) => loose(ed25519Verify)(publicKey, bytes, bad)],
      ['ed25519Sign key', (bad) => loose(ed25519Sign)(bad, bytes)],
      ['ed25519Sign message', (bad) => loose(ed25519Sign)(signingKey, bad)],
    ];
    fc.assert(
      fc.property(
        fc.anything().filter((v) => !(v instanceof Uint8Array)),
        fc.constantFrom(...calls),
        (bad, [what, call]) => {
          // An array is the right type for the associated data itself; its elements are not.
          if (Array.isArray(bad) && / associatedData$/.test(what) && bad.length === 0) return;
          const result = resultOrCode(() => call(bad), [E4ErrorCode.InvalidArgument]);
          assert.ok(result instanceof E4Error, `${what}: ${typeof bad} gave a result`);
        },
      ),
      { numRuns: 600 },
    );
  });

  void it('readInt64LE: any offset reads 8 bytes inside or is InvalidArgument', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ maxLength: 40 }),
        fc.oneof(fc.integer({ min: -3, max: 45 }), fc.double()),
        (bytes, offset) => {
          const result = resultOrCode(
            () => readInt64LE(bytes, offset),
            [E4ErrorCode.InvalidArgument],
          );
          const inside = Number.isInteger(offset) && offset >= 0 && offset + 8 <= bytes.length;
          assert.equal(typeof result === 'bigint', inside, `offset ${offset} of ${bytes.length}`);
        },
      ),
      { numRuns: 300 },
    );
  });
});

/** The topic hash of an encoded RemoveTopic command. */
function parseCommandTopic(command: Uint8Array): Uint8Array {
  const parsed = parseCommand(command);
  assert.equal(parsed.type, 'RemoveTopic');
  return parsed.topicHash;
}

// ---------------------------------------------------------------------------------------------
// decodeClientState

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/** Every path (list of keys/indices) in a JSON value, the root included. */
function paths(value: Json, prefix: (string | number)[] = []): (string | number)[][] {
  const out: (string | number)[][] = [prefix];
  if (Array.isArray(value)) value.forEach((v, i) => out.push(...paths(v, [...prefix, i])));
  else if (value !== null && typeof value === 'object') {
    for (const [k, v] of Object.entries(value)) out.push(...paths(v, [...prefix, k]));
  }
  return out;
}

/** A copy of `root` with the value at `path` replaced (or deleted when `replacement` is undefined). */
function edit(root: Json, path: readonly (string | number)[], replacement: Json | undefined): Json {
  const copy = JSON.parse(JSON.stringify(root)) as Json;
  if (path.length === 0) return replacement ?? null;
  let node: Json = copy;
  for (const key of path.slice(0, -1)) {
    node = (node as Record<string, Json>)[key] ?? null;
  }
  const last = path.at(-1) ?? '';
  const container = node as Record<string | number, Json>;
  if (replacement === undefined) {
    if (Array.isArray(node)) node.splice(Number(last), 1);
    else Reflect.deleteProperty(container, last);
  } else {
    container[last] = replacement;
  }
  return copy;
}

type JsonEdit =
  | { readonly kind: 'delete' }
  | { readonly kind: 'replace'; readonly value: Json }
  | { readonly kind: 'bytes'; readonly bytes: Uint8Array }
  | { readonly kind: 'addKey'; readonly key: string; readonly value: Json };

const jsonValue = fc.jsonValue({ maxDepth: 2 }) as fc.Arbitrary<Json>;
const jsonEditArb: fc.Arbitrary<JsonEdit> = fc.oneof(
  fc.record({ kind: fc.constant('delete' as const) }),
  fc.record({ kind: fc.constant('replace' as const), value: jsonValue }),
  fc.record({
    kind: fc.constant('bytes' as const),
    bytes: fc.oneof(
      fc.uint8Array({ maxLength: 70 }),
      fc.constantFrom(16, 32, 40, 64).chain((n) => fc.uint8Array({ minLength: n, maxLength: n })),
    ),
  }),
  fc.record({
    kind: fc.constant('addKey' as const),
    key: fc.oneof(
      fc.string({ maxLength: 40 }),
      fc.constant('00'.repeat(16)),
      fc.constant('__proto__'),
    ),
    value: jsonValue,
  }),
);

function applyJsonEdit(root: Json, pick: number, e: JsonEdit): Json {
  const all = paths(root);
  const path = all[pick % all.length] ?? [];
  switch (e.kind) {
    case 'delete':
      return edit(root, path, undefined);
    case 'replace':
      return edit(root, path, e.value);
    case 'bytes':
      return edit(root, path, Buffer.from(e.bytes).toString('base64'));
    case 'addKey': {
      const copy = JSON.parse(JSON.stringify(root)) as Json;
      let node: Json = copy;
      for (const key of path) node = (node as Record<string, Json>)[key] ?? null;
      if (node !== null && typeof node === 'object' && !Array.isArray(node)) {
        Object.defineProperty(node, e.key, { value: e.value, enumerable: true, writable: true });
      }
      return copy;
    }
  }
}

/** Decodes, then checks a decoded state is stable through encode/decode. */
function checkDecode(text: string): void {
  const result = resultOrE4Error(() => decodeClientState(text));
  if (result instanceof E4Error) {
    assert.equal(result.code, E4ErrorCode.InvalidState);
    return;
  }
  assert.deepEqual(decodeClientState(encodeClientState(result)), result);
}

void describe('fuzz: decodeClientState', () => {
  void it('arbitrary strings and arbitrary JSON', () => {
    const texts = [
      fc.string({ maxLength: 300 }),
      fc.string({ unit: codePointChar(true), maxLength: 100 }),
      fc.json({ maxDepth: 3 }),
    ];
    for (const arb of texts) fc.assert(fc.property(arb, checkDecode), { numRuns: 150 });
  });

  void it('mutated valid states (SK, PK, PK mid-rotation): structure edits and text edits', async () => {
    // A PK state during the device's own key rotation: one more field, the pending key.
    const pending = ed25519KeyFromSeed(new Uint8Array(32).fill(0x72));
    const pkRotating = `${JSON.stringify({
      ...(JSON.parse(pk.saved) as Record<string, Json>),
      PendingPrivateKey: Buffer.from(pending).toString('base64'),
    })}\n`;
    const saved = [sk.saved, pk.saved, pkRotating];
    const bases = saved.map((s) => JSON.parse(s) as Json);
    for (const text of saved) checkDecode(text); // each decodes as is
    const rotating = decodeClientState(pkRotating).keyMaterial;
    assert.ok(rotating.mode === 'public-key' && rotating.pendingPrivateKey !== undefined);
    fc.assert(
      fc.property(
        fc.nat(),
        fc.array(fc.tuple(fc.nat(), jsonEditArb), { minLength: 1, maxLength: 3 }),
        (pick, edits) => {
          let doc = bases[pick % bases.length] ?? null;
          for (const [where, e] of edits) doc = applyJsonEdit(doc, where, e);
          checkDecode(JSON.stringify(doc));
        },
      ),
      { numRuns: 500 },
    );
    const encoder = new TextEncoder();
    const decoder = new TextDecoder();
    fc.assert(
      fc.property(
        fc.constantFrom(...saved),
        fc.array(mutationArb, { minLength: 1, maxLength: 3 }),
        (text, mutations) => {
          let bytes: Uint8Array = encoder.encode(text);
          for (const m of mutations) bytes = mutate(bytes, m);
          checkDecode(decoder.decode(new Uint8Array(bytes)));
        },
      ),
      { numRuns: 400 },
    );
    // E4Client.load on mutated states: a client or InvalidState.
    await fc.assert(
      fc.asyncProperty(fc.nat(), fc.tuple(fc.nat(), jsonEditArb), async (pick, [where, e]) => {
        const doc = applyJsonEdit(bases[pick % bases.length] ?? null, where, e);
        const result = await resultOrE4ErrorAsync(
          E4Client.load(new MemoryClientStore(JSON.stringify(doc)), { clock }),
        );
        if (result instanceof E4Error) assert.equal(result.code, E4ErrorCode.InvalidState);
        else assert.equal(result.id.length, 16);
      }),
      { numRuns: 150 },
    );
  });

  void it('the mutated fixtures hold a current key, a transition key and a peer key', () => {
    const state = decodeClientState(pk.saved);
    assert.equal(state.topicKeys.size, 2);
    assert.ok(state.keyMaterial.mode === 'public-key');
    assert.deepEqual([...state.keyMaterial.pubKeys.keys()], [toHex(peer.id)]);
  });
});
