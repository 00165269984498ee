/**
 * Typed errors of the C2 layers (`cluster/`, and through it `api/` and `worker/`).
 *
 * Every failure the C2 reports on purpose is a {@link C2Error} with a stable {@link C2ErrorCode}.
 * Callers match on `code`, never on `message`; `api/` owns the one table that maps codes to gRPC
 * and HTTP statuses. Messages and `details` never contain key material or other secrets (DESIGN
 * R8): they end up in logs and, for most codes, in API responses.
 */

/** Stable error codes. Adding a code is allowed; renaming or removing one is a breaking change. */
export const C2ErrorCode = {
  /** A request or input is malformed or out of range. */
  C2_VALIDATION: 'C2_VALIDATION',
  /** The named entity (client, topic, key version, ...) does not exist. */
  C2_NOT_FOUND: 'C2_NOT_FOUND',
  /** The entity to create exists already. */
  C2_ALREADY_EXISTS: 'C2_ALREADY_EXISTS',
  /**
   * A concurrent change won: a version compare-and-set matched no row, or an idempotency key was
   * reused for a different request. Retrying after re-reading may succeed.
   */
  C2_CONFLICT: 'C2_CONFLICT',
  /** The operation does not exist in the configured crypto mode (symkey or pubkey). */
  C2_CRYPTO_MODE: 'C2_CRYPTO_MODE',
  /** The system is not in the state the operation requires (and retrying will not change it). */
  C2_FAILED_PRECONDITION: 'C2_FAILED_PRECONDITION',
  /** The caller did not prove who it is. */
  C2_UNAUTHENTICATED: 'C2_UNAUTHENTICATED',
  /** The caller is known but its role does not allow the operation. */
  C2_PERMISSION_DENIED: 'C2_PERMISSION_DENIED',
  /** A dependency (Postgres, Redis, the broker, a KEK provider) is down or timed out. */
  C2_UNAVAILABLE: 'C2_UNAVAILABLE',
  /** The configuration is invalid; raised at start-up only. */
  C2_CONFIG: 'C2_CONFIG',
  /** Key material cannot be sealed or opened (wrong KEK, tampered or misplaced ciphertext). */
  C2_KEY_VAULT: 'C2_KEY_VAULT',
  /** A bug or an unexpected failure; clients see a generic message. */
  C2_INTERNAL: 'C2_INTERNAL',
} as const;

/** Union of every stable C2 error code. */
export type C2ErrorCode = (typeof C2ErrorCode)[keyof typeof C2ErrorCode];

/**
 * Structured facts about an error that are safe to show to API clients (ids, names, versions,
 * limits). Never secrets, never key material.
 */
export type C2ErrorDetails = Readonly<Record<string, string | number | boolean>>;

/** Options of {@link C2Error}: the standard `cause` plus client-safe `details`. */
export interface C2ErrorOptions extends ErrorOptions {
  /** Client-safe structured facts; see {@link C2ErrorDetails}. */
  readonly details?: C2ErrorDetails;
}

/**
 * The error every C2 operation throws on purpose.
 *
 * `code` is stable; `message` is for humans and free of secrets; `cause` keeps the underlying
 * error for logs (it may hold driver messages, so `api/` does not send it to clients).
 */
export class C2Error extends Error {
  override readonly name: string = 'C2Error';

  /** Client-safe structured facts, when the thrower has any. */
  readonly details?: C2ErrorDetails;

  /**
   * @param code - stable machine-readable code
   * @param message - human-readable description, free of secrets
   * @param options - standard `cause` and client-safe `details`
   */
  constructor(
    readonly code: C2ErrorCode,
    message: string,
    options?: C2ErrorOptions,
  ) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    if (options?.details !== undefined) this.details = Object.freeze({ ...options.details });
  }

  /** True when `err` is a {@link C2Error}, optionally with the given code. */
  static is(err: unknown, code?: C2ErrorCode): err is C2Error {
    return err instanceof C2Error && (code === undefined || err.code === code);
  }

  /**
   * Returns `err` itself when it is a {@link C2Error}, otherwise wraps it as `C2_INTERNAL` with the
   * original as `cause` (its message is not copied: foreign messages may carry secrets).
   */
  static from(err: unknown, message = 'internal error'): C2Error {
    return C2Error.is(err) ? err : new C2Error(C2ErrorCode.C2_INTERNAL, message, { cause: err });
  }
}
