/** Typed reads of proto-loader request messages (both surfaces fill every field's default). */
import { C2Error } from '../../cluster/errors.ts';
import type { ProtoMessage } from '../codec/protos.ts';

/** A string field ('' when absent). */
export function stringField(message: ProtoMessage, key: string): string {
  const value = message[key];
  return typeof value === 'string' ? value : '';
}

/** A bool field. */
export function boolField(message: ProtoMessage, key: string): boolean {
  return message[key] === true;
}

/** A uint32/int32 field (0 when absent). */
export function numberField(message: ProtoMessage, key: string): number {
  const value = message[key];
  return typeof value === 'number' ? value : Number(value ?? 0);
}

/** A bytes field, or `undefined` when empty (proto3 cannot tell empty from absent). */
export function bytesField(message: ProtoMessage, key: string): Uint8Array | undefined {
  const value = message[key];
  return value instanceof Uint8Array && value.length > 0 ? value : undefined;
}

/**
 * An int64 field as a JS number. Values beyond 2^53 are clamped (a huge `count` then means "as
 * many as allowed", and the domain caps it; a huge negative stays negative and is rejected).
 */
export function int64Field(message: ProtoMessage, key: string): number {
  const value = message[key];
  const text = typeof value === 'string' || typeof value === 'number' ? String(value) : '0';
  if (!/^-?\d+$/.test(text)) return Number.NaN;
  const n = BigInt(text);
  if (n > BigInt(Number.MAX_SAFE_INTEGER)) return Number.MAX_SAFE_INTEGER;
  if (n < -BigInt(Number.MAX_SAFE_INTEGER)) return -1;
  return Number(n);
}

/**
 * The `name` of a required `Client` sub-message (`client`, `sourceClient`, `targetClient`).
 * The name itself is checked by the domain (which names the field in its error).
 * @throws C2Error `C2_VALIDATION` when the sub-message is missing
 */
export function clientNameField(message: ProtoMessage, key: string): string {
  const client = message[key];
  if (typeof client !== 'object' || client === null) {
    const what = key === 'client' ? 'a client' : `a ${key.replace('Client', '')} client`;
    throw new C2Error('C2_VALIDATION', `${what} is required`, { details: { field: key } });
  }
  return stringField(client as ProtoMessage, 'name');
}
