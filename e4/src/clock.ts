/** Time: the injectable clock and the reference timestamp checks (e4go `ValidateTimestamp`). */
import { MAX_DELAY_SECONDS, MAX_KEY_TRANSITION_SECONDS } from './constants.ts';
import { referenceError } from './errors.ts';

/**
 * A clock returning the current time in **milliseconds** since the Unix epoch, like `Date.now`.
 * Sub-second precision matters: e4go compares whole-second timestamps against a precise clock.
 */
export type Clock = () => number;

/** The system clock. */
export const systemClock: Clock = () => Date.now();

/** Whole Unix seconds of a clock reading (what goes on the wire). */
export function unixSeconds(clock: Clock): bigint {
  return BigInt(Math.floor(clock() / 1000));
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
 * @throws E4Error `TimestampInFuture` or `TimestampTooOld`
 */
export function validateTimestamp(ts: bigint, clock: Clock): void {
  checkWindow(ts, clock(), MAX_DELAY_SECONDS);
}

/**
 * Accepts a transition key while `now - 60 min <= changedAt <= now` (e4go `ValidateTimestampKey`).
 * @throws E4Error `TimestampInFuture` or `TimestampTooOld`
 */
export function validateTransitionTimestamp(changedAt: bigint, clock: Clock): void {
  checkWindow(changedAt, clock(), MAX_KEY_TRANSITION_SECONDS);
}
