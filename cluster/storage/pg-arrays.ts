/**
 * Array parameters of the delivery statements, encoded in one pass. pg encodes a JS array
 * element by element (a regular-expression escape and a quoted string per id or number, a hex
 * string per bytea), which made the parameters of a 500-device batch one of the larger
 * allocations of a fan-out. These encoders give PostgreSQL exactly what it would have parsed
 * from pg's own encoding.
 */

/** Decimal ids only: anything else (a comma, a brace...) would change the array literal. */
const DECIMAL = /^\d+$/;

/**
 * A `bigint[]` parameter from ids as pg returns them (decimal strings), as an array literal.
 * @throws TypeError when an id is not a non-negative decimal integer
 */
export function bigintArrayParam(ids: readonly string[]): string {
  for (const id of ids) {
    if (!DECIMAL.test(id)) throw new TypeError('an id is not a decimal integer');
  }
  return `{${ids.join(',')}}`;
}

/**
 * An `int[]` (or `bigint[]`) parameter from safe integers, as an array literal.
 * @throws TypeError when a value is not a safe integer
 */
export function intArrayParam(values: readonly number[]): string {
  for (const v of values) {
    if (!Number.isSafeInteger(v)) throw new TypeError(`${String(v)} is not an integer`);
  }
  return `{${values.join(',')}}`;
}

/** PostgreSQL's type id of bytea, the element type named in a binary array. */
const BYTEA_OID = 17;

/**
 * A `bytea[]` parameter in PostgreSQL's binary array format (what `array_recv` reads): pg
 * sends a Buffer parameter in binary, so the values are copied once into one buffer instead of
 * being turned into hex strings. `null` elements are SQL NULLs.
 */
export function byteaArrayParam(values: ReadonlyArray<Uint8Array | null>): Buffer {
  let size = 12; // dimensions, flags, element type
  if (values.length > 0) size += 8; // length and lower bound of the one dimension
  let hasNull = 0;
  for (const v of values) {
    size += 4 + (v === null ? 0 : v.byteLength);
    if (v === null) hasNull = 1;
  }
  const out = Buffer.allocUnsafe(size);
  out.writeInt32BE(values.length > 0 ? 1 : 0, 0);
  out.writeInt32BE(hasNull, 4);
  out.writeUInt32BE(BYTEA_OID, 8);
  let at = 12;
  if (values.length > 0) {
    out.writeInt32BE(values.length, 12);
    out.writeInt32BE(1, 16);
    at = 20;
  }
  for (const v of values) {
    if (v === null) {
      out.writeInt32BE(-1, at);
      at += 4;
    } else {
      out.writeInt32BE(v.byteLength, at);
      out.set(v, at + 4);
      at += 4 + v.byteLength;
    }
  }
  return out;
}
