// The test vectors of docs/protocol-extensions.md §1.9: every derived value is recomputed from the
// block's inputs, and an E4Client whose clock reads `device ts` must publish exactly `receipt`.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import {
  buildReceipt,
  clientIdFromName,
  commandId,
  commandKeyForClient,
  commandKeyFromClient,
  controlTopic,
  E4Client,
  ed25519KeyFromSeed,
  ed25519PublicKey,
  fromHex,
  openReceipt,
  parseCommand,
  parseReceipt,
  protectReceiptAt,
  protectSymKeyAt,
  receiptTopic,
  toHex,
  x25519PublicKey,
} from '../index.ts';

const DOC = new URL('../../docs/protocol-extensions.md', import.meta.url);

/** The `key: value` lines of every fenced block that starts with `vector:`. */
function readVectors(markdown: string): Map<string, string>[] {
  const blocks = [...markdown.matchAll(/```text\n(vector: [\s\S]*?)```/g)];
  return blocks.map(([, body]) => {
    const fields = new Map<string, string>();
    for (const line of (body ?? '').trim().split('\n')) {
      const at = line.indexOf(': ');
      assert.ok(at > 0, `malformed vector line: ${line}`);
      const name = line.slice(0, at);
      assert.ok(!fields.has(name), `duplicate field ${name}`);
      fields.set(name, line.slice(at + 2));
    }
    return fields;
  });
}

function field(v: Map<string, string>, name: string): string {
  const value = v.get(name);
  assert.ok(value !== undefined, `vector ${v.get('vector') ?? '?'} lacks ${name}`);
  return value;
}

const hex = (v: Map<string, string>, name: string): Uint8Array => fromHex(field(v, name));

const vectors = readVectors(readFileSync(DOC, 'utf8'));

void describe('receipts: the vectors of docs/protocol-extensions.md', () => {
  void it('lists the four documented cases', () => {
    assert.deepEqual(
      vectors.map((v) => v.get('vector')),
      ['sk-applied', 'sk-rejected-stale', 'sk-applied-setidkey', 'pk-applied'],
    );
  });

  for (const v of vectors) {
    void it(`${field(v, 'vector')}: recomputed from its inputs`, async () => {
      const name = field(v, 'device name');
      const clear = hex(v, 'command');
      const commandTs = BigInt(field(v, 'command ts'));
      const deviceTs = BigInt(field(v, 'device ts'));
      const command = parseCommand(clear);

      const id = clientIdFromName(name);
      assert.equal(toHex(id), field(v, 'device id'));
      assert.equal(controlTopic(id), field(v, 'control topic'));
      assert.equal(receiptTopic(id), field(v, 'receipt topic'));

      // The command key, computed by the C2 and (PK) by the device.
      let commandKey: Uint8Array;
      let makeDevice: (clock: () => number, publish: (p: Uint8Array) => void) => Promise<E4Client>;
      if (field(v, 'mode') === 'sk') {
        commandKey = hex(v, 'identity key');
        makeDevice = (clock, publish) =>
          E4Client.createSymmetric(
            { name },
            { key: commandKey },
            {
              clock,
              receipts: {
                publish: (_t, p) => {
                  publish(p);
                },
                rejections: true,
              },
            },
          );
      } else {
        const edKey = ed25519KeyFromSeed(hex(v, 'ed25519 seed'));
        const c2Private = hex(v, 'c2 x25519 private key');
        const c2Public = x25519PublicKey(c2Private);
        assert.equal(toHex(ed25519PublicKey(edKey)), field(v, 'device public key'));
        assert.equal(toHex(c2Public), field(v, 'c2 public key'));
        commandKey = commandKeyForClient(c2Private, ed25519PublicKey(edKey));
        assert.equal(toHex(commandKeyFromClient(edKey, c2Public)), toHex(commandKey));
        makeDevice = (clock, publish) =>
          E4Client.createPublicKey({ name }, { privateKey: edKey }, c2Public, {
            clock,
            receipts: {
              publish: (_t, p) => {
                publish(p);
              },
              rejections: true,
            },
          });
      }

      const wire = protectSymKeyAt(clear, commandKey, commandTs);
      assert.equal(toHex(wire), field(v, 'protected command'));
      assert.equal(toHex(commandId(wire)), field(v, 'command id'));

      // The body: decode it and check it says what the case says, then re-encode it.
      const body = hex(v, 'receipt body');
      const parsed = parseReceipt(body);
      assert.equal(toHex(buildReceipt(parsed)), toHex(body));
      assert.equal(parsed.commandType, command.type);
      assert.equal(parsed.commandTime, commandTs);
      assert.equal(toHex(parsed.commandId), field(v, 'command id'));
      const rejected = field(v, 'vector').includes('rejected');
      assert.equal(parsed.status, rejected ? 'rejected' : 'applied');

      // The receipt key: the new key after an applied SetIDKey, the command key otherwise.
      const receiptKey = hex(v, 'receipt key');
      const expectedKey = command.type === 'SetIDKey' && !rejected ? command.key : commandKey;
      assert.equal(toHex(receiptKey), toHex(expectedKey));
      const receipt = protectReceiptAt(parsed, id, receiptKey, deviceTs);
      assert.equal(toHex(receipt), field(v, 'receipt'));
      const opened = openReceipt(receipt, id, receiptKey);
      assert.equal(opened.deviceTime, deviceTs);

      // A real device, its clock half a second into `device ts`, publishes exactly these bytes.
      const sent: Uint8Array[] = [];
      const device = await makeDevice(
        () => Number(deviceTs) * 1000 + 500,
        (p) => sent.push(p),
      );
      await device.unprotect(wire, device.receivingTopic).catch((err: unknown) => {
        assert.ok(rejected, `unexpected refusal: ${String(err)}`);
      });
      assert.deepEqual(sent.map(toHex), [field(v, 'receipt')]);
    });
  }
});
