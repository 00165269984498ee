/**
 * One run of the CLI, with every outside dependency injected (argv, environment, streams, the
 * API factory, the file reader), so tests drive it without a process or a server: parse, print
 * help or the version, or connect and run the command, then map any failure to its exit code.
 */
import { createPrivateKey, X509Certificate, type KeyObject } from 'node:crypto';
import type { C2Api } from './api.ts';
import { parseInvocation, type CommandTable } from './args.ts';
import { COMMAND_TABLE } from './commands/index.ts';
import {
  CliError,
  ExitCode,
  fromGrpcError,
  isGrpcStatusError,
  type ConnectionFacts,
} from './errors.ts';
import type { ConnectionOptions, TlsOptions } from './grpc-client.ts';
import { Output, printable, type TextSink } from './output.ts';
import type { CommandContext, GlobalOptions } from './spec.ts';
import { PROGRAM, renderUsage } from './usage.ts';

/** Everything a run needs from outside. */
export interface CliDeps {
  /** Arguments after the program name. */
  readonly argv: readonly string[];
  /** Environment variables (`E4C2_ENDPOINT`, `E4C2_CERT`, `E4C2_CLIENT_CERT`, ...). */
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly stdout: TextSink;
  readonly stderr: TextSink;
  /** Printed by `--version`. */
  readonly version: string;
  /** Opens the API; called only once the arguments are valid. */
  readonly connect: (options: ConnectionOptions) => C2Api;
  /** Reads key, password and certificate files. */
  readonly readFile: (path: string) => Promise<Uint8Array>;
  /** The permission bits of a file (to warn about a token or key file others can read), if known. */
  readonly fileMode?: (path: string) => Promise<number | undefined>;
  /** A fresh idempotency key (default for `--request-id`). */
  readonly newRequestId: () => string;
  /** Aborted on Ctrl-C. */
  readonly signal: AbortSignal;
  /** The commands; default {@link COMMAND_TABLE}. */
  readonly table?: CommandTable;
}

/** Runs the CLI once and returns the exit code; never throws. */
export async function runCli(deps: CliDeps): Promise<ExitCode> {
  const table = deps.table ?? COMMAND_TABLE;
  try {
    const invocation = parseInvocation(deps.argv, table, {
      env: deps.env,
      newRequestId: deps.newRequestId,
    });
    switch (invocation.kind) {
      case 'help':
        deps.stdout.write(renderUsage(invocation.path, table));
        return ExitCode.Ok;
      case 'version':
        deps.stdout.write(`${PROGRAM} ${deps.version}\n`);
        return ExitCode.Ok;
      case 'run': {
        const { command, flags, globals } = invocation;
        const facts = connectionFacts(globals);
        const tls = await tlsOptions(globals, deps);
        const token = await bearerToken(globals, deps);
        const api = deps.connect({
          endpoint: globals.endpoint,
          tls,
          ...(token === undefined ? {} : { token }),
          timeoutMs: globals.timeoutMs,
          userAgent: `${PROGRAM}-cli/${deps.version}`,
          signal: deps.signal,
        });
        const toCliError = (err: unknown): CliError => describeFailure(err, facts, deps.signal);
        // A command that reads the request id sends a mutating call with it: if no answer came,
        // the user needs it to learn the outcome without doing the change twice.
        const sent = { requestId: false };
        const tracked: GlobalOptions = Object.defineProperty({ ...globals }, 'requestId', {
          get: () => {
            sent.requestId = true;
            return globals.requestId;
          },
          enumerable: true,
        });
        const ctx: CommandContext = {
          api,
          out: new Output(deps.stdout, globals.json, deps.stderr),
          flags,
          globals: tracked,
          readFile: deps.readFile,
          signal: deps.signal,
          toCliError,
        };
        try {
          await command.run(ctx);
          return ExitCode.Ok;
        } catch (err) {
          const failure = toCliError(err);
          return report(
            sent.requestId ? withRetryHint(failure, globals.requestId) : failure,
            deps.stderr,
            table,
          );
        } finally {
          api.close();
        }
      }
    }
  } catch (err) {
    return report(describeFailure(err, undefined, deps.signal), deps.stderr, table);
  }
}

function connectionFacts(globals: GlobalOptions): ConnectionFacts {
  return {
    endpoint: globals.endpoint,
    transport: globals.insecure
      ? 'insecure'
      : globals.certFile === undefined
        ? 'tls-system'
        : 'tls-cert',
    clientCert: !globals.insecure && globals.clientCert !== undefined,
    timeoutMs: globals.timeoutMs,
  };
}

/** The bearer token named by the globals, read and checked. */
async function bearerToken(globals: GlobalOptions, deps: CliDeps): Promise<string | undefined> {
  if (globals.token === undefined) return undefined;
  let token: string;
  if (globals.token.from === 'env') token = globals.token.value.trim();
  else {
    try {
      token = Buffer.from(await deps.readFile(globals.token.path))
        .toString('utf8')
        .trim();
    } catch (err) {
      const reason = err instanceof Error ? err.message : String(err);
      throw CliError.input(`cannot read token file ${globals.token.path}: ${reason}`);
    }
    await warnIfReadableByOthers(globals.token.path, 'token file', deps);
  }
  if (!/^[A-Za-z0-9._~+/-]{16,512}=*$/.test(token))
    throw CliError.input(
      `the API token ${globals.token.from === 'env' ? 'in E4C2_TOKEN' : `in ${globals.token.path}`} is malformed: expected 16 to 512 token characters`,
      { hint: 'create one with: e4c2 token new --name NAME --role ROLE' },
    );
  return token;
}

/** Warns, as ssh does for keys, about a secret others can read: it is as good as theirs. */
async function warnIfReadableByOthers(path: string, what: string, deps: CliDeps): Promise<void> {
  const mode = await deps.fileMode?.(path).catch(() => undefined);
  if (mode === undefined || (mode & 0o077) === 0) return;
  deps.stderr.write(
    `warning: ${what} ${path} is readable by others (mode ${(mode & 0o777).toString(8).padStart(4, '0')}); run "chmod 600 ${path}"\n`,
  );
}

async function tlsOptions(globals: GlobalOptions, deps: CliDeps): Promise<TlsOptions> {
  if (globals.insecure) return { kind: 'insecure' };
  const rootCerts =
    globals.certFile === undefined ? undefined : await serverCertificate(globals.certFile, deps);
  const clientCert =
    globals.clientCert === undefined
      ? undefined
      : await clientCertificate(globals.clientCert, deps);
  return {
    kind: 'tls',
    ...(rootCerts === undefined ? {} : { rootCerts }),
    ...(globals.servername === undefined ? {} : { servername: globals.servername }),
    ...(clientCert === undefined ? {} : { clientCert }),
  };
}

/** A local file the TLS set-up needs, or exit 2 naming it (never its content). */
async function readTlsFile(
  path: string,
  what: string,
  hint: string,
  deps: CliDeps,
): Promise<Uint8Array> {
  try {
    return await deps.readFile(path);
  } catch (err) {
    const reason = err instanceof Error ? err.message : String(err);
    throw CliError.input(`cannot read ${what} ${path}: ${reason}`, { hint });
  }
}

const SERVER_CERT_HINT =
  'pass the PEM certificate the server prints at start-up (data/tls/cert.pem)';

async function serverCertificate(path: string, deps: CliDeps): Promise<Uint8Array> {
  const file = await readTlsFile(
    path,
    'certificate file',
    'pass the PEM certificate the server prints at start-up, or --insecure for a plaintext server',
    deps,
  );
  checkPemCertificate(file, path, 'certificate file', SERVER_CERT_HINT);
  return file;
}

/** The header of a PEM private key block: PKCS#8 (`PRIVATE KEY`), `EC`, `RSA`, `ENCRYPTED`. */
const PEM_PRIVATE_KEY = /-----BEGIN [A-Z ]*PRIVATE KEY-----/;
/** A PKCS#8 encrypted key, or a legacy (`RSA`/`EC`) one with an encryption header. */
const PEM_ENCRYPTED_KEY = /-----BEGIN ENCRYPTED PRIVATE KEY-----|Proc-Type: *4, *ENCRYPTED/;

const CLIENT_CERT_HINT =
  'pass the PEM certificate issued to this client by the CA the server trusts (its E4C2_TLS_CLIENT_CA)';
const CLIENT_KEY_HINT = 'pass the unencrypted PEM private key of the --client-cert certificate';

/**
 * Reads and checks this client's certificate and key (mutual TLS). Checked here because grpc-js
 * would otherwise reject a bad pair only when the channel is made, as an OpenSSL error reported
 * as an internal error (exit 4), or the server would refuse the handshake (exit 3) for what is a
 * local mistake.
 * @throws CliError exit 2 naming the file at fault, never printing what it holds
 */
async function clientCertificate(
  files: NonNullable<GlobalOptions['clientCert']>,
  deps: CliDeps,
): Promise<{ certChain: Uint8Array; privateKey: Uint8Array }> {
  const certChain = await readTlsFile(
    files.certFile,
    'client certificate file',
    CLIENT_CERT_HINT,
    deps,
  );
  const certificate = checkPemCertificate(
    certChain,
    files.certFile,
    'client certificate file',
    CLIENT_CERT_HINT,
  );
  const privateKey = await readTlsFile(files.keyFile, 'client key file', CLIENT_KEY_HINT, deps);
  await warnIfReadableByOthers(files.keyFile, 'client key file', deps);
  const key = checkPemPrivateKey(privateKey, files.keyFile);
  if (!certificate.checkPrivateKey(key)) {
    throw CliError.input(
      `client key file ${files.keyFile} is not the private key of the certificate in ${files.certFile}`,
      { hint: CLIENT_KEY_HINT },
    );
  }
  return { certChain, privateKey };
}

/**
 * A `--cert` or `--client-cert` file must hold a PEM certificate: gRPC would otherwise report
 * the server's own (self-signed) certificate as untrusted, or the server would refuse the
 * handshake, blaming the other side for a local mistake.
 * @returns the first certificate of the file (the leaf of a chain)
 * @throws CliError exit 2 naming what the file holds instead
 */
function checkPemCertificate(
  file: Uint8Array,
  path: string,
  what: string,
  hint: string,
): X509Certificate {
  const text = Buffer.from(file).toString('latin1');
  if (!text.includes('-----BEGIN CERTIFICATE-----')) {
    const holds = PEM_PRIVATE_KEY.test(text)
      ? 'a private key, not a certificate'
      : 'no PEM certificate';
    throw CliError.input(`${what} ${path} holds ${holds}`, { hint });
  }
  try {
    return new X509Certificate(Buffer.from(file));
  } catch (err) {
    throw CliError.input(`${what} ${path} holds a damaged PEM certificate`, { hint, cause: err });
  }
}

/**
 * A `--client-key` file must hold an unencrypted PEM private key. The messages say what the file
 * holds, never its content, nor OpenSSL's text about it.
 * @throws CliError exit 2
 */
function checkPemPrivateKey(file: Uint8Array, path: string): KeyObject {
  const text = Buffer.from(file).toString('latin1');
  const fail = (holds: string, options: { hint?: string; cause?: unknown } = {}): CliError =>
    CliError.input(`client key file ${path} holds ${holds}`, { hint: CLIENT_KEY_HINT, ...options });
  if (!PEM_PRIVATE_KEY.test(text)) {
    throw fail(
      text.includes('-----BEGIN CERTIFICATE-----')
        ? 'a certificate, not a private key'
        : 'no PEM private key',
    );
  }
  // gRPC has no way to ask for a passphrase; say so rather than fail inside OpenSSL.
  if (PEM_ENCRYPTED_KEY.test(text)) {
    throw fail('an encrypted private key', {
      hint: `e4c2 needs it unencrypted: openssl pkey -in ${path} -out plain.key, then chmod 600 plain.key`,
    });
  }
  try {
    return createPrivateKey({ key: Buffer.from(file), format: 'pem' });
  } catch (err) {
    throw fail('a damaged PEM private key', { cause: err });
  }
}

/**
 * A change that got no answer (exit 3) or was interrupted (130) may have been made: the same
 * command with the same request id answers with its outcome instead of making it twice.
 */
function withRetryHint(failure: CliError, requestId: string): CliError {
  if (failure.exitCode !== ExitCode.Unreachable && failure.exitCode !== ExitCode.Interrupted)
    return failure;
  const retry = `it may have been done: run the same command with --request-id ${requestId} to get its outcome without doing it twice`;
  return new CliError(failure.exitCode, failure.message, {
    ...(failure.grpcCode === undefined ? {} : { grpcCode: failure.grpcCode }),
    hint: failure.hint === undefined ? retry : `${failure.hint}\n${retry}`,
    cause: failure,
  });
}

/** Any thrown value as the CliError the process reports. */
function describeFailure(
  err: unknown,
  facts: ConnectionFacts | undefined,
  signal: AbortSignal,
): CliError {
  if (CliError.is(err)) return err;
  if (isGrpcStatusError(err) && facts !== undefined) {
    if (signal.aborted) return new CliError(ExitCode.Interrupted, 'interrupted', { cause: err });
    return fromGrpcError(err, facts);
  }
  const message = err instanceof Error ? err.message : String(err);
  return new CliError(ExitCode.Internal, `internal error in ${PROGRAM}: ${message}`, {
    cause: err,
  });
}

function report(err: CliError, stderr: TextSink, table: CommandTable): ExitCode {
  const code = err.grpcCode === undefined ? '' : ` (${err.grpcCode})`;
  let text = `error: ${printable(err.message)}${code}\n`;
  if (err.hint !== undefined)
    text += err.hint
      .split('\n')
      .map((line) => `hint: ${line}\n`)
      .join('');
  if (err.usageOf !== undefined) text += `\n${renderUsage(err.usageOf, table, true)}`;
  stderr.write(text);
  return err.exitCode;
}
