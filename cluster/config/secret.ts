/**
 * A wrapper that keeps secret strings (passwords, URLs with credentials, passphrases) out of logs.
 */
import { inspect } from 'node:util';

const REDACTED = '[redacted]';

/**
 * A secret string. Every way a value usually reaches a log or a response (string conversion,
 * template literals, `JSON.stringify`, `util.inspect`, `console.log`) yields `'[redacted]'`; only
 * an explicit {@link Secret.reveal} returns the value, so each use of the secret is greppable.
 *
 * The value lives in a private field, so it is also invisible to `Object.keys`, spreads and
 * structured logging serializers that walk own properties.
 */
export class Secret {
  readonly #value: string;

  /** @param value - the secret; kept as is (no trimming) */
  constructor(value: string) {
    this.#value = value;
  }

  /** The secret value. Call only where the value is handed to the library that needs it. */
  reveal(): string {
    return this.#value;
  }

  /** Always `'[redacted]'`. */
  toString(): string {
    return REDACTED;
  }

  /** Always `'[redacted]'`, so `JSON.stringify` (and pino) never serialize the value. */
  toJSON(): string {
    return REDACTED;
  }

  /** Always `'[redacted]'`, for template literals and `+` concatenation. */
  [Symbol.toPrimitive](): string {
    return REDACTED;
  }

  /** Always `'[redacted]'`, for `util.inspect` and `console.log`. */
  [inspect.custom](): string {
    return REDACTED;
  }
}
