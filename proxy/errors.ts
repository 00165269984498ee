/** Typed errors of the protection proxies, with stable codes (callers match on `code`). */

/** Stable error codes of `proxy/`. */
export const ProxyErrorCode = {
  /** The configuration file or a command-line option is invalid. */
  Config: 'PROXY_CONFIG',
  /** The local key or an encrypted key store cannot be read (wrong key, torn or foreign file). */
  KeyStore: 'PROXY_KEY_STORE',
  /** The upstream broker cannot be reached. */
  Upstream: 'PROXY_UPSTREAM',
  /** The C2 refused or failed a registration call. */
  Registration: 'PROXY_REGISTRATION',
} as const;

/** Union of the codes. */
export type ProxyErrorCode = (typeof ProxyErrorCode)[keyof typeof ProxyErrorCode];

/** The error the proxy throws; messages never contain key material or passwords. */
export class ProxyError extends Error {
  override readonly name = 'ProxyError';

  constructor(
    readonly code: ProxyErrorCode,
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }

  /** True when `err` is a {@link ProxyError} (with `code`, when given). */
  static is(err: unknown, code?: ProxyErrorCode): err is ProxyError {
    return err instanceof ProxyError && (code === undefined || err.code === code);
  }
}

/**
 * Why a `fetch` failed: its message and, when Node tells it only in the cause, the system error
 * code ("fetch failed (ECONNREFUSED)" rather than "fetch failed").
 */
export function fetchFailure(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const code = (err.cause as { code?: unknown } | undefined)?.code;
  return typeof code === 'string' ? `${err.message} (${code})` : err.message;
}
