/**
 * The CLI's errors and exit codes. Every failure ends as a {@link CliError} whose `exitCode` is
 * one of {@link ExitCode}; gRPC status errors are translated by {@link fromGrpcError}, the one
 * table from gRPC codes to exit codes.
 */
import { status as GrpcStatus } from '@grpc/grpc-js';

/** The documented exit codes (docs/cli.md). */
export const ExitCode = {
  /** The command did what it was asked. */
  Ok: 0,
  /** The server refused: NOT_FOUND, INVALID_ARGUMENT, FAILED_PRECONDITION, ABORTED, ... */
  Refused: 1,
  /** Usage or local input error: unknown verb, missing or extra flags, unreadable file, bad key. */
  Usage: 2,
  /** No answer: the server is unreachable or unavailable, TLS failed, or the deadline passed. */
  Unreachable: 3,
  /** Internal error: the server's INTERNAL, UNKNOWN or DATA_LOSS, or a bug in the CLI itself. */
  Internal: 4,
  /** Interrupted (Ctrl-C) while a unary call was in flight; streams end with 0 instead. */
  Interrupted: 130,
} as const;

/** One of {@link ExitCode}. */
export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];

/** Options of {@link CliError}. */
export interface CliErrorOptions extends ErrorOptions {
  /**
   * Name of the gRPC status, printed after the message: `error: ... (NOT_FOUND)`, with the C2's
   * stable code when its server sent one that says more (`ABORTED, C2_CONFLICT`).
   */
  readonly grpcCode?: string;
  /** A second line that tells the user what to try. */
  readonly hint?: string;
  /** Print the usage of this command path (or of the whole CLI for `[]`) after the message. */
  readonly usageOf?: readonly string[];
}

/** A failure with the exit code the process should end with. */
export class CliError extends Error {
  override readonly name = 'CliError';
  /** See {@link CliErrorOptions.grpcCode}. */
  readonly grpcCode: string | undefined;
  /** See {@link CliErrorOptions.hint}. */
  readonly hint: string | undefined;
  /** See {@link CliErrorOptions.usageOf}. */
  readonly usageOf: readonly string[] | undefined;

  /**
   * @param exitCode - the process exit code
   * @param message - one line for the user, without the `error: ` prefix
   * @param options - gRPC code, hint, usage to print, cause
   */
  constructor(
    readonly exitCode: ExitCode,
    message: string,
    options: CliErrorOptions = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.grpcCode = options.grpcCode;
    this.hint = options.hint;
    this.usageOf = options.usageOf;
  }

  /** A usage error (exit 2) that prints the usage of `command` after the message. */
  static usage(message: string, command: readonly string[]): CliError {
    return new CliError(ExitCode.Usage, message, { usageOf: command });
  }

  /** A local input error (exit 2): unreadable file, malformed key or base64, invalid name. */
  static input(message: string, options: CliErrorOptions = {}): CliError {
    return new CliError(ExitCode.Usage, message, options);
  }

  /** True for a CliError. */
  static is(err: unknown): err is CliError {
    return err instanceof CliError;
  }
}

/** The shape of a gRPC status error (`@grpc/grpc-js` ServiceError, or a fake's). */
export interface GrpcStatusError {
  readonly code: GrpcStatus;
  readonly details: string;
  /** The trailers of an answer (grpc-js `ServiceError.metadata`); none when nothing answered. */
  readonly metadata?: { get(key: string): unknown[] };
}

/**
 * The C2's stable error code when the server itself answered (our servers send it as the
 * `e4c2-error-code` trailer); undefined for a failure of the connection.
 */
export function serverErrorCode(err: GrpcStatusError): string | undefined {
  const value = err.metadata?.get('e4c2-error-code')[0];
  return typeof value === 'string' && value !== '' ? value : undefined;
}

/** True when `err` carries a numeric gRPC status code. */
export function isGrpcStatusError(err: unknown): err is GrpcStatusError & Error {
  return (
    err instanceof Error &&
    typeof (err as Partial<GrpcStatusError>).code === 'number' &&
    typeof (err as Partial<GrpcStatusError>).details === 'string'
  );
}

/** The name of a gRPC status code (`5` is `NOT_FOUND`). */
export function grpcCodeName(code: GrpcStatus): string {
  return (GrpcStatus as Record<number, string | undefined>)[code] ?? `CODE_${String(code)}`;
}

/** What {@link fromGrpcError} needs to know to phrase connection failures. */
export interface ConnectionFacts {
  /** `host:port` the CLI dialed. */
  readonly endpoint: string;
  /** How it dialed. */
  readonly transport: 'insecure' | 'tls-cert' | 'tls-system';
  /** True when it presented a client certificate (`--client-cert`, mutual TLS). */
  readonly clientCert: boolean;
  /** The per-call deadline, in milliseconds. */
  readonly timeoutMs: number;
}

const EXIT_BY_STATUS: Readonly<Partial<Record<GrpcStatus, ExitCode>>> = {
  [GrpcStatus.CANCELLED]: ExitCode.Interrupted,
  [GrpcStatus.UNKNOWN]: ExitCode.Internal,
  [GrpcStatus.INVALID_ARGUMENT]: ExitCode.Refused,
  [GrpcStatus.DEADLINE_EXCEEDED]: ExitCode.Unreachable,
  [GrpcStatus.NOT_FOUND]: ExitCode.Refused,
  [GrpcStatus.ALREADY_EXISTS]: ExitCode.Refused,
  [GrpcStatus.PERMISSION_DENIED]: ExitCode.Refused,
  [GrpcStatus.RESOURCE_EXHAUSTED]: ExitCode.Refused,
  [GrpcStatus.FAILED_PRECONDITION]: ExitCode.Refused,
  [GrpcStatus.ABORTED]: ExitCode.Refused,
  [GrpcStatus.OUT_OF_RANGE]: ExitCode.Refused,
  [GrpcStatus.UNIMPLEMENTED]: ExitCode.Refused,
  [GrpcStatus.INTERNAL]: ExitCode.Internal,
  [GrpcStatus.UNAVAILABLE]: ExitCode.Unreachable,
  [GrpcStatus.DATA_LOSS]: ExitCode.Internal,
  [GrpcStatus.UNAUTHENTICATED]: ExitCode.Refused,
};

/** The exit code for a gRPC status code. */
export function exitCodeForStatus(code: GrpcStatus): ExitCode {
  return EXIT_BY_STATUS[code] ?? ExitCode.Internal;
}

const TLS_TROUBLE = /certificate|self[- ]signed|ssl|tls|handshake|wrong version number|altnames/i;
const NOT_LISTENING = /ECONNREFUSED|ENOTFOUND|EHOSTUNREACH|ENETUNREACH|EAI_AGAIN|ECONNRESET/;
/**
 * TLS alerts the server sends about the client's own certificate: none given (`tlsv13 alert
 * certificate required`), or one it does not accept (`sslv3 alert bad certificate`, `tlsv1 alert
 * unknown ca`, ...). OpenSSL names a received alert `alert ...`; a failed check of the server's
 * certificate by the CLI itself (`self-signed certificate`, `certificate verify failed`) is not.
 */
const CLIENT_CERT_ALERT =
  /alert (?:certificate required|bad certificate|unknown ca|certificate unknown|certificate expired|certificate revoked|unsupported certificate|access denied)/i;
/**
 * How grpc-js reports a connection the server closed: with TLS 1.3 the server checks a client
 * certificate after the client considers the handshake done, so a refused one often arrives as a
 * reset rather than as the alert.
 */
const CLOSED_BY_SERVER = /ECONNRESET|Failed to connect|Connection dropped|socket hang up/i;
const CLIENT_CERT_FLAGS =
  '--client-cert FILE --client-key FILE (or E4C2_CLIENT_CERT and E4C2_CLIENT_KEY)';

/** The hint for a server that wants, or refused, a client certificate; undefined otherwise. */
function clientCertHint(details: string, facts: ConnectionFacts): string | undefined {
  if (facts.transport === 'insecure') return undefined;
  if (CLIENT_CERT_ALERT.test(details)) {
    return facts.clientCert
      ? `the server refused the client certificate: pass one issued by the CA it trusts (its E4C2_TLS_CLIENT_CA), still valid, with ${CLIENT_CERT_FLAGS}`
      : `the server requires a client certificate (mutual TLS): pass yours with ${CLIENT_CERT_FLAGS}; --cert is only for the server's certificate`;
  }
  if (facts.clientCert && CLOSED_BY_SERVER.test(details)) {
    return `the server closed the connection: if it requires client certificates, check that the one given with --client-cert is issued by the CA it trusts (its E4C2_TLS_CLIENT_CA) and still valid; else is the C2 running and listening on ${facts.endpoint}?`;
  }
  return undefined;
}

function connectionHint(details: string, facts: ConnectionFacts): string {
  if (/wrong version number|packet length too long|http request/i.test(details)) {
    return `the server does not speak TLS on ${facts.endpoint}: use --insecure for a plaintext server, or check the port`;
  }
  const clientCert = clientCertHint(details, facts);
  if (clientCert !== undefined) return clientCert;
  if (TLS_TROUBLE.test(details)) {
    return facts.transport === 'insecure'
      ? 'the server speaks TLS: drop --insecure and pass its certificate with --cert FILE'
      : 'TLS failed: pass the server certificate (or its CA) with --cert FILE (npm start prints its path), use --servername if the certificate names another host, or --insecure for a plaintext server';
  }
  if (NOT_LISTENING.test(details)) {
    return `is the C2 running and listening on ${facts.endpoint}? Set the address with -e/--endpoint or E4C2_ENDPOINT`;
  }
  if (facts.transport === 'insecure') {
    return 'if the server uses TLS, pass its certificate with --cert FILE instead of --insecure';
  }
  return 'check the address (-e/--endpoint), then --cert FILE for a TLS server or --insecure for a plaintext one';
}

/**
 * grpc-js phrases a failed connection as `No connection established. Last error: Error: <cause>.
 * Resolution note: <...>`; the cause is what the user needs.
 */
function cleanDetails(details: string): string {
  if (details === '') return 'no details';
  // OpenSSL's `<hex>:error:<code>:SSL routines:<function>:<reason>:<file>:<line>:` is noise but
  // for its reason.
  const ssl = /error:[0-9A-F]+:SSL routines:[^:]*:([^:]+)/.exec(details);
  if (ssl?.[1] !== undefined) return `TLS handshake failed: ${ssl[1]}`;
  const oneLine = details.replace(/\s+/g, ' ').trim();
  const cause = /Last error: (?:Error: )?(.*?)(?:\.? Resolution note:\s*(.*))?$/.exec(oneLine);
  if (cause === null) return oneLine;
  const note = cause[2]?.trim() ?? '';
  return `${cause[1] ?? oneLine}${note === '' ? '' : ` (${note})`}`;
}

/**
 * Translates a gRPC status error into a {@link CliError}: the server's refusals keep its message
 * and name the code; connection failures and timeouts name the endpoint and suggest a fix.
 */
export function fromGrpcError(err: GrpcStatusError, facts: ConnectionFacts): CliError {
  const name = grpcCodeName(err.code);
  const exitCode = exitCodeForStatus(err.code);
  const details = cleanDetails(err.details);
  const cause = err instanceof Error ? err : undefined;
  switch (err.code) {
    case GrpcStatus.UNAVAILABLE:
      // The C2 was reached and answered: what it lacks is behind it (the database, the lock
      // quorum), and TLS or address hints would send the operator the wrong way.
      if (serverErrorCode(err) !== undefined) {
        return new CliError(exitCode, `the C2 at ${facts.endpoint} is unavailable: ${details}`, {
          grpcCode: name,
          hint: 'a service the C2 depends on does not answer (its /readyz names which); the request can be retried as is, later',
          cause,
        });
      }
      return new CliError(exitCode, `cannot reach the C2 at ${facts.endpoint}: ${details}`, {
        grpcCode: name,
        hint: connectionHint(details, facts),
        cause,
      });
    case GrpcStatus.DEADLINE_EXCEEDED:
      return new CliError(
        exitCode,
        `no answer from the C2 at ${facts.endpoint} within ${facts.timeoutMs / 1000} s`,
        {
          grpcCode: name,
          hint: `raise --timeout, or check that ${facts.endpoint} is the C2's gRPC address (${connectionHint(details, facts)})`,
          cause,
        },
      );
    case GrpcStatus.CANCELLED:
      return new CliError(exitCode, 'interrupted', { grpcCode: name, cause });
    case GrpcStatus.UNIMPLEMENTED:
      return new CliError(exitCode, details, {
        grpcCode: name,
        hint: 'this server does not offer that call (a reference C2 has no e4c2.v1 API)',
        cause,
      });
    default: {
      // The C2's own code tells apart what one gRPC status covers (ABORTED: C2_CONFLICT or a
      // reused request id; FAILED_PRECONDITION: C2_CRYPTO_MODE or C2_FAILED_PRECONDITION).
      const c2Code = serverErrorCode(err);
      const label = c2Code === undefined || c2Code === `C2_${name}` ? name : `${name}, ${c2Code}`;
      return new CliError(exitCode, details, { grpcCode: label, cause });
    }
  }
}
