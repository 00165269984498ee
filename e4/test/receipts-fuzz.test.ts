// Fuzzing of the receipt entry points: any byte string given to parseReceipt or openReceipt gives
// a receipt or a typed E4Error (never another exception), accepted bodies are canonical, and a
// device with receipts on answers every authentic command with exactly one receipt that opens.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import {
  AesSivKey,
  buildReceipt,
  concatBytes,
  E4Client,
  E4Error,
  E4ErrorCode,
  encodeClientState,
  openReceipt,
  parseReceipt,
  protectReceiptAt,
  protectSymKeyAt,
  randomId,
  randomSymKey,
  RECEIPT_LABEL,
  RECEIPT_VERSION,
  writeUint64LE,
  type ReceiptFields,
} from '../index.ts';
import { fixedClock } from './support.ts';

const T0 = 1_700_000_000_000;
const NOW_S = BigInt(T0 / 1000);
const id = randomId();
const key = randomSymKey();
const otherKey = randomSymKey();

const PARSE_ERRORS = new Set<string>([
  E4ErrorCode.InvalidCommand,
  E4ErrorCode.InvalidCommandLength,
]);
const OPEN_ERRORS = new Set<string>([
  ...PARSE_ERRORS,
  E4ErrorCode.TooShortCiphertext,
  E4ErrorCode.NotAuthentic,
]);

function resultOrE4Error<T>(fn: () => T, allowed: ReadonlySet<string>): T | E4Error {
  try {
    return fn();
  } catch (err) {
    assert.ok(err instanceof E4Error, `non-E4Error thrown: ${String(err)}`);
    assert.ok(allowed.has(err.code), `unexpected code ${err.code}`);
    return err;
  }
}

const baseFields: ReceiptFields[] = [
  {
    status: 'applied',
    commandId: new Uint8Array(16).fill(7),
    commandTime: NOW_S,
    commandType: 'SetTopicKey',
    subject: new Uint8Array(16).fill(9),
  },
  {
    status: 'rejected',
    reasonCode: 0x04,
    commandId: new Uint8Array(16).fill(1),
    commandTime: NOW_S - 700n,
    commandType: undefined,
    subject: new Uint8Array(16),
  },
];
const validBodies = baseFields.map((f) => buildReceipt(f));

/** Valid bodies with a few bytes replaced: mostly near the header, where the rules are. */
const mutatedBody = fc
  .tuple(
    fc.constantFrom(...validBodies),
    fc.array(
      fc.tuple(
        fc.oneof(fc.integer({ min: 0, max: 3 }), fc.integer({ min: 0, max: 43 })),
        fc.oneof(fc.constantFrom(0, 1, 0xff, RECEIPT_VERSION), fc.integer({ min: 0, max: 255 })),
      ),
      { minLength: 1, maxLength: 4 },
    ),
  )
  .map(([body, edits]) => {
    const out = new Uint8Array(body);
    for (const [at, value] of edits) out[at] = value;
    return out;
  });

const anyBody = fc.oneof(
  fc.uint8Array({ maxLength: 80 }),
  fc.uint8Array({ minLength: 44, maxLength: 44 }),
  mutatedBody,
);

/** Seals a body exactly as a device would: what a buggy or hostile key holder can send. */
function sealAsDevice(body: Uint8Array, ts = NOW_S): Uint8Array {
  const t = writeUint64LE(ts);
  return concatBytes(t, new AesSivKey(key).seal([t, RECEIPT_LABEL, id], body));
}

void describe('fuzz: receipts', () => {
  void it('parseReceipt: a canonical receipt or InvalidCommand / InvalidCommandLength', () => {
    fc.assert(
      fc.property(anyBody, (body) => {
        const result = resultOrE4Error(() => parseReceipt(body), PARSE_ERRORS);
        if (!(result instanceof E4Error)) {
          assert.equal(
            Buffer.from(buildReceipt(result)).toString('hex'),
            Buffer.from(body).toString('hex'),
          );
        }
      }),
      { numRuns: 1000 },
    );
  });

  void it('openReceipt: random bytes and near-valid receipts under a wrong or right key', () => {
    const valid = baseFields.map((f) => protectReceiptAt(f, id, key, NOW_S));
    const nearValid = fc
      .tuple(
        fc.constantFrom(...valid),
        fc.nat(),
        fc.constantFrom('truncate', 'extend', 'flip', 'set'),
        fc.uint8Array({ minLength: 1, maxLength: 8 }),
      )
      .map(([r, n, how, extra]) => {
        const at = n % r.length;
        if (how === 'truncate') return r.subarray(0, at);
        if (how === 'extend') return concatBytes(r, extra);
        const out = new Uint8Array(r);
        out[at] = how === 'flip' ? (out[at] ?? 0) ^ (1 << (n % 8)) : (extra[0] ?? 0);
        return out;
      });
    fc.assert(
      fc.property(
        fc.oneof(fc.uint8Array({ maxLength: 300 }), nearValid),
        fc.constantFrom(key, otherKey),
        (bytes, k) => {
          const result = resultOrE4Error(() => openReceipt(bytes, id, k), OPEN_ERRORS);
          if (!(result instanceof E4Error)) {
            // Only an unmodified receipt under the right key opens.
            assert.equal(k, key);
            assert.ok(valid.some((v) => Buffer.from(v).equals(bytes)));
          }
        },
      ),
      { numRuns: 600 },
    );
  });

  void it('openReceipt: authentic receipts with arbitrary bodies give the parser verdict', () => {
    fc.assert(
      fc.property(anyBody, fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }), (body, ts) => {
        const receipt = sealAsDevice(body, ts);
        const parsed = resultOrE4Error(() => parseReceipt(body), PARSE_ERRORS);
        const opened = resultOrE4Error(
          () => openReceipt(receipt, id, [otherKey, key]),
          OPEN_ERRORS,
        );
        if (body.length === 0) {
          // 24 bytes: refused before any decryption, like an SK message.
          assert.ok(E4Error.is(opened, E4ErrorCode.TooShortCiphertext));
        } else if (parsed instanceof E4Error) {
          assert.ok(opened instanceof E4Error);
          assert.equal(opened.code, parsed.code);
        } else {
          assert.ok(!(opened instanceof E4Error));
          assert.equal(opened.deviceTime, ts);
          assert.equal(opened.keyIndex, 1);
          assert.equal(
            Buffer.from(buildReceipt(opened)).toString('hex'),
            Buffer.from(body).toString('hex'),
          );
        }
      }),
      { numRuns: 500 },
    );
  });

  void it('E4Client: every authentic command gives exactly one receipt that opens, matching the outcome', async () => {
    const sent: Uint8Array[] = [];
    const clock = fixedClock(T0 + 250);
    const device = await E4Client.createSymmetric(
      { id },
      { key },
      {
        clock,
        receipts: {
          publish: (_t, p) => {
            sent.push(p);
          },
          rejections: true,
        },
      },
    );
    const seen = { applied: 0, rejected: 0, keyChanges: 0 };
    /** The device's key: a random SetIDKey can change it. */
    const currentKey = (): Uint8Array => {
      const material = device.state.keyMaterial;
      assert.equal(material.mode, 'symmetric');
      return material.key;
    };
    const command = fc.oneof(
      fc.uint8Array({ maxLength: 70 }),
      // A well-formed SK command (RemoveTopic, ResetTopics, SetIDKey, SetTopicKey) with random bytes.
      {
        weight: 3,
        arbitrary: fc
          .constantFrom([0x00, 16], [0x01, 0], [0x02, 32], [0x03, 48])
          .chain(([c, n]) =>
            fc
              .uint8Array({ minLength: n, maxLength: n })
              .map((rest) => concatBytes(Uint8Array.of(c), rest)),
          ),
      },
      fc
        .tuple(fc.integer({ min: 0, max: 8 }), fc.uint8Array({ maxLength: 66 }))
        .map(([c, rest]) => concatBytes(Uint8Array.of(c), rest)),
    );
    await fc.assert(
      fc.asyncProperty(
        command,
        fc.constantFrom(0n, -1n, -700n, 5n),
        fc.boolean(),
        async (clear, age, authentic) => {
          const keyBefore = currentKey();
          const wire = protectSymKeyAt(clear, authentic ? keyBefore : otherKey, NOW_S + age);
          const before = encodeClientState(device.state);
          let status: 'applied' | 'rejected';
          try {
            await device.unprotect(wire, device.receivingTopic);
            status = 'applied';
          } catch (err) {
            assert.ok(err instanceof E4Error, `non-E4Error thrown: ${String(err)}`);
            assert.equal(encodeClientState(device.state), before);
            status = 'rejected';
          }
          if (!authentic) {
            assert.equal(sent.length, 0, 'no receipt for a message that is not authentic');
            return;
          }
          assert.equal(sent.length, 1);
          const payload = sent.pop() ?? new Uint8Array(0);
          // An applied SetIDKey changes the key: then only the new key opens the receipt.
          const receipt = openReceipt(payload, id, [keyBefore, currentKey()]);
          assert.equal(receipt.status, status);
          assert.equal(receipt.keyIndex === 1, status === 'applied' && clear[0] === 0x02);
          seen[status] += 1;
          if (receipt.keyIndex === 1) seen.keyChanges += 1;
        },
      ),
      { numRuns: 250 },
    );
    assert.ok(seen.applied > 0 && seen.rejected > 0, JSON.stringify(seen));
  });
});
