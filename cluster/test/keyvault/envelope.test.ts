/**
 * The associated data that binds a sealed value to its row is part of the stored format: values
 * sealed by an earlier release must still open, so its bytes are pinned here against the format
 * written out by hand (cluster/keyvault/envelope.ts).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { C2Error } from '../../errors.ts';
import { envelopeHeader, sealAad } from '../../keyvault/envelope.ts';

/** `u32be len || utf8(text)`. */
function lengthPrefixed(text: string): Buffer {
  const bytes = Buffer.from(text, 'utf8');
  const prefix = Buffer.alloc(4);
  prefix.writeUInt32BE(bytes.length);
  return Buffer.concat([prefix, bytes]);
}

function u64be(value: number): Buffer {
  const out = Buffer.alloc(8);
  out.writeBigUInt64BE(BigInt(value));
  return out;
}

void describe('sealAad', () => {
  const header = envelopeHeader('dek-7');

  void it('is domain || header || len table || table || len rowId || rowId || u64be version', () => {
    for (const [table, rowId, version] of [
      ['client_keys', 'device-1', 1],
      ['topic_keys', 'dévice ✓ 😀', 2 ** 40],
      ['t', 'r', 0],
      ['clients', 'x'.repeat(5000), Number.MAX_SAFE_INTEGER],
    ] as const) {
      const expected = Buffer.concat([
        Buffer.from('e4c2-seal-v1\0'),
        Buffer.from([0x01, 5]),
        Buffer.from('dek-7'),
        lengthPrefixed(table),
        lengthPrefixed(rowId),
        u64be(version),
      ]);
      assert.deepEqual(Buffer.from(sealAad(header, { table, rowId, version })), expected);
    }
  });

  void it('refuses empty or oversized fields and bad versions with a typed error', () => {
    for (const binding of [
      { table: '', rowId: 'r', version: 1 },
      { table: 't', rowId: '', version: 1 },
      // 2 UTF-8 bytes per character: over the 65,535-byte limit with fewer UTF-16 units.
      { table: 't', rowId: 'é'.repeat(40_000), version: 1 },
      { table: 't', rowId: 'r', version: -1 },
      { table: 't', rowId: 'r', version: 1.5 },
    ]) {
      assert.throws(
        () => sealAad(header, binding),
        (err: unknown) => err instanceof C2Error && err.code === 'C2_VALIDATION',
        JSON.stringify(binding).slice(0, 60),
      );
    }
  });
});
