/**
 * The sealed-value format of the key vault and the associated data that binds a sealed value to
 * its row:
 *
 *   sealed = 0x01 || len(dekId) (1 byte) || dekId (UTF-8) || iv (12) || ciphertext || tag (16)
 *   aad    = "e4c2-seal-v1" || 0x00 || header (the bytes before iv) || binding
 *   binding = u32be len || table || u32be len || rowId || u64be version
 *
 * Length prefixes make the binding encoding injective, so no two different (table, rowId,
 * version) triples share an AAD and a sealed key cannot be moved to another row or version.
 */
import { concatBytes } from '../../e4/index.ts';
import { C2Error } from '../errors.ts';
import { GCM_IV_BYTES, GCM_TAG_BYTES } from './aes-gcm.ts';

/** Where a sealed value lives. Part of the AAD: opening it anywhere else fails. */
export interface SealBinding {
  /** Table (or other namespace) of the row. */
  readonly table: string;
  /** Primary key of the row. */
  readonly rowId: string;
  /** Key version the row holds; a non-negative safe integer. */
  readonly version: number;
}

/** Format byte of the current envelope. */
export const ENVELOPE_V1 = 0x01;

const SEAL_DOMAIN = new TextEncoder().encode('e4c2-seal-v1\0');
const MAX_FIELD_BYTES = 0xffff;
const utf8 = new TextEncoder();
/** Stateless when not streaming, so one instance serves every call. */
const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

/** A parsed envelope. `header` is covered by the AAD. */
export interface ParsedEnvelope {
  readonly dekId: string;
  readonly header: Uint8Array;
  /** iv || ciphertext || tag. */
  readonly body: Uint8Array;
}

/** The envelope header for data key `dekId` (1 to 255 UTF-8 bytes). */
export function envelopeHeader(dekId: string): Uint8Array {
  const id = utf8.encode(dekId);
  if (id.length === 0 || id.length > 255) {
    throw new C2Error('C2_INTERNAL', 'data key id must be 1 to 255 bytes');
  }
  return concatBytes(Uint8Array.of(ENVELOPE_V1, id.length), id);
}

/**
 * Splits a sealed value.
 * @throws C2Error `C2_KEY_VAULT` when the bytes are not a version-1 envelope
 */
export function parseEnvelope(sealed: Uint8Array): ParsedEnvelope {
  const idLength = sealed[1] ?? 0;
  const headerLength = 2 + idLength;
  if (sealed[0] !== ENVELOPE_V1) {
    throw new C2Error('C2_KEY_VAULT', 'sealed value has an unknown format');
  }
  if (idLength === 0 || sealed.length < headerLength + GCM_IV_BYTES + GCM_TAG_BYTES) {
    throw new C2Error('C2_KEY_VAULT', 'sealed value is truncated');
  }
  let dekId: string;
  try {
    dekId = strictUtf8.decode(sealed.subarray(2, headerLength));
  } catch {
    throw new C2Error('C2_KEY_VAULT', 'sealed value has a malformed data key id');
  }
  return {
    dekId,
    header: sealed.subarray(0, headerLength),
    body: sealed.subarray(headerLength),
  };
}

/**
 * Writes `u32be len || utf8(field)` at `offset` of `out`, which has room for the field's
 * worst case (3 bytes per UTF-16 unit).
 * @returns the offset after the field
 * @throws C2Error `C2_VALIDATION` for an empty or oversized field
 */
function writeLengthPrefixed(out: Uint8Array, offset: number, field: string, name: string): number {
  const { written } = utf8.encodeInto(field, out.subarray(offset + 4));
  if (written === 0 || written > MAX_FIELD_BYTES) {
    throw new C2Error(
      'C2_VALIDATION',
      `seal binding ${name} must be 1 to ${MAX_FIELD_BYTES} bytes`,
    );
  }
  new DataView(out.buffer, out.byteOffset + offset, 4).setUint32(0, written);
  return offset + 4 + written;
}

/**
 * The AAD of a sealed value: domain, header and the canonical encoding of `binding`. Built in
 * one buffer: the key vault opens one sealed key per device in a fan-out.
 * @throws C2Error `C2_VALIDATION` for an empty or oversized field or a bad version
 */
export function sealAad(header: Uint8Array, binding: SealBinding): Uint8Array {
  if (!Number.isSafeInteger(binding.version) || binding.version < 0) {
    throw new C2Error('C2_VALIDATION', 'seal binding version must be a non-negative integer');
  }
  const { table, rowId } = binding;
  const room = SEAL_DOMAIN.length + header.length + 8 + 3 * (table.length + rowId.length) + 8;
  const out = new Uint8Array(room);
  out.set(SEAL_DOMAIN, 0);
  out.set(header, SEAL_DOMAIN.length);
  let offset = writeLengthPrefixed(out, SEAL_DOMAIN.length + header.length, table, 'table');
  offset = writeLengthPrefixed(out, offset, rowId, 'rowId');
  new DataView(out.buffer, offset, 8).setBigUint64(0, BigInt(binding.version));
  return out.subarray(0, offset + 8);
}
