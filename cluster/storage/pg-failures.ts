/**
 * Which PostgreSQL failures mean "the database is unreachable or did not answer in time", and
 * their translation into `C2_UNAVAILABLE`: a client should retry those (with its idempotency
 * key), unlike a bug, which stays `C2_INTERNAL`. Messages never quote the driver's text (it can
 * name hosts and users); the original error stays as `cause`, for the logs.
 */
import { C2Error } from '../errors.ts';

/** The message of node-postgres' own client-side timeout (`query_timeout`). */
const READ_TIMEOUT_MESSAGE = 'Query read timeout';

/** Socket errors of a connection that failed or went away. */
const SOCKET_ERRNOS = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
]);

/**
 * SQLSTATEs of an unavailable server: query_canceled (our `statement_timeout`), admin_shutdown,
 * crash_shutdown, cannot_connect_now, too_many_connections; class 08 (connection exception) is
 * matched by prefix.
 */
const UNAVAILABLE_SQLSTATES = new Set(['57014', '57P01', '57P02', '57P03', '53300']);

/** node-postgres' messages for a connection that ended or could not be made in time. */
const CONNECTION_MESSAGES = [
  'Connection terminated',
  'timeout exceeded when trying to connect',
  'Client has encountered a connection error and is not queryable',
];

/**
 * object_not_in_prerequisite_state, unavailable only with this message: the database refuses new
 * connections (`ALLOW_CONNECTIONS false`, e.g. during maintenance or a restore).
 */
const NOT_ACCEPTING_CONNECTIONS = { code: '55000', text: 'is not currently accepting connections' };

function fieldOf(err: unknown, field: 'code' | 'message'): string | undefined {
  if (typeof err !== 'object' || err === null) return undefined;
  const value = (err as Record<string, unknown>)[field];
  return typeof value === 'string' ? value : undefined;
}

/** Whether `err` is node-postgres' client-side timeout: the server never answered. */
export function isQueryReadTimeout(err: unknown): boolean {
  return fieldOf(err, 'message') === READ_TIMEOUT_MESSAGE;
}

/**
 * The `C2_UNAVAILABLE` error for a failure of the database connection or a statement that ran
 * out of time, or `undefined` when `err` is anything else (a constraint, a bug, a C2Error).
 */
export function databaseUnavailable(err: unknown): C2Error | undefined {
  if (C2Error.is(err)) return undefined;
  const code = fieldOf(err, 'code');
  const message = fieldOf(err, 'message') ?? '';
  if (isQueryReadTimeout(err)) {
    return new C2Error('C2_UNAVAILABLE', 'the database did not answer in time; retry', {
      cause: err,
    });
  }
  if (code === '57014') {
    return new C2Error(
      'C2_UNAVAILABLE',
      'a database statement ran out of time (E4C2_DB_QUERY_TIMEOUT_MS); retry',
      { cause: err },
    );
  }
  const connection =
    (code !== undefined &&
      (SOCKET_ERRNOS.has(code) || UNAVAILABLE_SQLSTATES.has(code) || code.startsWith('08'))) ||
    CONNECTION_MESSAGES.some((m) => message.startsWith(m)) ||
    (code === NOT_ACCEPTING_CONNECTIONS.code && message.includes(NOT_ACCEPTING_CONNECTIONS.text));
  return connection
    ? new C2Error('C2_UNAVAILABLE', 'the database connection failed; retry', { cause: err })
    : undefined;
}

/** `err` as `C2_UNAVAILABLE` when it is a database availability failure, else unchanged. */
export function translateDatabaseFailure(err: unknown): unknown {
  return databaseUnavailable(err) ?? err;
}
