// The eight C2 commands: build/parse round trips, the exact lengths, unknown bytes, the
// builders' validation, and PK-only commands refused by an SK client.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import {
  applyCommand,
  clientIdFromName,
  cmdRemovePubKey,
  cmdRemoveTopic,
  cmdResetPubKeys,
  cmdResetTopics,
  cmdSetC2Key,
  cmdSetIdKey,
  cmdSetPubKey,
  cmdSetTopicKey,
  CommandCode,
  commandKeyForClient,
  decodeClientState,
  E4Client,
  E4Error,
  E4ErrorCode,
  encodeClientState,
  encodeCommand,
  ed25519KeyFromSeed,
  ed25519PublicKey,
  parseCommand,
  PK_ONLY_COMMANDS,
  protectCommand,
  randomCurve25519KeyPair,
  readInt64LE,
  referenceMessages,
  topicHash,
  unprotectSymKey,
  type Command,
  type CommandType,
} from '../index.ts';
import { assertBytes, codePointChar, fixedClock, rejectsE4, throwsE4 } from './support.ts';

const bytesOf = (length: number): fc.Arbitrary<Uint8Array> =>
  fc.uint8Array({ minLength: length, maxLength: length });
const nonZero = (length: number): fc.Arbitrary<Uint8Array> =>
  bytesOf(length).filter((b) => b.some((v) => v !== 0));

/** Every valid argument length of each command. */
const VALID_ARG_LENGTHS: Readonly<Record<CommandType, readonly number[]>> = {
  RemoveTopic: [16],
  ResetTopics: [0],
  SetIDKey: [32, 64],
  SetTopicKey: [48],
  RemovePubKey: [16],
  ResetPubKeys: [0],
  SetPubKey: [48],
  SetC2Key: [32],
};

const COMMAND_TYPES = Object.keys(CommandCode) as CommandType[];

const commandArb: fc.Arbitrary<Command> = fc.oneof(
  fc.record({ type: fc.constant('RemoveTopic' as const), topicHash: bytesOf(16) }),
  fc.record({ type: fc.constant('ResetTopics' as const) }),
  fc.record({ type: fc.constant('SetIDKey' as const), key: fc.oneof(bytesOf(32), bytesOf(64)) }),
  fc.record({
    type: fc.constant('SetTopicKey' as const),
    key: bytesOf(32),
    topicHash: bytesOf(16),
  }),
  fc.record({ type: fc.constant('RemovePubKey' as const), id: bytesOf(16) }),
  fc.record({ type: fc.constant('ResetPubKeys' as const) }),
  fc.record({ type: fc.constant('SetPubKey' as const), publicKey: bytesOf(32), id: bytesOf(16) }),
  fc.record({ type: fc.constant('SetC2Key' as const), publicKey: bytesOf(32) }),
);

/** The command as plain hex fields, to compare whatever the byte-array class. */
function plain(command: Command): Record<string, string> {
  return Object.fromEntries(
    Object.entries(command).map(([k, v]) => [
      k,
      v instanceof Uint8Array ? Buffer.from(v).toString('hex') : String(v),
    ]),
  );
}

/** Names and topics within the reference limits (1..255 and 1..512 UTF-8 bytes). */
const nameArb = fc
  .string({ unit: codePointChar(), minLength: 1, maxLength: 60 })
  .filter((s) => Buffer.byteLength(s) <= 255);
const topicArb = fc
  .string({ unit: codePointChar(), minLength: 1, maxLength: 120 })
  .filter((s) => Buffer.byteLength(s) <= 512);

void describe('command encoding', () => {
  void it('parse(encode(c)) = c for every command type with random arguments', () => {
    fc.assert(
      fc.property(commandArb, (command) => {
        const encoded = encodeCommand(command);
        assert.equal(encoded[0], CommandCode[command.type]);
        const argLength = Object.values(command).reduce<number>(
          (n, v) => n + (v instanceof Uint8Array ? v.length : 0),
          0,
        );
        assert.equal(encoded.length, 1 + argLength);
        assert.deepEqual(plain(parseCommand(encoded)), plain(command));
      }),
      { numRuns: 300 },
    );
  });

  void it('uses the reference argument order: key || topicHash and publicKey || id', () => {
    const key = new Uint8Array(32).fill(0xaa);
    const hash = new Uint8Array(16).fill(0xbb);
    assertBytes(
      encodeCommand({ type: 'SetTopicKey', key, topicHash: hash }),
      Uint8Array.of(3, ...key, ...hash),
    );
    assertBytes(
      encodeCommand({ type: 'SetPubKey', publicKey: key, id: hash }),
      Uint8Array.of(6, ...key, ...hash),
    );
  });

  void it('the command bytes are 0..7 in e4go order', () => {
    assert.deepEqual(CommandCode, {
      RemoveTopic: 0,
      ResetTopics: 1,
      SetIDKey: 2,
      SetTopicKey: 3,
      RemovePubKey: 4,
      ResetPubKeys: 5,
      SetPubKey: 6,
      SetC2Key: 7,
    });
    assertBytes(cmdResetTopics(), Uint8Array.of(1));
    assertBytes(cmdResetPubKeys(), Uint8Array.of(5));
  });

  void it('the builders encode what parseCommand reads back', () => {
    fc.assert(
      fc.property(nonZero(32), topicArb, nameArb, (key, topic, name) => {
        assert.deepEqual(plain(parseCommand(cmdSetTopicKey(key, topic))), {
          type: 'SetTopicKey',
          key: Buffer.from(key).toString('hex'),
          topicHash: Buffer.from(topicHash(topic)).toString('hex'),
        });
        assert.deepEqual(plain(parseCommand(cmdRemoveTopic(topic))), {
          type: 'RemoveTopic',
          topicHash: Buffer.from(topicHash(topic)).toString('hex'),
        });
        const id = Buffer.from(clientIdFromName(name)).toString('hex');
        assert.deepEqual(plain(parseCommand(cmdRemovePubKey(name))), { type: 'RemovePubKey', id });
        assert.deepEqual(plain(parseCommand(cmdSetPubKey(key, name))), {
          type: 'SetPubKey',
          publicKey: Buffer.from(key).toString('hex'),
          id,
        });
        assert.deepEqual(plain(parseCommand(cmdSetC2Key(key))), {
          type: 'SetC2Key',
          publicKey: Buffer.from(key).toString('hex'),
        });
        assert.deepEqual(plain(parseCommand(cmdSetIdKey(key))), {
          type: 'SetIDKey',
          key: Buffer.from(key).toString('hex'),
        });
      }),
      { numRuns: 60 },
    );
    const goKey = ed25519KeyFromSeed(new Uint8Array(32).fill(1));
    const parsed = parseCommand(cmdSetIdKey(goKey));
    assert.equal(parsed.type, 'SetIDKey');
    assertBytes(parsed.key, goKey);
  });
});

void describe('command parsing', () => {
  void it('refuses every wrong length of every command with InvalidCommandLength', () => {
    for (const type of COMMAND_TYPES) {
      const valid = VALID_ARG_LENGTHS[type];
      for (let length = 0; length <= 130; length++) {
        const bytes = new Uint8Array(1 + length).fill(0x11);
        bytes[0] = CommandCode[type];
        if (valid.includes(length)) {
          assert.equal(parseCommand(bytes).type, type);
        } else {
          throwsE4(
            () => parseCommand(bytes),
            E4ErrorCode.InvalidCommandLength,
            `${type} ${length}`,
          );
        }
      }
    }
  });

  void it('encodeCommand refuses arguments of the wrong length', () => {
    const b = (n: number): Uint8Array => new Uint8Array(n).fill(1);
    const bad: Command[] = [
      { type: 'RemoveTopic', topicHash: b(15) },
      { type: 'SetIDKey', key: b(33) },
      { type: 'SetIDKey', key: b(0) },
      { type: 'SetTopicKey', key: b(32), topicHash: b(17) },
      { type: 'SetTopicKey', key: b(31), topicHash: b(16) },
      { type: 'RemovePubKey', id: b(32) },
      { type: 'SetPubKey', publicKey: b(32), id: b(15) },
      { type: 'SetC2Key', publicKey: b(64) },
    ];
    for (const command of bad) {
      throwsE4(() => encodeCommand(command), E4ErrorCode.InvalidCommandLength, command.type);
    }
  });

  void it('empty input and every unknown command byte are InvalidCommand', () => {
    const empty = throwsE4(() => parseCommand(new Uint8Array(0)), E4ErrorCode.InvalidCommand);
    assert.equal(empty.message, referenceMessages.InvalidCommand);
    for (let code = 8; code <= 255; code++) {
      for (const length of [0, 16, 32, 48, 64]) {
        const bytes = new Uint8Array(1 + length);
        bytes[0] = code;
        throwsE4(() => parseCommand(bytes), E4ErrorCode.InvalidCommand, `byte ${code}`);
      }
    }
  });

  void it('random bytes parse to a command of a valid length or throw a command error', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 80 }), (bytes) => {
        let parsed: Command;
        try {
          parsed = parseCommand(bytes);
        } catch (err) {
          assert.ok(err instanceof E4Error, 'only E4Errors');
          const known = bytes.length > 0 && (bytes[0] ?? 0xff) < 8;
          assert.equal(err.code, known ? 'InvalidCommandLength' : 'InvalidCommand');
          return;
        }
        assert.equal(CommandCode[parsed.type], bytes[0]);
        assert.ok(VALID_ARG_LENGTHS[parsed.type].includes(bytes.length - 1));
        assertBytes(encodeCommand(parsed), bytes);
      }),
      { numRuns: 300 },
    );
  });
});

void describe('command builders validation', () => {
  const key = new Uint8Array(32).fill(7);

  void it('cmdSetTopicKey refuses zero or mis-sized keys and empty or long topics', () => {
    throwsE4(() => cmdSetTopicKey(new Uint8Array(32), 't'), E4ErrorCode.InvalidKey);
    throwsE4(() => cmdSetTopicKey(new Uint8Array(31).fill(1), 't'), E4ErrorCode.InvalidKey);
    throwsE4(() => cmdSetTopicKey(new Uint8Array(33).fill(1), 't'), E4ErrorCode.InvalidKey);
    throwsE4(() => cmdSetTopicKey(key, ''), E4ErrorCode.InvalidTopic);
    throwsE4(() => cmdSetTopicKey(key, 'x'.repeat(513)), E4ErrorCode.InvalidTopic);
    // Topic length is counted in UTF-8 bytes: 256 × 'é' is 512 bytes, 257 × 'é' is 514.
    assert.equal(cmdSetTopicKey(key, 'é'.repeat(256)).length, 49);
    throwsE4(() => cmdSetTopicKey(key, 'é'.repeat(257)), E4ErrorCode.InvalidTopic);
    assert.equal(cmdSetTopicKey(key, 'x'.repeat(512)).length, 49);
  });

  void it('cmdRemoveTopic refuses empty and over-long topics', () => {
    throwsE4(() => cmdRemoveTopic(''), E4ErrorCode.InvalidTopic);
    throwsE4(() => cmdRemoveTopic('y'.repeat(513)), E4ErrorCode.InvalidTopic);
    assert.equal(cmdRemoveTopic('y'.repeat(512)).length, 17);
  });

  void it('cmdSetC2Key refuses all zeros and other lengths', () => {
    throwsE4(() => cmdSetC2Key(new Uint8Array(32)), E4ErrorCode.InvalidKey);
    throwsE4(() => cmdSetC2Key(new Uint8Array(31).fill(1)), E4ErrorCode.InvalidKey);
    throwsE4(() => cmdSetC2Key(new Uint8Array(33).fill(1)), E4ErrorCode.InvalidKey);
    assertBytes(cmdSetC2Key(key), Uint8Array.of(7, ...key));
  });

  void it('cmdSetPubKey refuses zero or mis-sized keys and invalid names', () => {
    throwsE4(() => cmdSetPubKey(new Uint8Array(32), 'dev'), E4ErrorCode.InvalidKey);
    throwsE4(() => cmdSetPubKey(new Uint8Array(64).fill(1), 'dev'), E4ErrorCode.InvalidKey);
    throwsE4(() => cmdSetPubKey(key, ''), E4ErrorCode.InvalidName);
    throwsE4(() => cmdSetPubKey(key, 'n'.repeat(256)), E4ErrorCode.InvalidName);
    throwsE4(() => cmdSetPubKey(key, 'bad\uD800name'), E4ErrorCode.InvalidName);
    assert.equal(cmdSetPubKey(key, 'n'.repeat(255)).length, 49);
  });

  void it('cmdRemovePubKey refuses invalid names', () => {
    throwsE4(() => cmdRemovePubKey(''), E4ErrorCode.InvalidName);
    throwsE4(() => cmdRemovePubKey('€'.repeat(86)), E4ErrorCode.InvalidName); // 258 bytes
    throwsE4(() => cmdRemovePubKey('\uDC00'), E4ErrorCode.InvalidName);
    assert.equal(cmdRemovePubKey('€'.repeat(85)).length, 17); // 255 bytes
  });

  void it('cmdSetIdKey accepts 32 or 64 bytes only', () => {
    for (const length of [0, 16, 31, 33, 63, 65]) {
      throwsE4(() => cmdSetIdKey(new Uint8Array(length).fill(1)), E4ErrorCode.InvalidCommandLength);
    }
    assert.equal(cmdSetIdKey(ed25519KeyFromSeed(new Uint8Array(32).fill(1))).length, 65);
    assert.equal(cmdSetIdKey(new Uint8Array(32).fill(1)).length, 33);
  });

  void it('cmdSetIdKey refuses an Ed25519 key whose halves do not belong together', async () => {
    // The public half of another seed: a device refuses it (it could sign nothing anyone
    // verifies), so the command could only be lost.
    const goKey = ed25519KeyFromSeed(new Uint8Array(32).fill(1));
    goKey.set(ed25519PublicKey(ed25519KeyFromSeed(new Uint8Array(32).fill(2))), 32);
    const err = throwsE4(() => cmdSetIdKey(goKey), E4ErrorCode.InvalidKey);
    assert.equal(err.message, 'invalid private key, public half does not match the seed');
    // One bit off in the public half is enough.
    const flipped = ed25519KeyFromSeed(new Uint8Array(32).fill(3));
    flipped[40] = (flipped[40] ?? 0) ^ 1;
    throwsE4(() => cmdSetIdKey(flipped), E4ErrorCode.InvalidKey);
    // What the builder refuses, a PK client refuses: built by hand, the command is InvalidKey.
    const clock = fixedClock(1_700_000_000_000);
    const c2 = randomCurve25519KeyPair();
    const edKey = ed25519KeyFromSeed(new Uint8Array(32).fill(4));
    const client = await E4Client.createPublicKey(
      { name: 'mismatched-id-key' },
      { privateKey: edKey },
      c2.publicKey,
      { clock },
    );
    const raw = encodeCommand({ type: 'SetIDKey', key: goKey });
    await rejectsE4(
      client.unprotect(
        protectCommand(raw, commandKeyForClient(c2.privateKey, ed25519PublicKey(edKey)), clock),
        client.receivingTopic,
      ),
      E4ErrorCode.InvalidKey,
    );
  });

  void it('cmdSetIdKey refuses all-zero keys, which every client refuses to apply', async () => {
    let err = throwsE4(() => cmdSetIdKey(new Uint8Array(32)), E4ErrorCode.InvalidKey);
    assert.equal(err.message, 'invalid symmetric key, all zeros');
    err = throwsE4(() => cmdSetIdKey(new Uint8Array(64)), E4ErrorCode.InvalidKey);
    assert.equal(err.message, 'invalid private key, all zeros');
    // What the builder refuses, a device refuses (the reference vector 'SetIDKey with an
    // all-zero key: rejected'): built by hand, the command is InvalidKey on the client.
    const idKey = new Uint8Array(32).fill(3);
    const clock = fixedClock(1_700_000_000_000);
    const client = await E4Client.createSymmetric(
      { name: 'zero-id-key' },
      { key: idKey },
      { clock },
    );
    const raw = encodeCommand({ type: 'SetIDKey', key: new Uint8Array(32) });
    await rejectsE4(
      client.unprotect(protectCommand(raw, idKey, clock), client.receivingTopic),
      E4ErrorCode.InvalidKey,
    );
  });
});

void describe('protectCommand', () => {
  void it('is an SK message under the command key, stamped with the clock', () => {
    fc.assert(
      fc.property(commandArb, nonZero(32), fc.integer({ min: 1e12, max: 4e12 }), (c, k, now) => {
        const clock = fixedClock(now);
        const encoded = encodeCommand(c);
        const message = protectCommand(encoded, k, clock);
        assert.equal(readInt64LE(message), BigInt(Math.floor(now / 1000)));
        assertBytes(unprotectSymKey(message, k, clock), encoded);
      }),
      { numRuns: 40 },
    );
  });
});

void describe('PK-only commands', () => {
  void it('PK_ONLY_COMMANDS is exactly the four public-key commands', () => {
    assert.deepEqual([...PK_ONLY_COMMANDS].sort(), [
      'RemovePubKey',
      'ResetPubKeys',
      'SetC2Key',
      'SetPubKey',
    ]);
  });

  void it('an SK client refuses each of them with UnsupportedOperation and keeps its state', async () => {
    const clock = fixedClock(1_700_000_000_000);
    const clientKey = new Uint8Array(32).fill(0x21);
    const client = await E4Client.createSymmetric(
      { name: 'sk-device' },
      { key: clientKey },
      { clock },
    );
    const edPub = ed25519PublicKey(ed25519KeyFromSeed(new Uint8Array(32).fill(2)));
    const commands = [
      cmdSetPubKey(edPub, 'peer'),
      cmdRemovePubKey('peer'),
      cmdResetPubKeys(),
      cmdSetC2Key(randomCurve25519KeyPair().publicKey),
    ];
    for (const command of commands) {
      const before = client.state;
      const message = protectCommand(command, clientKey, clock);
      const e = await rejectsE4(
        client.unprotect(message, client.receivingTopic),
        E4ErrorCode.UnsupportedOperation,
      );
      assert.equal(e.message, referenceMessages.UnsupportedOperation);
      assert.equal(client.state, before);
      // The same state refuses it through the pure transition too.
      throwsE4(
        () => applyCommand(before, parseCommand(command), 0n, () => undefined),
        E4ErrorCode.UnsupportedOperation,
      );
    }
    // A command valid in SK mode still works afterwards.
    const result = await client.unprotect(
      protectCommand(cmdSetTopicKey(new Uint8Array(32).fill(3), 'room'), clientKey, clock),
      client.receivingTopic,
    );
    assert.equal(result.kind, 'command');
    assert.equal(client.state.topicKeys.size, 1);
  });
});

void describe('applyCommand, the pure transition', () => {
  void it('checks new PK keys by default: a low-order C2 key or a mismatched Go key is refused', async () => {
    const c2 = randomCurve25519KeyPair();
    const device = await E4Client.createPublicKey(
      { name: 'pure-transition' },
      { privateKey: ed25519KeyFromSeed(new Uint8Array(32).fill(5)) },
      c2.publicKey,
    );
    const before = device.state;
    // u = 1 is a low-order point: every X25519 with it is all zeros, so no command key exists.
    const lowOrder = new Uint8Array(32);
    lowOrder[0] = 1;
    const a = ed25519KeyFromSeed(new Uint8Array(32).fill(1));
    const b = ed25519KeyFromSeed(new Uint8Array(32).fill(2));
    const mismatched = new Uint8Array([...a.subarray(0, 32), ...b.subarray(32)]);
    // Built by hand: cmdSetIdKey refuses the mismatched key itself.
    const setMismatched = encodeCommand({ type: 'SetIDKey', key: mismatched });
    for (const command of [cmdSetC2Key(lowOrder), setMismatched]) {
      throwsE4(() => applyCommand(before, parseCommand(command), 0n), E4ErrorCode.InvalidKey);
    }
    assert.equal(device.state, before);
    // A valid key is adopted.
    const next = applyCommand(before, parseCommand(cmdSetIdKey(a)), 0n);
    assert.ok(next.keyMaterial.mode === 'public-key');
    assertBytes(next.keyMaterial.privateKey, a);
  });

  void it('holds a hand-built command to the parsed lengths: its state would never load', async () => {
    const c2 = randomCurve25519KeyPair();
    const device = await E4Client.createPublicKey(
      { name: 'hand-built' },
      { privateKey: ed25519KeyFromSeed(new Uint8Array(32).fill(6)) },
      c2.publicKey,
    );
    const key = new Uint8Array(32).fill(8);
    const short = new Uint8Array(5).fill(1);
    const handBuilt: Command[] = [
      { type: 'SetTopicKey', key, topicHash: short },
      { type: 'RemoveTopic', topicHash: short },
      { type: 'SetPubKey', publicKey: ed25519PublicKey(ed25519KeyFromSeed(key)), id: short },
      { type: 'RemovePubKey', id: new Uint8Array(17) },
      { type: 'SetTopicKey', key: new Uint8Array(31).fill(1), topicHash: topicHash('t') },
    ];
    for (const command of handBuilt) {
      throwsE4(
        () => applyCommand(device.state, command, 0n),
        E4ErrorCode.InvalidCommandLength,
        command.type,
      );
    }
    const unknown = { type: 'constructor' } as unknown as Command;
    throwsE4(() => applyCommand(device.state, unknown, 0n), E4ErrorCode.InvalidCommand);
    // The same commands with the right lengths apply, and the state they make loads back.
    const next = applyCommand(
      device.state,
      { type: 'SetTopicKey', key, topicHash: topicHash('t') },
      0n,
    );
    assert.deepEqual(decodeClientState(encodeClientState(next)).topicKeys, next.topicKeys);
  });
});
