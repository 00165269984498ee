/**
 * proto3 JSON for the HTTP surface, driven by the .proto schemas (see {@link ProtoSchema}), with
 * grpc-gateway's conventions: every field emitted with its zero value, 64-bit integers as
 * strings, bytes as base64, enums by name. Decoding is strict: unknown fields, wrong types,
 * malformed base64 and out-of-range integers are `C2_VALIDATION` errors naming the field, and the
 * result has the same shape proto-loader gives gRPC handlers (defaults filled in).
 */
import { C2Error } from '../../cluster/errors.ts';
import type { FieldSchema, ProtoMessage, ProtoSchema } from './protos.ts';

/** Field names in JSON: as in the .proto (the reference API) or lowerCamelCase (ours). */
export type NameStyle = 'proto' | 'json';

const TIMESTAMP = 'google.protobuf.Timestamp';
const INT32 = { min: -(2n ** 31n), max: 2n ** 31n - 1n };
const UINT32 = { min: 0n, max: 2n ** 32n - 1n };
const INT64 = { min: -(2n ** 63n), max: 2n ** 63n - 1n };
const UINT64 = { min: 0n, max: 2n ** 64n - 1n };

/**
 * An unknown name that is echoed in the error (and so in logs): one that could be a misspelt
 * field. Anything else may be a value sent as a name, e.g. a key's base64 or hex (32-byte keys
 * are at least 43 characters in either), which must never be repeated.
 */
const PLAUSIBLE_FIELD_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,39}$/;

function invalid(field: string, message: string): C2Error {
  return new C2Error('C2_VALIDATION', message, { details: { field } });
}

function describeJsonType(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return typeof value === 'object' ? 'an object' : `a ${typeof value}`;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** The value a field has when it is absent (as proto-loader's `defaults: true`). */
export function defaultValue(schema: ProtoSchema, field: FieldSchema): unknown {
  if (field.repeated) return [];
  switch (field.kind) {
    case 'string':
      return '';
    case 'bool':
      return false;
    case 'bytes':
      return Buffer.alloc(0);
    case 'int32':
    case 'uint32':
    case 'double':
      return 0;
    case 'int64':
    case 'uint64':
      return '0';
    case 'enum':
      return schema.enumValues(field.typeName ?? '')[0] ?? 0;
    case 'message':
      return null;
    case 'map':
      return {};
  }
}

/** A message with every field at its default. */
export function emptyMessage(schema: ProtoSchema, type: string): ProtoMessage {
  const out: ProtoMessage = {};
  for (const f of schema.message(type).fields) out[f.name] = defaultValue(schema, f);
  return out;
}

/**
 * Decodes base64 (standard or URL-safe alphabet, padding optional, as proto3 JSON allows).
 * @throws C2Error `C2_VALIDATION` naming `path`
 */
export function decodeBase64(text: string, path: string): Buffer {
  const body = text.replace(/={1,2}$/, '');
  const padded = body.length !== text.length;
  if (
    !/^[A-Za-z0-9+/_-]*$/.test(body) ||
    body.length % 4 === 1 ||
    (padded && text.length % 4 !== 0)
  ) {
    throw invalid(path, `${path} is not valid base64`);
  }
  return Buffer.from(body.replace(/-/g, '+').replace(/_/g, '/'), 'base64');
}

function integer(
  field: FieldSchema,
  value: unknown,
  path: string,
  range: { min: bigint; max: bigint },
): bigint {
  let n: bigint;
  const outOfRange = (): C2Error =>
    invalid(path, `${path} is out of range for ${field.kind} (${range.min} to ${range.max})`);
  if (typeof value === 'number' && Number.isInteger(value)) {
    if (!Number.isSafeInteger(value)) {
      // Beyond 2^53 a JSON number has lost digits: only a 64-bit field could hold it exactly.
      if (value > Number(range.max) || value < Number(range.min)) throw outOfRange();
      throw invalid(path, `${path} is too large for a JSON number; send it as a string`);
    }
    n = BigInt(value);
  } else if (typeof value === 'string' && /^-?\d{1,40}$/.test(value)) {
    n = BigInt(value);
  } else {
    throw invalid(path, `${path} must be an integer (a JSON number or a numeric string)`);
  }
  if (n < range.min || n > range.max) throw outOfRange();
  return n;
}

function decodeTimestamp(value: unknown, path: string): ProtoMessage {
  const ms = typeof value === 'string' ? Date.parse(value) : Number.NaN;
  if (!Number.isFinite(ms) || !/^\d{4}-\d\d-\d\dT/.test(String(value)))
    throw invalid(path, `${path} must be an RFC 3339 timestamp`);
  return { seconds: String(Math.floor(ms / 1000)), nanos: (ms % 1000) * 1_000_000 };
}

function decodeSingle(schema: ProtoSchema, field: FieldSchema, value: unknown, path: string) {
  switch (field.kind) {
    case 'string':
      if (typeof value !== 'string')
        throw invalid(path, `${path} must be a string, not ${describeJsonType(value)}`);
      // JSON can spell a lone surrogate (`"\ud800"`), which no UTF-8 can hold: stored, it would
      // silently become U+FFFD, so the text read back would not be the text written.
      if (!value.isWellFormed())
        throw invalid(
          path,
          `${path} holds a lone UTF-16 surrogate (\\uD800-\\uDFFF without its pair)`,
        );
      return value;
    case 'bool':
      if (typeof value !== 'boolean')
        throw invalid(path, `${path} must be true or false, not ${describeJsonType(value)}`);
      return value;
    case 'bytes':
      if (typeof value !== 'string')
        throw invalid(path, `${path} must be a base64 string, not ${describeJsonType(value)}`);
      return decodeBase64(value, path);
    case 'int32':
      return Number(integer(field, value, path, INT32));
    case 'uint32':
      return Number(integer(field, value, path, UINT32));
    case 'int64':
      return integer(field, value, path, INT64).toString();
    case 'uint64':
      return integer(field, value, path, UINT64).toString();
    case 'double': {
      const n = typeof value === 'string' && value.trim() !== '' ? Number(value) : value;
      if (typeof n !== 'number' || Number.isNaN(n)) throw invalid(path, `${path} must be a number`);
      return n;
    }
    case 'enum': {
      const names = schema.enumValues(field.typeName ?? '');
      if (typeof value === 'string' && names.includes(value)) return value;
      if (typeof value === 'number' && names[value] !== undefined) return names[value];
      throw invalid(path, `${path} must be one of ${names.filter(Boolean).join(', ')}`);
    }
    case 'message':
      if (field.typeName === TIMESTAMP) return decodeTimestamp(value, path);
      if (!isPlainObject(value))
        throw invalid(path, `${path} must be an object, not ${describeJsonType(value)}`);
      return decodeMessage(schema, field.typeName ?? '', value, `${path}.`);
    case 'map': {
      if (!isPlainObject(value) || field.map === undefined)
        throw invalid(path, `${path} must be an object, not ${describeJsonType(value)}`);
      const out: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(value)) {
        if (v === null) throw invalid(`${path}.${k}`, `${path}.${k} must not be null`);
        out[k] = decodeSingle(schema, field.map.value, v, `${path}.${k}`);
      }
      return out;
    }
  }
}

/**
 * Decodes a JSON object into message `type`. `prefix` names the enclosing field in errors.
 * Accepts both the .proto name and the lowerCamelCase JSON name of every field.
 * @throws C2Error `C2_VALIDATION` for an unknown field or a value of the wrong type
 */
export function decodeMessage(
  schema: ProtoSchema,
  type: string,
  json: unknown,
  prefix = '',
): ProtoMessage {
  if (!isPlainObject(json)) {
    throw invalid(
      prefix === '' ? 'body' : prefix.slice(0, -1),
      `${prefix === '' ? 'the request body' : prefix.slice(0, -1)} must be a JSON object, not ${describeJsonType(json)}`,
    );
  }
  const fields = schema.message(type).fields;
  const out = emptyMessage(schema, type);
  const given = new Map<string, string>();
  for (const [key, value] of Object.entries(json)) {
    const field = fields.find((f) => f.name === key || f.jsonName === key);
    const path = `${prefix}${key}`;
    if (field === undefined) {
      if (PLAUSIBLE_FIELD_NAME.test(key)) throw invalid(path, `unknown field "${path}"`);
      throw invalid(
        `${prefix}*`,
        `unknown field: a name of ${key.length} characters, not shown (no field has such a name: is a value, such as a key, in the place of a name?)`,
      );
    }
    // A field under both of its names (`requestId` and `request_id`): neither may silently win.
    const earlier = given.get(field.name);
    if (earlier !== undefined) {
      throw invalid(path, `${path} is given twice (also as ${prefix}${earlier})`);
    }
    given.set(field.name, key);
    if (value === null) continue;
    if (field.repeated) {
      if (!Array.isArray(value))
        throw invalid(path, `${path} must be an array, not ${describeJsonType(value)}`);
      out[field.name] = value.map((v, i) => {
        if (v === null) throw invalid(`${path}[${i}]`, `${path}[${i}] must not be null`);
        return decodeSingle(schema, field, v, `${path}[${i}]`);
      });
    } else {
      out[field.name] = decodeSingle(schema, field, value, path);
    }
  }
  return out;
}

/**
 * Decodes one query-string value of a scalar field (grpc-gateway fills unbound request fields
 * from the query string on routes without a body).
 * @throws C2Error `C2_VALIDATION`
 */
export function decodeQueryValue(
  schema: ProtoSchema,
  field: FieldSchema,
  raw: string,
  path: string,
): unknown {
  switch (field.kind) {
    case 'bool': {
      if (/^(1|t|true)$/i.test(raw)) return true;
      if (/^(0|f|false)$/i.test(raw)) return false;
      throw invalid(path, `${path} must be true or false`);
    }
    case 'int32':
    case 'uint32':
    case 'int64':
    case 'uint64':
    case 'double':
    case 'enum': {
      const numeric = field.kind === 'enum' && /^\d+$/.test(raw) ? Number(raw) : raw;
      return decodeSingle(schema, field, numeric, path);
    }
    case 'string':
    case 'bytes':
      return decodeSingle(schema, field, raw, path);
    case 'message':
    case 'map':
      throw invalid(path, `${path} cannot be given in the query string`);
  }
}

function encodeTimestamp(value: unknown): string | null {
  if (!isPlainObject(value)) return null;
  const ms = Number(value['seconds'] ?? 0) * 1000 + Math.floor(Number(value['nanos'] ?? 0) / 1e6);
  return new Date(ms).toISOString();
}

function encodeSingle(
  schema: ProtoSchema,
  field: FieldSchema,
  value: unknown,
  style: NameStyle,
): unknown {
  switch (field.kind) {
    case 'string':
      return typeof value === 'string' ? value : '';
    case 'bool':
      return value === true;
    case 'bytes':
      return value instanceof Uint8Array
        ? Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('base64')
        : '';
    case 'int32':
    case 'uint32':
    case 'double':
      return Number(value ?? 0);
    case 'int64':
    case 'uint64':
      return typeof value === 'string' || typeof value === 'number' || typeof value === 'bigint'
        ? String(value)
        : '0';
    case 'enum': {
      const names = schema.enumValues(field.typeName ?? '');
      return typeof value === 'number' ? (names[value] ?? value) : (value ?? names[0]);
    }
    case 'message':
      if (value === null || value === undefined) return null;
      if (field.typeName === TIMESTAMP) return encodeTimestamp(value);
      return encodeMessage(schema, field.typeName ?? '', value as ProtoMessage, style);
    case 'map': {
      const out: Record<string, unknown> = {};
      if (isPlainObject(value) && field.map !== undefined)
        for (const [k, v] of Object.entries(value))
          out[k] = encodeSingle(schema, field.map.value, v, style);
      return out;
    }
  }
}

/** Encodes a message as grpc-gateway would (EmitDefaults), with the given field names. */
export function encodeMessage(
  schema: ProtoSchema,
  type: string,
  message: ProtoMessage,
  style: NameStyle,
): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const field of schema.message(type).fields) {
    const key = style === 'proto' ? field.name : field.jsonName;
    const value = message[field.name];
    out[key] = field.repeated
      ? (Array.isArray(value) ? value : []).map((v) => encodeSingle(schema, field, v, style))
      : encodeSingle(schema, field, value, style);
  }
  return out;
}
