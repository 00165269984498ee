// What a device program can get wrong that the TypeScript types do not stop: plain JavaScript
// values of the wrong type, names and topics without a UTF-8 form, messages larger than MQTT
// carries, and state files that e4go would not write. Each is a typed E4Error, never a bare
// TypeError or RangeError, and never silently wrong bytes.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { inspect } from 'node:util';
import {
  AesSivKey,
  appliedReceipt,
  applyCommand,
  buildReceipt,
  bytesEqual,
  commandId,
  concatBytes,
  deriveSymKey,
  ed25519Sign,
  ed25519Verify,
  isAllZero,
  unprotectPubKey,
  writeUint64LE,
  deviceIdFromReceiptTopic,
  encodeCommand,
  fromHex,
  openReceipt,
  parseCommand,
  parseReceipt,
  cmdRemovePubKey,
  cmdRemoveTopic,
  cmdResetTopics,
  cmdSetTopicKey,
  clientIdFromName,
  commandKeyFromClient,
  currentTopicKeys,
  decodeClientState,
  E4Client,
  ed25519KeyFromSeed,
  ed25519PrivateToCurve25519,
  ed25519PublicKey,
  ed25519SigningKey,
  encodeClientState,
  MESSAGE_MAX_BYTES,
  protectCommand,
  protectSymKey,
  protectSymKeyAt,
  randomCurve25519KeyPair,
  randomEd25519Key,
  randomSymKey,
  readInt64LE,
  receiptSubject,
  SharedTopicCiphers,
  sha3256,
  toHex,
  topicHash,
  transitionSlotHash,
  unprotectSymKey,
  validateId,
  validateName,
  validateSymKey,
  validateTimestamp,
  validateTopic,
  x25519,
  x25519PublicKey,
  type Clock,
} from '../index.ts';
import { assertBytes, loose, rejectsE4, throwsE4 } from './support.ts';

async function deviceWithTopic(topic: string): Promise<E4Client> {
  const idKey = randomSymKey();
  const device = await E4Client.createSymmetric({ name: 'misuse' }, { key: idKey });
  await device.unprotect(
    protectCommand(cmdSetTopicKey(randomSymKey(), topic), idKey),
    device.receivingTopic,
  );
  return device;
}

void describe('plain JavaScript values of the wrong type', () => {
  void it('a string payload is refused (it was protected as zero bytes of its length)', async () => {
    const device = await deviceWithTopic('t');
    const err = throwsE4(
      () => loose(device.protectMessage.bind(device))('hello', 't'),
      'InvalidArgument',
    );
    assert.equal(err.message, 'payload must be a Uint8Array, got string');
    throwsE4(() => loose(protectSymKey)('hello', randomSymKey()), 'InvalidArgument');
    throwsE4(() => loose(device.unprotectMessage.bind(device))(undefined, 't'), 'InvalidArgument');
    throwsE4(() => loose(unprotectSymKey)(null, randomSymKey()), 'InvalidArgument');
    await rejectsE4(loose(device.unprotect.bind(device))('abc', 't'), 'InvalidArgument');
    await rejectsE4(
      loose(device.unprotect.bind(device))([1, 2, 3], device.receivingTopic),
      'InvalidArgument',
    );
    throwsE4(
      () => loose(device.protectMessage.bind(device))(new Uint8Array(1), 42),
      'InvalidArgument',
    );
  });

  void it('a missing or mistyped identity or secret is refused by name', async () => {
    const create = loose(E4Client.createSymmetric.bind(E4Client));
    const cases: Array<[unknown[], string]> = [
      [[null, { key: randomSymKey() }], 'identity must be an object, got null'],
      [[{ name: 'd' }, undefined], 'secret must be an object, got undefined'],
      [[{ name: 'd' }, {}], 'secret.password must be a string, got undefined'],
      [[{ name: 'd' }, { key: 'a'.repeat(32) }], 'secret.key must be a Uint8Array, got string'],
      [[{ name: 7 }, { key: randomSymKey() }], 'identity.name must be a string, got number'],
      [[{ id: [1, 2] }, { key: randomSymKey() }], 'identity.id must be a Uint8Array, got Array'],
      // Both: the password used to be ignored silently.
      [
        [{ name: 'd' }, { key: randomSymKey(), password: 'a long enough password' }],
        'secret must have either key or password, not both',
      ],
    ];
    for (const [args, message] of cases) {
      const err = await rejectsE4(create(...args), 'InvalidArgument', message);
      assert.equal(err.message, message);
    }
    const createPk = loose(E4Client.createPublicKey.bind(E4Client));
    await rejectsE4(
      createPk({ name: 'd' }, { privateKey: randomEd25519Key() }, 'c2'),
      'InvalidArgument',
    );
    await rejectsE4(
      createPk({ name: 'd' }, { privateKey: 'k' }, randomCurve25519KeyPair().publicKey),
      'InvalidArgument',
    );
    const both = await rejectsE4(
      createPk(
        { name: 'd' },
        { privateKey: randomEd25519Key(), password: 'a long enough password' },
        randomCurve25519KeyPair().publicKey,
      ),
      'InvalidArgument',
    );
    assert.equal(both.message, 'secret must have either privateKey or password, not both');
  });

  void it('validators, builders and byte helpers refuse a value of the wrong type by name', () => {
    const cases: Array<[string, () => unknown, string]> = [
      [
        'validateTopic',
        () => {
          loose(validateTopic)(42);
        },
        'topic must be a string, got number',
      ],
      ['cmdRemoveTopic', () => loose(cmdRemoveTopic)(undefined), 'topic must be a string'],
      ['cmdSetTopicKey', () => loose(cmdSetTopicKey)(randomSymKey(), null), 'topic must be'],
      [
        'validateName',
        () => {
          loose(validateName)(undefined);
        },
        'name must be a Uint8Array',
      ],
      ['cmdRemovePubKey', () => loose(cmdRemovePubKey)(7), 'name must be a Uint8Array'],
      ['sha3256', () => loose(sha3256)('abc'), 'data must be a Uint8Array, got string'],
      ['transitionSlotHash', () => loose(transitionSlotHash)([1]), 'data must be a Uint8Array'],
      ['readInt64LE', () => loose(readInt64LE)('12345678'), 'bytes must be a Uint8Array'],
    ];
    for (const [what, call, message] of cases) {
      const err = throwsE4(call, 'InvalidArgument', what);
      assert.ok(err.message.startsWith(message), `${what}: ${err.message}`);
    }
  });

  void it('hot-path entry points refuse a value of the wrong type by name', () => {
    // Strings were sealed as zero bytes of their length, compared equal, or "all zeros"; a
    // number timestamp or a missing lookup was a bare TypeError; raw key bytes given to verify
    // were `false`, as a forged signature is.
    const siv = new AesSivKey(randomSymKey());
    const sealed = siv.seal([], Uint8Array.of(1));
    const edKey = randomEd25519Key();
    const bytes = Uint8Array.of(1);
    const cases: Array<[string, () => unknown, string]> = [
      [
        'seal',
        () => loose(siv.seal.bind(siv))([], 'hello'),
        'plaintext must be a Uint8Array, got string',
      ],
      [
        'seal ad',
        () => loose(siv.seal.bind(siv))('ad', bytes),
        'associatedData must be an array of Uint8Array, got string',
      ],
      [
        'open ad',
        () => loose(siv.open.bind(siv))([bytes, 'x'], sealed),
        'associatedData[1] must be a Uint8Array, got string',
      ],
      [
        'open',
        () => loose(siv.open.bind(siv))([], undefined),
        'sealed must be a Uint8Array, got undefined',
      ],
      ['cmac', () => loose(siv.cmac.bind(siv))('abc'), 'message must be a Uint8Array, got string'],
      [
        'prefix',
        () => siv.sealWithPrefix(new Uint8Array(17), [], bytes),
        'an AES-SIV prefix is at most 16 bytes',
      ],
      ['bytesEqual', () => loose(bytesEqual)('abc', 'abc'), 'a must be a Uint8Array, got string'],
      ['isAllZero', () => loose(isAllZero)('abc'), 'bytes must be a Uint8Array, got string'],
      [
        'concatBytes',
        () => loose(concatBytes)(bytes, 'abc'),
        'part must be a Uint8Array, got string',
      ],
      ['writeUint64LE', () => loose(writeUint64LE)(5), 'value must be a bigint, got number'],
      [
        'protectSymKeyAt',
        () => loose(protectSymKeyAt)(bytes, randomSymKey(), 5),
        'timestampSeconds must be a bigint, got number',
      ],
      [
        'ed25519Verify',
        () => loose(ed25519Verify)(ed25519PublicKey(edKey), bytes, new Uint8Array(64)),
        'key must be a node:crypto KeyObject',
      ],
      [
        'ed25519Sign',
        () => loose(ed25519Sign)(ed25519SigningKey(edKey), 'abc'),
        'message must be a Uint8Array, got string',
      ],
      [
        'unprotectPubKey',
        () => loose(unprotectPubKey)(new Uint8Array(200), randomSymKey(), undefined),
        'lookupPubKey must be a function, got undefined',
      ],
      [
        'deriveSymKey',
        () => loose(deriveSymKey)(undefined),
        'password must be a Uint8Array, got undefined',
      ],
    ];
    for (const [what, call, message] of cases) {
      const err = throwsE4(call, 'InvalidArgument', what);
      assert.equal(err.message, message, what);
    }
  });

  void it('readInt64LE refuses to read past the end (it was a bare RangeError)', () => {
    for (const [length, offset] of [
      [7, 0],
      [8, 1],
      [48, 41],
      [8, -1],
      [16, 0.5],
      [16, Number.NaN],
    ] as const) {
      const err = throwsE4(
        () => readInt64LE(new Uint8Array(length), offset),
        'InvalidArgument',
        `${length} bytes, offset ${offset}`,
      );
      assert.match(err.message, /^no 8 bytes at offset /);
    }
    assert.equal(readInt64LE(Uint8Array.of(0, 1, 0, 0, 0, 0, 0, 0, 0), 1), 1n);
    assert.equal(readInt64LE(new Uint8Array(8).fill(0xff)), -1n);
  });
});

void describe('keys given as strings', () => {
  // node:crypto takes a string as the UTF-8 bytes of a key, and its TypeErrors quote the start of
  // a string argument: a hex seed or key would be used unchecked, or land in a log.
  const secret = 'a3f1c2d4e5b6a7980a1b2c3d4e5f6a7b';

  /** Asserts InvalidArgument, with neither the message nor any cause quoting the secret. */
  function refusedUnquoted(fn: () => unknown, what: string): void {
    const err = throwsE4(fn, 'InvalidArgument', what);
    for (let e: unknown = err; e instanceof Error; e = e.cause) {
      assert.ok(!e.message.includes(secret.slice(0, 8)), `${what}: ${e.message}`);
    }
  }

  void it('symmetric keys: refused, never used as their UTF-8 bytes', () => {
    refusedUnquoted(() => loose(protectSymKey)(new Uint8Array(1), secret), 'protectSymKey');
    refusedUnquoted(() => loose(protectCommand)(cmdResetTopics(), secret), 'protectCommand');
    refusedUnquoted(() => new AesSivKey(secret as unknown as Uint8Array), 'AesSivKey');
    refusedUnquoted(() => {
      loose(validateSymKey)(secret);
    }, 'validateSymKey');
    refusedUnquoted(() => {
      loose(validateId)(secret.slice(0, 16));
    }, 'validateId');
  });

  void it('Ed25519 and X25519 keys: refused, never quoted', () => {
    refusedUnquoted(() => loose(ed25519KeyFromSeed)(secret), 'ed25519KeyFromSeed');
    refusedUnquoted(() => loose(ed25519PublicKey)(secret + secret), 'ed25519PublicKey');
    refusedUnquoted(() => loose(ed25519SigningKey)(secret + secret), 'ed25519SigningKey');
    refusedUnquoted(() => loose(ed25519PrivateToCurve25519)(secret), 'ed25519PrivateToCurve25519');
    refusedUnquoted(() => loose(x25519PublicKey)(secret), 'x25519PublicKey');
    const c2Public = randomCurve25519KeyPair().publicKey;
    refusedUnquoted(() => loose(x25519)(secret, c2Public), 'x25519');
    refusedUnquoted(
      () => loose(commandKeyFromClient)(secret + secret, c2Public),
      'commandKeyFromClient',
    );
  });
});

void describe('clocks that do not read milliseconds', () => {
  // An RTC that is not set reads NaN: every comparison with NaN is false, so the timestamp window
  // accepted any message, however old (replays included). Other readings were bare RangeErrors.
  const unset: Clock = () => Number.NaN;
  const badClocks: Array<[string, Clock]> = [
    ['NaN', unset],
    ['Infinity', () => Number.POSITIVE_INFINITY],
    ['bigint', loose((): bigint => 1_700_000_000_000n) as unknown as Clock],
    ['Date', loose((): Date => new Date()) as unknown as Clock],
    // Not a clock at all: it was a bare TypeError ('clock is not a function').
    ['a number', 1_700_000_000_000 as unknown as Clock],
  ];

  void it('a 1970 message is refused, not accepted, when the clock reads NaN', () => {
    const key = randomSymKey();
    const ancient = protectSymKeyAt(new Uint8Array(3), key, 1000n);
    const err = throwsE4(() => unprotectSymKey(ancient, key, unset), 'InvalidArgument');
    assert.equal(
      err.message,
      'clock must return milliseconds since the Unix epoch as a finite number, got NaN',
    );
    throwsE4(() => {
      validateTimestamp(1000n, unset);
    }, 'InvalidArgument');
  });

  void it('every use of a bad clock is InvalidArgument, on both sides', async () => {
    for (const [what, clock] of badClocks) {
      const key = randomSymKey();
      throwsE4(() => protectSymKey(new Uint8Array(1), key, clock), 'InvalidArgument', what);
      throwsE4(
        () => protectCommand(cmdSetTopicKey(randomSymKey(), 't'), key, clock),
        'InvalidArgument',
        what,
      );
      const device = await E4Client.createSymmetric({ name: 'clock' }, { key }, { clock });
      await rejectsE4(
        device.unprotect(
          protectCommand(cmdSetTopicKey(randomSymKey(), 't'), key),
          device.receivingTopic,
        ),
        'InvalidArgument',
        what,
      );
      assert.equal(device.state.topicKeys.size, 0, what);
    }
  });
});

void describe('names and topics', () => {
  void it('a client name is checked as the C2 checks it', async () => {
    for (const name of ['', 'x'.repeat(256), '\uD800']) {
      await rejectsE4(
        E4Client.createSymmetric({ name }, { key: randomSymKey() }),
        'InvalidName',
        JSON.stringify(name.slice(0, 3)),
      );
    }
    await E4Client.createSymmetric({ name: 'x'.repeat(255) }, { key: randomSymKey() });
  });

  void it('a topic with a lone surrogate is refused: it would share the key of U+FFFD', async () => {
    throwsE4(() => {
      validateTopic('a/\uD800');
    }, 'InvalidTopic');
    throwsE4(() => cmdSetTopicKey(randomSymKey(), 'room/\uD800'), 'InvalidTopic');
    const device = await deviceWithTopic('room/\uFFFD');
    device.protectMessage(new Uint8Array(1), 'room/\uFFFD');
    throwsE4(() => device.protectMessage(new Uint8Array(1), 'room/\uDBFF'), 'InvalidTopic');
    const wire = device.protectMessage(new Uint8Array(1), 'room/\uFFFD');
    throwsE4(() => device.unprotectMessage(wire, 'room/\uD800'), 'InvalidTopic');
  });
});

void describe('hex', () => {
  void it('fromHex refuses text that is not hex with InvalidArgument, never quoting it', () => {
    const secret = 'ab'.repeat(15) + 'zz'; // a key mistyped in a configuration file
    for (const text of [secret, 'abc', '0x00', 'ab cd', '\uD800\uDC00', 'éé']) {
      const err = throwsE4(() => fromHex(text), 'InvalidArgument', JSON.stringify(text));
      assert.match(err.message, /^invalid hex string: /);
      assert.ok(!err.message.includes(text), 'the text is not quoted');
    }
    for (const value of [undefined, null, 42, Uint8Array.of(1)]) {
      throwsE4(() => loose(fromHex)(value), 'InvalidArgument', String(value));
    }
    assertBytes(fromHex('00fFaB'), Uint8Array.of(0, 0xff, 0xab));
    assert.equal(fromHex('').length, 0);
  });

  void it('toHex refuses a value that is not a Uint8Array with InvalidArgument', () => {
    for (const value of ['abc', undefined, null, new ArrayBuffer(2), [1, 2]]) {
      throwsE4(() => loose(toHex)(value), 'InvalidArgument', inspect(value));
    }
    assert.equal(toHex(Buffer.from([1, 0xab])), '01ab');
  });
});

void describe('sizes', () => {
  void it('a payload or message over MQTT packet size is PayloadTooLarge, not a RangeError', async () => {
    const device = await deviceWithTopic('t');
    const huge = new Uint8Array(MESSAGE_MAX_BYTES + 1);
    const err = throwsE4(() => device.protectMessage(huge, 't'), 'PayloadTooLarge');
    assert.match(err.message, /^payload of 268435456 bytes is larger than an MQTT packet/);
    throwsE4(() => device.unprotectMessage(huge, 't'), 'PayloadTooLarge');
    await rejectsE4(device.unprotect(huge, device.receivingTopic), 'PayloadTooLarge');
    throwsE4(() => protectSymKey(huge, randomSymKey()), 'PayloadTooLarge');
  });
});

void describe('state files e4go would not write', () => {
  async function savedState(): Promise<Record<string, unknown>> {
    const device = await deviceWithTopic('state/topic');
    return JSON.parse(encodeClientState(device.state)) as Record<string, unknown>;
  }

  void it('unpadded base64 is refused (e4go could not load it back)', async () => {
    const json = await savedState();
    json['ID'] = String(json['ID']).replace(/=+$/, '');
    throwsE4(() => decodeClientState(JSON.stringify(json)), 'InvalidState');
  });

  void it('an all-zero topic key is refused, as SetTopicKey refuses one', async () => {
    const json = await savedState();
    const keys = json['TopicKeys'] as Record<string, string>;
    const [hash] = Object.keys(keys);
    assert.ok(hash !== undefined);
    keys[hash] = Buffer.alloc(32).toString('base64');
    const err = throwsE4(() => decodeClientState(JSON.stringify(json)), 'InvalidState');
    assert.equal(err.message, `invalid client state: topic key ${hash} is all zeros`);
  });

  void it('a damaged map key is not quoted (it may be key base64)', async () => {
    const json = await savedState();
    const secretLooking = Buffer.from(randomSymKey()).toString('base64');
    json['TopicKeys'] = { [secretLooking]: Buffer.from(randomSymKey()).toString('base64') };
    const err = throwsE4(() => decodeClientState(JSON.stringify(json)), 'InvalidState');
    assert.ok(!err.message.includes(secretLooking.slice(0, 12)), err.message);
  });
});

void describe('commands and receipts from plain JavaScript', () => {
  const fields = {
    status: 'applied',
    commandId: new Uint8Array(16),
    commandTime: 5n,
    commandType: 'ResetTopics',
    subject: new Uint8Array(16),
  } as const;

  void it('parsers and encoders answer E4Errors, never TypeErrors or RangeErrors', () => {
    throwsE4(() => loose(parseCommand)(undefined), 'InvalidArgument');
    throwsE4(() => loose(encodeCommand)({ type: 'Bogus' }), 'InvalidCommand');
    throwsE4(() => loose(encodeCommand)({ type: 'constructor' }), 'InvalidCommand');
    throwsE4(() => loose(encodeCommand)({ type: 'RemoveTopic' }), 'InvalidArgument');
    throwsE4(() => loose(parseReceipt)(undefined), 'InvalidArgument');
    throwsE4(
      () => loose(openReceipt)('x'.repeat(68), new Uint8Array(16), randomSymKey()),
      'InvalidArgument',
    );
    throwsE4(() => loose(deviceIdFromReceiptTopic)(42), 'InvalidArgument');
    throwsE4(
      () => appliedReceipt(new Uint8Array(3), { type: 'ResetTopics' }),
      'TooShortCiphertext',
    );
    throwsE4(() => loose(buildReceipt)({ ...fields, commandTime: 5 }), 'InvalidArgument');
  });

  void it('the hash functions take strings and bytes, nothing else', () => {
    throwsE4(() => loose(topicHash)(42), 'InvalidArgument');
    throwsE4(() => loose(clientIdFromName)(undefined), 'InvalidArgument');
    assert.equal(clientIdFromName('d').length, 16);
  });

  void it('nothing is silently wrong: an unknown name is no RemoveTopic, a string no command id', async () => {
    // A missed lookup wrote 0x00: an applied RemoveTopic receipt.
    throwsE4(() => loose(buildReceipt)({ ...fields, commandType: 'Bogus' }), 'InvalidCommand');
    throwsE4(() => loose(buildReceipt)({ ...fields, status: 'done' }), 'InvalidCommand');
    // A string was hashed as its UTF-8 bytes: an id no receipt ever matches.
    throwsE4(() => loose(commandId)('wire bytes'), 'InvalidArgument');
    // applyCommand returned undefined as the next state.
    const device = await deviceWithTopic('t');
    throwsE4(() => loose(applyCommand)(device.state, { type: 'Bogus' }, 0n), 'InvalidCommand');
  });
});

void describe('states, commands and shared ciphers from plain JavaScript', () => {
  void it('encodeClientState refuses a mistyped state by field, never quoting a value', async () => {
    const device = await deviceWithTopic('state/topic');
    const state = device.state;
    const secretText = Buffer.from(randomSymKey()).toString('hex');
    const material = state.keyMaterial;
    const cases: Array<[unknown, string]> = [
      [undefined, 'state must be an object, got undefined'],
      [{}, 'state.id must be a Uint8Array, got undefined'],
      [{ ...state, id: toHex(state.id) }, 'state.id must be a Uint8Array, got string'],
      [{ ...state, receivingTopic: 7 }, 'state.receivingTopic must be a string, got number'],
      [{ ...state, topicKeys: {} }, 'state.topicKeys must be a Map of Uint8Array, got Object'],
      [
        { ...state, topicKeys: new Map([['00', secretText]]) },
        'state.topicKeys entry must be a Uint8Array, got string',
      ],
      [
        { ...state, topicKeys: new Map([[1, randomSymKey()]]) },
        'state.topicKeys key must be a string, got number',
      ],
      [{ ...state, keyMaterial: null }, 'state.keyMaterial must be an object, got null'],
      [
        { ...state, keyMaterial: { ...material, mode: 'sym' } },
        "state.keyMaterial.mode must be 'symmetric' or 'public-key'",
      ],
      [
        { ...state, keyMaterial: { mode: 'symmetric', key: secretText } },
        'state.keyMaterial.key must be a Uint8Array, got string',
      ],
      [
        {
          ...state,
          keyMaterial: { mode: 'public-key', privateKey: randomEd25519Key(), c2PublicKey: [] },
        },
        'state.keyMaterial.c2PublicKey must be a Uint8Array, got Array',
      ],
      [
        {
          ...state,
          keyMaterial: {
            mode: 'public-key',
            privateKey: randomEd25519Key(),
            c2PublicKey: randomSymKey(),
          },
        },
        'state.keyMaterial.pubKeys must be a Map of Uint8Array, got undefined',
      ],
    ];
    for (const [given, message] of cases) {
      const err = throwsE4(() => loose(encodeClientState)(given), 'InvalidArgument', message);
      assert.equal(err.message, message);
      assert.ok(!err.message.includes(secretText), 'no value is quoted');
    }
    // A well-typed state still round-trips.
    assert.equal(
      encodeClientState(decodeClientState(encodeClientState(state))),
      encodeClientState(state),
    );
  });

  void it('currentTopicKeys refuses a state without a Map of byte arrays', async () => {
    throwsE4(() => loose(currentTopicKeys)(undefined), 'InvalidArgument');
    const err = throwsE4(() => loose(currentTopicKeys)({}), 'InvalidArgument');
    assert.equal(err.message, 'state.topicKeys must be a Map of Uint8Array, got undefined');
    // A string's characters were taken as entries.
    throwsE4(() => loose(currentTopicKeys)({ topicKeys: 'abc' }), 'InvalidArgument');
    const device = await deviceWithTopic('current/topic');
    assert.deepEqual(
      [...currentTopicKeys(device.state).keys()],
      [toHex(topicHash('current/topic'))],
    );
  });

  void it('receiptSubject checks the command as encodeCommand does (`{}` had zeros)', () => {
    throwsE4(() => loose(receiptSubject)(undefined), 'InvalidArgument');
    throwsE4(() => loose(receiptSubject)({}), 'InvalidCommand');
    throwsE4(() => loose(receiptSubject)({ type: 'Bogus' }), 'InvalidCommand');
    // A missing subject was an empty array; a short one was returned as it was.
    throwsE4(() => loose(receiptSubject)({ type: 'RemoveTopic' }), 'InvalidArgument');
    throwsE4(
      () => receiptSubject({ type: 'RemoveTopic', topicHash: new Uint8Array(3) }),
      'InvalidCommandLength',
    );
    throwsE4(() => loose(encodeCommand)(null), 'InvalidArgument');
    const hash = topicHash('subject/topic');
    assertBytes(receiptSubject({ type: 'RemoveTopic', topicHash: hash }), hash);
    assertBytes(receiptSubject({ type: 'ResetTopics' }), new Uint8Array(16));
  });

  void it('SharedTopicCiphers takes byte keys only, and a client takes only a pool', async () => {
    const pool = new SharedTopicCiphers();
    const err = throwsE4(() => loose(pool.get.bind(pool))('a'.repeat(32)), 'InvalidArgument');
    assert.equal(err.message, 'topic key must be a Uint8Array, got string');
    throwsE4(() => loose(pool.get.bind(pool))(undefined), 'InvalidArgument');
    assert.equal(pool.size, 0, 'nothing was prepared');
    const bad = await rejectsE4(
      loose(E4Client.createSymmetric.bind(E4Client))(
        { name: 'misuse-pool' },
        { key: randomSymKey() },
        { sharedTopicCiphers: { get: () => undefined } },
      ),
      'InvalidArgument',
    );
    assert.equal(bad.message, 'sharedTopicCiphers must be a SharedTopicCiphers, got Object');
  });
});
