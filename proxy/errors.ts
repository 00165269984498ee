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
  /** The listener or the health endpoint cannot listen: its port is in use, or not allowed. */
  Listen: 'PROXY_LISTEN',
  /** Another running proxy holds the state directory (its lock names the pid). */
  StateInUse: 'PROXY_STATE_IN_USE',
  /** `status`: no proxy answers at the health endpoint of the configuration. */
  NotRunning: 'PROXY_NOT_RUNNING',
  /** Anything else: an unexpected failure (report it, with the message). */
  Internal: 'PROXY_INTERNAL',
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

/**
 * A file-system error in words, with its path (the error's, else `fallbackPath`) and code:
 * `/x/y: is a directory, not a file (EISDIR)`.
 */
export function fsFailure(err: unknown, fallbackPath?: string): string {
  if (!(err instanceof Error)) return String(err);
  const { code } = err as NodeJS.ErrnoException;
  // Some calls (readFile) leave the path out of the error.
  const path = (err as NodeJS.ErrnoException).path ?? fallbackPath;
  const what: Record<string, string> = {
    ENOENT: 'does not exist',
    EISDIR: 'is a directory, not a file',
    ENOTDIR: 'a file is in the place of a directory',
    EEXIST: 'exists, and is not a directory',
    EACCES: 'permission denied',
    EPERM: 'operation not permitted',
    EROFS: 'read-only file system',
    ENOSPC: 'no space left on the device',
  };
  const text = (code === undefined ? undefined : what[code]) ?? err.message;
  return `${path === undefined ? '' : `${path}: `}${text}${code === undefined ? '' : ` (${code})`}`;
}
