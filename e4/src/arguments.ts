/**
 * Type checks at the library's entry points. TypeScript callers cannot pass a string where bytes
 * are expected, but plain JavaScript callers can: without these checks a string payload was
 * protected as zero bytes of its length (its content silently lost), and a missing argument was
 * a bare `TypeError`. Messages name the argument and the type given, never the value.
 */
import { MESSAGE_MAX_BYTES } from './constants.ts';
import { E4Error, E4ErrorCode } from './errors.ts';

function typeOf(value: unknown): string {
  if (value === null) return 'null';
  if (typeof value !== 'object') return typeof value;
  const prototype = Object.getPrototypeOf(value) as { constructor?: { name?: unknown } } | null;
  const constructorName = prototype?.constructor?.name;
  return typeof constructorName === 'string' ? constructorName : 'object';
}

/** @throws E4Error `InvalidArgument` unless `value` is a `Uint8Array` (a `Buffer` is one) */
export function requireBytes(value: unknown, what: string): asserts value is Uint8Array {
  if (!(value instanceof Uint8Array)) {
    throw new E4Error(
      E4ErrorCode.InvalidArgument,
      `${what} must be a Uint8Array, got ${typeOf(value)}`,
    );
  }
}

/**
 * An array of byte arrays (AES-SIV's associated data): each element is checked, since a string
 * or a number in it was taken as zero bytes of its length, or as none.
 * @throws E4Error `InvalidArgument` unless `value` is an array of `Uint8Array`s
 */
export function requireBytesArray(
  value: unknown,
  what: string,
): asserts value is readonly Uint8Array[] {
  if (!Array.isArray(value)) {
    throw new E4Error(
      E4ErrorCode.InvalidArgument,
      `${what} must be an array of Uint8Array, got ${typeOf(value)}`,
    );
  }
  // The element's name is built only for the error: this runs on every message.
  for (let i = 0; i < value.length; i++)
    if (!(value[i] instanceof Uint8Array)) requireBytes(value[i], `${what}[${i}]`);
}

/** @throws E4Error `InvalidArgument` unless `value` is a bigint */
export function requireBigInt(value: unknown, what: string): asserts value is bigint {
  if (typeof value !== 'bigint') {
    throw new E4Error(
      E4ErrorCode.InvalidArgument,
      `${what} must be a bigint, got ${typeOf(value)}`,
    );
  }
}

/** @throws E4Error `InvalidArgument` unless `value` is a string */
export function requireString(value: unknown, what: string): asserts value is string {
  if (typeof value !== 'string') {
    throw new E4Error(
      E4ErrorCode.InvalidArgument,
      `${what} must be a string, got ${typeOf(value)}`,
    );
  }
}

/** @throws E4Error `InvalidArgument` unless `value` is a function */
export function requireFunction(
  value: unknown,
  what: string,
): asserts value is (...args: never[]) => unknown {
  if (typeof value !== 'function') {
    throw new E4Error(
      E4ErrorCode.InvalidArgument,
      `${what} must be a function, got ${typeOf(value)}`,
    );
  }
}

/** @throws E4Error `InvalidArgument` unless `value` is a non-null object */
export function requireObject(value: unknown, what: string): asserts value is object {
  if (typeof value !== 'object' || value === null) {
    throw new E4Error(
      E4ErrorCode.InvalidArgument,
      `${what} must be an object, got ${typeOf(value)}`,
    );
  }
}

/**
 * Bytes no longer than an MQTT packet can carry.
 * @throws E4Error `InvalidArgument` for another type, `PayloadTooLarge` past
 *   {@link MESSAGE_MAX_BYTES}
 */
export function requireMessageBytes(value: unknown, what: string): asserts value is Uint8Array {
  requireBytes(value, what);
  if (value.length > MESSAGE_MAX_BYTES) {
    throw new E4Error(
      E4ErrorCode.PayloadTooLarge,
      `${what} of ${value.length} bytes is larger than an MQTT packet can carry (${MESSAGE_MAX_BYTES} bytes)`,
    );
  }
}

/**
 * A `Map` from strings to byte arrays (a state's topic keys, a PK client's peer keys): every entry
 * is checked, as a string value was encoded as garbage and a plain object read as no entries.
 * Entry keys are not quoted: a damaged map can hold anything there.
 * @throws E4Error `InvalidArgument` unless `value` is such a `Map`
 */
export function requireBytesMap(
  value: unknown,
  what: string,
): asserts value is ReadonlyMap<string, Uint8Array> {
  if (!(value instanceof Map)) {
    throw new E4Error(
      E4ErrorCode.InvalidArgument,
      `${what} must be a Map of Uint8Array, got ${typeOf(value)}`,
    );
  }
  for (const [key, bytes] of value as Map<unknown, unknown>) {
    requireString(key, `${what} key`);
    requireBytes(bytes, `${what} entry`);
  }
}

/** @throws E4Error `InvalidArgument` unless `value` is an instance of `type` */
export function requireInstance<T>(
  value: unknown,
  type: abstract new (...args: never[]) => T,
  what: string,
): asserts value is T {
  if (!(value instanceof type)) {
    throw new E4Error(
      E4ErrorCode.InvalidArgument,
      `${what} must be a ${type.name}, got ${typeOf(value)}`,
    );
  }
}
