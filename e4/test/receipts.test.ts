// Delivery receipts (docs/protocol-extensions.md): topic, command id, the strict body codec,
// protection under the command key with domain separation, and the C2-side opening in both modes.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import {
  AesSivKey,
  appliedReceipt,
  buildReceipt,
  clientIdFromName,
  cmdRemovePubKey,
  cmdResetTopics,
  cmdSetC2Key,
  cmdSetIdKey,
  cmdSetPubKey,
  cmdSetTopicKey,
  CommandCode,
  commandId,
  commandKeyForClient,
  commandKeyFromClient,
  concatBytes,
  controlTopic,
  deviceIdFromReceiptTopic,
  E4Error,
  E4ErrorCode,
  ed25519PublicKey,
  openReceipt,
  parseCommand,
  parseReceipt,
  protectCommand,
  protectReceipt,
  protectReceiptAt,
  protectSymKeyAt,
  randomCurve25519KeyPair,
  randomEd25519Key,
  randomId,
  randomSymKey,
  RECEIPT_BODY_LEN,
  RECEIPT_LABEL,
  RECEIPT_LEN,
  RECEIPT_MAX_LEN,
  RECEIPT_NO_COMMAND,
  RECEIPT_TOPIC_PREFIX,
  RECEIPT_VERSION,
  receiptReason,
  ReceiptReasonCode,
  receiptReasonCode,
  receiptSubject,
  receiptTopic,
  rejectedReceipt,
  sha3256,
  toHex,
  topicHash,
  unprotectSymKey,
  type CommandType,
  type ReceiptFields,
} from '../index.ts';
import { assertBytes, fixedClock, flipBit, sequentialBytes, throwsE4 } from './support.ts';

/** 2023-11-14T22:13:20Z. */
const T0 = 1_700_000_000_000;
const clock = fixedClock(T0 + 250);
const NOW_S = BigInt(T0 / 1000);

const COMMAND_TYPES = Object.keys(CommandCode) as CommandType[];
const WITH_SUBJECT = new Set<CommandType>([
  'RemoveTopic',
  'SetTopicKey',
  'RemovePubKey',
  'SetPubKey',
]);

function applied(overrides: Partial<ReceiptFields> = {}): ReceiptFields {
  return {
    status: 'applied',
    commandId: sequentialBytes(16),
    commandTime: NOW_S,
    commandType: 'SetTopicKey',
    subject: topicHash('a/b'),
    ...overrides,
  } as ReceiptFields;
}

/** A valid body with byte `index` replaced. */
function bodyWith(index: number, value: number, base = buildReceipt(applied())): Uint8Array {
  const out = new Uint8Array(base);
  out[index] = value;
  return out;
}

void describe('receipts: topic', () => {
  void it('is e4/receipts/<hex id>, three levels, never a control topic', () => {
    const id = clientIdFromName('sensor-1');
    const topic = receiptTopic(id);
    assert.equal(topic, `e4/receipts/${toHex(id)}`);
    assert.equal(topic.length, 44);
    assert.equal(topic.split('/').length, 3);
    assert.notEqual(topic, controlTopic(id));
    assert.ok(!topic.startsWith(controlTopic(id)), 'not below the control topic either');
    assert.equal(controlTopic(id).split('/').length, 2);
    assertBytes(deviceIdFromReceiptTopic(topic), id);
    throwsE4(() => receiptTopic(new Uint8Array(15)), 'InvalidID');
  });

  void it('deviceIdFromReceiptTopic accepts only the exact form', () => {
    const hex = toHex(randomId());
    for (const bad of [
      controlTopic(randomId()),
      `e4/receipts/${hex.toUpperCase()}`,
      `e4/receipts/${hex}/x`,
      `e4/receipts/${hex.slice(1)}`,
      `e4/receipts/${hex}0`,
      `e4/receipts/`,
      `e4/receipts`,
      `E4/receipts/${hex}`,
      `/e4/receipts/${hex}`,
      `e4/receipts/+`,
      `e4/receipts/${hex.slice(0, 31)}g`,
      '',
    ]) {
      throwsE4(() => deviceIdFromReceiptTopic(bad), 'InvalidTopic', bad);
    }
    fc.assert(
      fc.property(fc.string({ maxLength: 60 }), (s) => {
        try {
          const id = deviceIdFromReceiptTopic(s);
          assert.equal(receiptTopic(id), s);
        } catch (err) {
          assert.ok(E4Error.is(err, E4ErrorCode.InvalidTopic));
        }
      }),
      { numRuns: 300 },
    );
    assert.equal(RECEIPT_TOPIC_PREFIX, 'e4/receipts/');
  });
});

void describe('receipts: command id and subject', () => {
  void it('commandId is SHA3-256 of the protected bytes, truncated to 16', () => {
    const wire = protectCommand(cmdResetTopics(), randomSymKey(), clock);
    assertBytes(commandId(wire), sha3256(wire).subarray(0, 16));
    assert.equal(commandId(wire).length, 16);
  });

  void it('each protection of the same command has its own id', () => {
    const key = randomSymKey();
    const command = cmdSetTopicKey(randomSymKey(), 'a/b');
    const first = protectSymKeyAt(command, key, NOW_S);
    const retry = protectSymKeyAt(command, key, NOW_S + 1n);
    assert.notEqual(toHex(commandId(first)), toHex(commandId(retry)));
    assertBytes(commandId(first), commandId(protectSymKeyAt(command, key, NOW_S)));
  });

  void it('the subject is the public 16-byte argument, zeros for commands without one', () => {
    const topicKey = randomSymKey();
    const peer = ed25519PublicKey(randomEd25519Key());
    const c2 = randomCurve25519KeyPair();
    const subjects: [Uint8Array, Uint8Array][] = [
      [cmdSetTopicKey(topicKey, 'a/b'), topicHash('a/b')],
      [cmdSetPubKey(peer, 'peer'), clientIdFromName('peer')],
      [cmdRemovePubKey('peer'), clientIdFromName('peer')],
      [cmdSetIdKey(randomSymKey()), new Uint8Array(16)],
      [cmdSetC2Key(c2.publicKey), new Uint8Array(16)],
      [cmdResetTopics(), new Uint8Array(16)],
    ];
    for (const [clear, expected] of subjects) {
      assertBytes(receiptSubject(parseCommand(clear)), expected);
    }
  });
});

void describe('receipts: body codec', () => {
  void it('builds the documented layout', () => {
    const fields = applied({ commandTime: 0x0102030405060708n });
    const body = buildReceipt(fields);
    assert.equal(body.length, RECEIPT_BODY_LEN);
    assert.equal(body[0], RECEIPT_VERSION);
    assert.equal(body[1], 0x00);
    assert.equal(body[2], CommandCode.SetTopicKey);
    assert.equal(body[3], 0x00);
    assert.equal(toHex(body.subarray(4, 12)), '0807060504030201');
    assertBytes(body.subarray(12, 28), fields.commandId);
    assertBytes(body.subarray(28, 44), fields.subject);

    const rejected = buildReceipt({
      status: 'rejected',
      reasonCode: receiptReasonCode(new E4Error(E4ErrorCode.TimestampTooOld, 'x')),
      commandId: sequentialBytes(16),
      commandTime: 1n,
      commandType: undefined,
      subject: new Uint8Array(16),
    });
    assert.equal(rejected[1], 0x01);
    assert.equal(rejected[2], RECEIPT_NO_COMMAND);
    assert.equal(rejected[3], 0x04);
  });

  void it('round trips every valid combination, and the encoding is canonical', () => {
    const fields = fc
      .record({
        status: fc.constantFrom('applied', 'rejected'),
        type: fc.constantFrom<CommandType | undefined>(...COMMAND_TYPES, undefined),
        reasonCode: fc.integer({ min: 1, max: 255 }),
        commandId: fc.uint8Array({ minLength: 16, maxLength: 16 }),
        commandTime: fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }),
        subject: fc.uint8Array({ minLength: 16, maxLength: 16 }),
      })
      .map(({ status, type, reasonCode, ...rest }): ReceiptFields => {
        const commandType = status === 'applied' && type === undefined ? 'ResetTopics' : type;
        const subject =
          commandType !== undefined && WITH_SUBJECT.has(commandType)
            ? rest.subject
            : new Uint8Array(16);
        const common = { commandId: rest.commandId, commandTime: rest.commandTime, commandType };
        return status === 'applied'
          ? { ...common, status, subject }
          : { ...common, status, reasonCode, subject };
      });
    fc.assert(
      fc.property(fields, (f) => {
        const body = buildReceipt(f);
        const parsed = parseReceipt(body);
        assert.equal(parsed.status, f.status);
        assert.equal(parsed.commandType, f.commandType);
        assert.equal(parsed.commandTime, f.commandTime);
        assertBytes(parsed.commandId, f.commandId);
        assertBytes(parsed.subject, f.subject);
        if (parsed.status === 'rejected' && f.status === 'rejected') {
          assert.equal(parsed.reasonCode, f.reasonCode);
          assert.equal(parsed.reason, receiptReason(f.reasonCode));
        }
        assertBytes(buildReceipt(parsed), body);
      }),
      { numRuns: 300 },
    );
  });

  void it('refuses every malformed body with a typed error', () => {
    const valid = buildReceipt(applied());
    const rejectedValid = buildReceipt({
      ...applied(),
      status: 'rejected',
      reasonCode: 0x04,
    });
    const noSubject = buildReceipt(
      applied({ commandType: 'ResetTopics', subject: new Uint8Array(16) }),
    );
    const cases: [string, Uint8Array, E4ErrorCode, string][] = [
      ['empty', new Uint8Array(0), 'InvalidCommandLength', 'body length'],
      ['short', valid.subarray(0, 43), 'InvalidCommandLength', 'body length'],
      ['long', concatBytes(valid, Uint8Array.of(0)), 'InvalidCommandLength', 'body length'],
      ['version 0x80', bodyWith(0, 0x80), 'InvalidCommand', 'version'],
      ['version 0x82', bodyWith(0, 0x82), 'InvalidCommand', 'version'],
      ['a command byte as version', bodyWith(0, 0x03), 'InvalidCommand', 'version'],
      ['status 2', bodyWith(1, 0x02), 'InvalidCommand', 'status'],
      ['command 0x08', bodyWith(2, 0x08), 'InvalidCommand', 'command'],
      ['command 0xfe', bodyWith(2, 0xfe), 'InvalidCommand', 'command'],
      ['applied with a reason', bodyWith(3, 0x04), 'InvalidCommand', 'reason'],
      ['applied without a command', bodyWith(2, 0xff, noSubject), 'InvalidCommand', 'command'],
      ['rejected without a reason', bodyWith(3, 0x00, rejectedValid), 'InvalidCommand', 'reason'],
      ['subject on ResetTopics', bodyWith(2, CommandCode.ResetTopics), 'InvalidCommand', 'subject'],
      ['subject on SetIDKey', bodyWith(2, CommandCode.SetIDKey), 'InvalidCommand', 'subject'],
      ['subject on 0xFF', bodyWith(2, 0xff, rejectedValid), 'InvalidCommand', 'subject'],
    ];
    for (const [name, body, code, field] of cases) {
      const err = throwsE4(() => parseReceipt(body), code, name);
      assert.equal(err.message, `invalid receipt ${field}`, name);
    }
    // The valid neighbours of those cases do parse.
    assert.equal(parseReceipt(noSubject).commandType, 'ResetTopics');
    assert.equal(
      parseReceipt(bodyWith(2, 0xff, bodyWith(1, 0x01, bodyWith(3, 0x09, noSubject)))).status,
      'rejected',
    );
  });

  void it('buildReceipt refuses bad fields', () => {
    throwsE4(
      () => buildReceipt(applied({ commandId: new Uint8Array(15) })),
      'InvalidCommandLength',
    );
    throwsE4(() => buildReceipt(applied({ subject: new Uint8Array(32) })), 'InvalidCommandLength');
    throwsE4(() => buildReceipt(applied({ commandTime: -1n })), 'InvalidCommand');
    throwsE4(() => buildReceipt(applied({ commandTime: 1n << 64n })), 'InvalidCommand');
    throwsE4(() => buildReceipt(applied({ commandType: undefined })), 'InvalidCommand');
    throwsE4(() => buildReceipt(applied({ commandType: 'ResetPubKeys' })), 'InvalidCommand');
    for (const reasonCode of [0, -1, 256, 1.5, Number.NaN]) {
      throwsE4(
        () => buildReceipt({ ...applied(), status: 'rejected', reasonCode }),
        'InvalidCommand',
        String(reasonCode),
      );
    }
  });

  void it('reason codes: the documented table, unknown bytes read as Other', () => {
    assert.equal(ReceiptReasonCode.TimestampTooOld, 0x04);
    assert.equal(ReceiptReasonCode.Other, 0xff);
    // Every current error code has a number, and numbers are unique.
    for (const code of Object.values(E4ErrorCode)) {
      assert.notEqual(ReceiptReasonCode[code], undefined, code);
    }
    const numbers = Object.values(ReceiptReasonCode);
    assert.equal(new Set(numbers).size, numbers.length);
    assert.equal(receiptReasonCode(new Error('disk full')), 0xff);
    assert.equal(receiptReasonCode(new E4Error(E4ErrorCode.InvalidKey, 'x')), 0x0d);
    assert.equal(receiptReason(0x0b), 'UnsupportedOperation');
    assert.equal(receiptReason(0x77), 'Other');
    assert.equal(receiptReason(0xff), 'Other');
  });
});

/** The C2 and device views of one device's command key, in each mode. */
interface KeyPair {
  readonly mode: string;
  readonly id: Uint8Array;
  /** What the C2 computes. */
  readonly c2Key: Uint8Array;
  /** What the device computes. */
  readonly deviceKey: Uint8Array;
}

function skKeys(): KeyPair {
  const key = randomSymKey();
  return { mode: 'SK', id: randomId(), c2Key: key, deviceKey: key };
}

function pkKeys(): KeyPair {
  const c2 = randomCurve25519KeyPair();
  const edKey = randomEd25519Key();
  return {
    mode: 'PK',
    id: randomId(),
    c2Key: commandKeyForClient(c2.privateKey, ed25519PublicKey(edKey)),
    deviceKey: commandKeyFromClient(edKey, c2.publicKey),
  };
}

for (const makeKeys of [skKeys, pkKeys]) {
  const mode = makeKeys().mode;
  void describe(`receipts: protection (${mode})`, () => {
    void it('round trip: the device protects, the C2 opens', () => {
      const k = makeKeys();
      const wire = protectCommand(cmdSetTopicKey(randomSymKey(), 'x/y'), k.c2Key, clock);
      const clear = unprotectSymKey(wire, k.deviceKey, clock);
      const fields = appliedReceipt(wire, parseCommand(clear));
      const receipt = protectReceipt(fields, k.id, k.deviceKey, fixedClock(T0 + 5_999));
      assert.equal(receipt.length, RECEIPT_LEN);
      const opened = openReceipt(receipt, k.id, k.c2Key);
      assert.equal(opened.status, 'applied');
      assert.equal(opened.commandType, 'SetTopicKey');
      assertBytes(opened.commandId, commandId(wire));
      assertBytes(opened.subject, topicHash('x/y'));
      assert.equal(opened.commandTime, NOW_S);
      assert.equal(opened.deviceTime, NOW_S + 5n);
      assert.equal(opened.keyIndex, 0);
    });

    void it("another device's key, or another device id, is NotAuthentic", () => {
      const k = makeKeys();
      const other = makeKeys();
      const receipt = protectReceipt(applied(), k.id, k.deviceKey, clock);
      throwsE4(() => openReceipt(receipt, k.id, other.c2Key), 'NotAuthentic');
      throwsE4(() => openReceipt(receipt, other.id, k.c2Key), 'NotAuthentic');
      // Even if two devices shared a key, the id in the associated data tells them apart.
      throwsE4(() => openReceipt(receipt, other.id, k.deviceKey), 'NotAuthentic');
    });

    void it('any flipped bit is NotAuthentic', () => {
      const k = makeKeys();
      const receipt = protectReceipt(applied(), k.id, k.deviceKey, clock);
      for (let bit = 0; bit < receipt.length * 8; bit++) {
        throwsE4(() => openReceipt(flipBit(receipt, bit), k.id, k.c2Key), 'NotAuthentic');
      }
      throwsE4(() => openReceipt(receipt.subarray(0, 67), k.id, k.c2Key), 'NotAuthentic');
      throwsE4(
        () => openReceipt(concatBytes(receipt, Uint8Array.of(0)), k.id, k.c2Key),
        'NotAuthentic',
      );
    });

    void it('candidate keys: the first that authenticates wins', () => {
      const k = makeKeys();
      const next = makeKeys();
      const receipt = protectReceipt(applied(), k.id, next.deviceKey, clock);
      const opened = openReceipt(receipt, k.id, [k.c2Key, next.c2Key]);
      assert.equal(opened.keyIndex, 1);
      throwsE4(() => openReceipt(receipt, k.id, [k.c2Key]), 'NotAuthentic');
      throwsE4(() => openReceipt(receipt, k.id, []), 'InvalidKey');
      throwsE4(() => openReceipt(receipt, k.id, new Uint8Array(31)), 'InvalidKey');
    });

    void it('a receipt is never a command, a command is never a receipt', () => {
      const k = makeKeys();
      const receipt = protectReceipt(applied(), k.id, k.deviceKey, clock);
      // A stock device (e4go's UnprotectCommand is unprotectSymKey) refuses it before parsing.
      throwsE4(() => unprotectSymKey(receipt, k.deviceKey, clock), 'NotAuthentic');
      // And the body could not be taken for a command even without the associated data.
      throwsE4(() => parseCommand(buildReceipt(applied())), 'InvalidCommand');
      // The reverse direction: a command protected with the same key is not a receipt.
      const command = protectCommand(concatBytes(buildReceipt(applied())), k.c2Key, clock);
      throwsE4(() => openReceipt(command, k.id, k.c2Key), 'NotAuthentic');
    });

    void it('no time window: old and future device clocks are reported, not refused', () => {
      const k = makeKeys();
      for (const ts of [0n, NOW_S - 86_400n, NOW_S + 86_400n, (1n << 64n) - 1n]) {
        const receipt = protectReceiptAt(applied(), k.id, k.deviceKey, ts);
        assert.equal(openReceipt(receipt, k.id, k.c2Key).deviceTime, ts);
      }
    });
  });
}

void describe('receipts: opening errors', () => {
  const k = skKeys();
  void it('length, id and key errors come before any decryption', () => {
    throwsE4(() => openReceipt(new Uint8Array(24), k.id, k.c2Key), 'TooShortCiphertext');
    throwsE4(() => openReceipt(new Uint8Array(0), k.id, k.c2Key), 'TooShortCiphertext');
    throwsE4(
      () => openReceipt(new Uint8Array(RECEIPT_MAX_LEN + 1), k.id, k.c2Key),
      'InvalidCommandLength',
    );
    throwsE4(() => openReceipt(new Uint8Array(68), new Uint8Array(8), k.c2Key), 'InvalidID');
  });

  void it('an authentic receipt with a malformed body gives the body error', () => {
    const seal = (body: Uint8Array): Uint8Array => {
      // Built by hand: what a buggy or newer device could send.
      const ts = protectReceiptAt(applied(), k.id, k.deviceKey, NOW_S).subarray(0, 8);
      return concatBytes(ts, new AesSivKey(k.deviceKey).seal([ts, RECEIPT_LABEL, k.id], body));
    };
    throwsE4(() => openReceipt(seal(bodyWith(0, 0x82)), k.id, k.c2Key), 'InvalidCommand');
    throwsE4(() => openReceipt(seal(new Uint8Array(45)), k.id, k.c2Key), 'InvalidCommandLength');
    throwsE4(() => openReceipt(seal(new Uint8Array(1)), k.id, k.c2Key), 'InvalidCommandLength');
    assert.equal(openReceipt(seal(buildReceipt(applied())), k.id, k.c2Key).status, 'applied');
  });
});

void describe('receipts: device-side fields', () => {
  void it('rejectedReceipt identifies authentic commands and ignores everything else', () => {
    const key = randomSymKey();
    const stale = protectSymKeyAt(cmdSetTopicKey(randomSymKey(), 'a/b'), key, NOW_S - 700n);
    const tooOld = new E4Error(E4ErrorCode.TimestampTooOld, 'timestamp too old');
    const fields = rejectedReceipt(stale, key, tooOld);
    assert.ok(fields !== undefined && fields.status === 'rejected');
    assert.equal(fields.reasonCode, 0x04);
    assert.equal(fields.commandType, 'SetTopicKey');
    assert.equal(fields.commandTime, NOW_S - 700n);
    assertBytes(fields.subject, topicHash('a/b'));
    assertBytes(fields.commandId, commandId(stale));

    // Not authentic under this key: no receipt.
    assert.equal(rejectedReceipt(stale, randomSymKey(), tooOld), undefined);
    assert.equal(rejectedReceipt(flipBit(stale, 100), key, tooOld), undefined);
    assert.equal(rejectedReceipt(stale.subarray(0, 23), key, tooOld), undefined);

    // Authentic but unparseable: the known command byte, or 0xFF, and no subject.
    const wrongLength = protectSymKeyAt(
      concatBytes(cmdSetTopicKey(randomSymKey(), 'a/b'), Uint8Array.of(1)),
      key,
      NOW_S,
    );
    const lengthFields = rejectedReceipt(wrongLength, key, new Error('x'));
    assert.ok(lengthFields?.status === 'rejected');
    assert.equal(lengthFields.commandType, 'SetTopicKey');
    assertBytes(lengthFields.subject, new Uint8Array(16));
    assert.equal(lengthFields.reasonCode, 0xff);
    const unknown = protectSymKeyAt(Uint8Array.of(0x81, 1, 2), key, NOW_S);
    assert.equal(rejectedReceipt(unknown, key, new Error('x'))?.commandType, undefined);
    const empty = protectSymKeyAt(new Uint8Array(0), key, NOW_S);
    assert.equal(empty.length, 24);
    assert.equal(rejectedReceipt(empty, key, new Error('x'))?.commandType, undefined);
  });
});
