/**
 * One run of the CLI, with every outside dependency injected (argv, environment, streams, the
 * API factory, the file reader), so tests drive it without a process or a server: parse, print
 * help or the version, or connect and run the command, then map any failure to its exit code.
 */
import { X509Certificate } from 'node:crypto';
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
  /** Environment variables (`E4C2_ENDPOINT`, `E4C2_CERT`). */
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly stdout: TextSink;
  readonly stderr: TextSink;
  /** Printed by `--version`. */
  readonly version: string;
  /** Opens the API; called only once the arguments are valid. */
  readonly connect: (options: ConnectionOptions) => C2Api;
  /** Reads key, password and certificate files. */
  readonly readFile: (path: string) => Promise<Uint8Array>;
  /** The permission bits of a file (to warn about a token file others can read), if known. */
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
        const ctx: CommandContext = {
          api,
          out: new Output(deps.stdout, globals.json, deps.stderr),
          flags,
          globals,
          readFile: deps.readFile,
          signal: deps.signal,
          toCliError,
        };
        try {
          await command.run(ctx);
          return ExitCode.Ok;
        } catch (err) {
          return report(toCliError(err), deps.stderr, table);
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
    const mode = await deps.fileMode?.(globals.token.path).catch(() => undefined);
    if (mode !== undefined && (mode & 0o077) !== 0) {
      // As ssh does for keys: a token others can read is as good as theirs.
      deps.stderr.write(
        `warning: token file ${globals.token.path} is readable by others (mode ${(mode & 0o777).toString(8).padStart(4, '0')}); run "chmod 600 ${globals.token.path}"\n`,
      );
    }
  }
  if (!/^[A-Za-z0-9._~+/-]{16,512}=*$/.test(token))
    throw CliError.input(
      `the API token ${globals.token.from === 'env' ? 'in E4C2_TOKEN' : `in ${globals.token.path}`} is malformed: expected 16 to 512 token characters`,
      { hint: 'create one with: e4c2 token new --name NAME --role ROLE' },
    );
  return token;
}

async function tlsOptions(globals: GlobalOptions, deps: CliDeps): Promise<TlsOptions> {
  if (globals.insecure) return { kind: 'insecure' };
  const servername = globals.servername === undefined ? {} : { servername: globals.servername };
  if (globals.certFile === undefined) return { kind: 'tls', ...servername };
  let rootCerts: Uint8Array;
  try {
    rootCerts = await deps.readFile(globals.certFile);
  } catch (err) {
    const reason = err instanceof Error ? err.message : String(err);
    throw CliError.input(`cannot read certificate file ${globals.certFile}: ${reason}`, {
      hint: 'pass the PEM certificate the server prints at start-up, or --insecure for a plaintext server',
    });
  }
  checkPemCertificate(rootCerts, globals.certFile);
  return { kind: 'tls', rootCerts, ...servername };
}

/**
 * A `--cert` file must hold a PEM certificate: gRPC would otherwise report the server's own
 * (self-signed) certificate as untrusted, blaming the server for a local mistake.
 * @throws CliError exit 2 naming what the file holds instead
 */
function checkPemCertificate(file: Uint8Array, path: string): void {
  const text = Buffer.from(file).toString('latin1');
  const hint = 'pass the PEM certificate the server prints at start-up (data/tls/cert.pem)';
  if (!text.includes('-----BEGIN CERTIFICATE-----')) {
    const what = /-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(text)
      ? 'a private key, not a certificate'
      : 'no PEM certificate';
    throw CliError.input(`certificate file ${path} holds ${what}`, { hint });
  }
  try {
    new X509Certificate(Buffer.from(file));
  } catch (err) {
    throw CliError.input(`certificate file ${path} holds a damaged PEM certificate`, {
      hint,
      cause: err,
    });
  }
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
