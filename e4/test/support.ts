// Shared helpers of the e4/ unit, property and fuzz tests (not a test file itself).
import assert from 'node:assert/strict';
import { inspect } from 'node:util';
import fc from 'fast-check';
import { E4Error, toHex, type Clock, type E4ErrorCode } from '../index.ts';

/** Calls a library function with values its types forbid, as plain JavaScript can. */
export const loose = <T extends (...args: never[]) => unknown>(
  fn: T,
): ((...args: unknown[]) => ReturnType<T>) =>
  fn as unknown as (...args: unknown[]) => ReturnType<T>;

/** Asserts that `fn` throws an {@link E4Error}, with `code` when given; returns the error. */
export function throwsE4(fn: () => unknown, code?: E4ErrorCode, message?: string): E4Error {
  let caught: unknown;
  try {
    fn();
  } catch (err) {
    caught = err;
  }
  return checkE4(caught, code, message);
}

/** Asserts that `promise` rejects with an {@link E4Error}, with `code` when given. */
export async function rejectsE4(
  promise: Promise<unknown>,
  code?: E4ErrorCode,
  message?: string,
): Promise<E4Error> {
  let caught: unknown;
  try {
    await promise;
  } catch (err) {
    caught = err;
  }
  return checkE4(caught, code, message);
}

function checkE4(caught: unknown, code: E4ErrorCode | undefined, message?: string): E4Error {
  const context = message === undefined ? '' : ` (${message})`;
  assert.ok(caught !== undefined, `expected an E4Error${context}, nothing was thrown`);
  assert.ok(caught instanceof E4Error, `expected an E4Error${context}, got ${inspect(caught)}`);
  if (code !== undefined) assert.equal(caught.code, code, `error code${context}`);
  return caught;
}

/**
 * Asserts byte equality by content, whatever the concrete class (`open` returns node Buffers,
 * which `deepStrictEqual` would tell apart from plain Uint8Arrays).
 */
export function assertBytes(actual: Uint8Array, expected: Uint8Array, message?: string): void {
  assert.ok(actual instanceof Uint8Array, 'not a Uint8Array');
  assert.equal(toHex(actual), toHex(expected), message);
}

/** A clock that the test moves by hand: `clock.now` is in milliseconds. */
export interface ManualClock {
  readonly clock: Clock;
  now: number;
}

/** A {@link ManualClock} starting at `startMs`. */
export function manualClock(startMs: number): ManualClock {
  const state: ManualClock = {
    now: startMs,
    clock: () => state.now,
  };
  return state;
}

/** A fixed clock in milliseconds. */
export function fixedClock(ms: number): Clock {
  return () => ms;
}

/** A new array with bit `bit` (0 = least significant bit of byte 0) inverted. */
export function flipBit(bytes: Uint8Array, bit: number): Uint8Array {
  const out = new Uint8Array(bytes);
  const index = Math.floor(bit / 8);
  out[index] = (out[index] ?? 0) ^ (1 << (bit % 8));
  return out;
}

/** Bytes `0, 1, ..., length - 1` (mod 256). */
export function sequentialBytes(length: number): Uint8Array {
  return Uint8Array.from({ length }, (_, i) => i & 0xff);
}

/** A 1 ms pause, to let other queued work run. */
export function tick(ms = 1): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * One code point as a string, ASCII-biased: Unicode scalar values only, or any code point
 * (lone surrogates included) with `surrogates`. Built by hand because fast-check's `binary` unit
 * maps the whole code space on construction, which costs about a second.
 */
export function codePointChar(surrogates = false): fc.Arbitrary<string> {
  const wide = surrogates
    ? [fc.integer({ min: 0, max: 0x10ffff })]
    : [fc.integer({ min: 0, max: 0xd7ff }), fc.integer({ min: 0xe000, max: 0x10ffff })];
  return fc
    .oneof({ arbitrary: fc.integer({ min: 0x20, max: 0x7e }), weight: 3 }, ...wide)
    .map((cp) => String.fromCodePoint(cp));
}
