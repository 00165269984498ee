/** Small byte helpers shared by the protocol modules. */
import { requireBigInt, requireBytes, requireString } from './arguments.ts';
import { E4Error, E4ErrorCode } from './errors.ts';

const HEX_DIGITS = /^[0-9a-fA-F]*$/;

/**
 * Lowercase hex of `bytes` (the encoding e4go uses for map keys and topics).
 * @throws E4Error `InvalidArgument` when `bytes` is not a `Uint8Array`
 */
export function toHex(bytes: Uint8Array): string {
  requireBytes(bytes, 'bytes');
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex');
}

/**
 * Parses lowercase or uppercase hex. Messages never quote the text: hex is how keys are written.
 * @throws E4Error `InvalidArgument` when `hex` is not a string, has an odd length or a character
 *   that is not a hex digit
 */
export function fromHex(hex: string): Uint8Array {
  requireString(hex, 'hex');
  if (hex.length % 2 !== 0) {
    throw new E4Error(
      E4ErrorCode.InvalidArgument,
      `invalid hex string: odd length (${hex.length} characters)`,
    );
  }
  if (!HEX_DIGITS.test(hex)) {
    throw new E4Error(E4ErrorCode.InvalidArgument, 'invalid hex string: not a hex digit');
  }
  return new Uint8Array(Buffer.from(hex, 'hex'));
}

/**
 * Concatenates byte arrays into a new array.
 * @throws E4Error `InvalidArgument` when a part is not a `Uint8Array` (a string was copied as
 *   zeros)
 */
export function concatBytes(...parts: readonly Uint8Array[]): Uint8Array {
  let length = 0;
  for (const p of parts) {
    requireBytes(p, 'part');
    length += p.length;
  }
  const out = new Uint8Array(length);
  let offset = 0;
  for (const p of parts) {
    out.set(p, offset);
    offset += p.length;
  }
  return out;
}

/**
 * Byte equality; not constant-time (use only on public data).
 * @throws E4Error `InvalidArgument` when either is not a `Uint8Array` (two equal strings, or two
 *   numbers, were "equal")
 */
export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  requireBytes(a, 'a');
  requireBytes(b, 'b');
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/**
 * True when every byte is zero (the reference rejects all-zero keys).
 * @throws E4Error `InvalidArgument` when `bytes` is not a `Uint8Array` (a string was all zeros)
 */
export function isAllZero(bytes: Uint8Array): boolean {
  requireBytes(bytes, 'bytes');
  let acc = 0;
  for (const b of bytes) acc |= b;
  return acc === 0;
}

/**
 * Encodes `value` as 8 bytes, unsigned little-endian (the E4 timestamp format).
 * @throws E4Error `InvalidArgument` when `value` is not a bigint (a number was a bare TypeError)
 */
export function writeUint64LE(value: bigint): Uint8Array {
  requireBigInt(value, 'value');
  const out = new Uint8Array(8);
  new DataView(out.buffer).setBigUint64(0, BigInt.asUintN(64, value), true);
  return out;
}

/**
 * Reads 8 bytes at `offset` as a *signed* little-endian integer, as e4go does
 * (`int64(binary.LittleEndian.Uint64(ts))`), so values above 2^63 are negative.
 * @throws E4Error `InvalidArgument` when `bytes` is not a `Uint8Array` or holds no 8 bytes at
 *   `offset` (it was a bare RangeError)
 */
export function readInt64LE(bytes: Uint8Array, offset = 0): bigint {
  requireBytes(bytes, 'bytes');
  if (!Number.isSafeInteger(offset) || offset < 0 || offset > bytes.length - 8) {
    throw new E4Error(
      E4ErrorCode.InvalidArgument,
      `no 8 bytes at offset ${String(offset)} of ${bytes.length} bytes`,
    );
  }
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getBigInt64(offset, true);
}

/** Overwrites `bytes` with zeros (best effort wiping of key material). */
export function wipe(bytes: Uint8Array): void {
  bytes.fill(0);
}
