/** Time: the injectable clock and the reference timestamp checks (e4go `ValidateTimestamp`). */
import { requireFunction } from './arguments.ts';
import { MAX_DELAY_SECONDS, MAX_KEY_TRANSITION_SECONDS } from './constants.ts';
import { E4Error, E4ErrorCode, referenceError } from './errors.ts';

/**
 * A clock returning the current time in **milliseconds** since the Unix epoch, like `Date.now`.
 * Sub-second precision matters: e4go compares whole-second timestamps against a precise clock.
 * A reading that is not a finite number (an unset RTC read as `NaN`) is refused with
 * `InvalidArgument` wherever the clock is read. A clock in seconds is not detected: it stamps
 * 1970 timestamps and sees every received message as `TimestampInFuture`.
 */
export type Clock = () => number;

/** The system clock. */
export const systemClock: Clock = () => Date.now();

/**
 * A clock reading, checked: a clock that is not set (an RTC read as `NaN`) would otherwise turn
 * the timestamp window off, since every comparison with `NaN` is false and every message would
 * be accepted however old; a `bigint` or `Infinity` would be a bare TypeError or RangeError.
 * @throws E4Error `InvalidArgument` unless the clock is a function whose reading is a finite
 *   number (milliseconds)
 */
function readClock(clock: Clock): number {
  requireFunction(clock, 'clock'); // `null` from plain JavaScript (`undefined` is the default)
  const now: unknown = clock();
  if (typeof now !== 'number' || !Number.isFinite(now)) {
    const got = typeof now === 'number' ? String(now) : typeof now;
    throw new E4Error(
      E4ErrorCode.InvalidArgument,
      `clock must return milliseconds since the Unix epoch as a finite number, got ${got}`,
    );
  }
  return now;
}

/**
 * Whole Unix seconds of a clock reading (what goes on the wire).
 * @throws E4Error `InvalidArgument` when the clock does not return a finite number
 */
export function unixSeconds(clock: Clock): bigint {
  return BigInt(Math.floor(readClock(clock) / 1000));
}

function checkWindow(tsSeconds: bigint, nowMs: number, maxAgeSeconds: number): void {
  const tsMs = Number(tsSeconds) * 1000;
  if (nowMs < tsMs) throw referenceError('TimestampInFuture');
  if (tsMs < nowMs - maxAgeSeconds * 1000) throw referenceError('TimestampTooOld');
}

/**
 * Accepts a message timestamp when `now - 10 min <= ts <= now`, with no tolerance for the
 * future (as e4go). `ts` is the signed reading of the 8 wire bytes, so a negative value (a
 * uint64 above 2^63) is too old.
 * @throws E4Error `TimestampInFuture` or `TimestampTooOld`; `InvalidArgument` when the clock does
 *   not return a finite number
 */
export function validateTimestamp(ts: bigint, clock: Clock): void {
  checkWindow(ts, readClock(clock), MAX_DELAY_SECONDS);
}

/**
 * Accepts a transition key while `now - 60 min <= changedAt <= now` (e4go `ValidateTimestampKey`).
 * @throws E4Error `TimestampInFuture` or `TimestampTooOld`; `InvalidArgument` when the clock does
 *   not return a finite number
 */
export function validateTransitionTimestamp(changedAt: bigint, clock: Clock): void {
  checkWindow(changedAt, readClock(clock), MAX_KEY_TRANSITION_SECONDS);
}
