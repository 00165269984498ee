/**
 * The shape of the command table: each command is one {@link CommandSpec} whose flags and
 * constraints drive parsing (`args.ts`), validation and the help text (`usage.ts`), so the three
 * can never disagree.
 */
import type { C2Api } from './api.ts';
import { CliError } from './errors.ts';
import type { Output } from './output.ts';

/** One flag of a command. */
export interface FlagSpec {
  /** Long name without dashes (`name` is `--name`). */
  readonly name: string;
  /** One-letter alias without the dash. */
  readonly short?: string;
  /** `integer` flags are parsed as decimal integers (negative allowed unless `min` says no). */
  readonly kind: 'string' | 'boolean' | 'integer';
  /** Placeholder in the help text (`FILE`, `NAME`); string and integer flags only. */
  readonly value?: string;
  /** One line for the help text. */
  readonly description: string;
  /** The flag must be given, with a non-empty value. */
  readonly required?: true;
  /**
   * An empty value is a value (`--reason ""`); for every other string flag it is refused, so
   * that `--key ""` is not read as a flag both given (a file named "") and absent (no conflict).
   */
  readonly allowEmpty?: true;
  /** Smallest accepted integer. */
  readonly min?: number;
  /** Largest accepted integer (a protobuf `uint32` field: 4294967295). */
  readonly max?: number;
}

/** The largest value of a protobuf `uint32` field, the `max` of flags that fill one. */
export const UINT32_MAX = 2 ** 32 - 1;

/** A rule between flags, checked after parsing. */
export type FlagConstraint =
  /** Exactly one of the flags must be given. */
  | { readonly kind: 'exactly-one'; readonly flags: readonly string[] }
  /** `flag` may be given only together with `with`. */
  | { readonly kind: 'only-with'; readonly flag: string; readonly with: string };

/** The settings every command shares (global flags and environment). */
export interface GlobalOptions {
  /** `host:port` of the C2's gRPC listener. */
  readonly endpoint: string;
  /** PEM file of the server certificate or its CA (TLS with host-name check). */
  readonly certFile: string | undefined;
  /** Name to check the certificate against instead of the endpoint's host. */
  readonly servername: string | undefined;
  /**
   * PEM files of this client's own certificate and its private key, for a server that requires
   * client certificates (mutual TLS): `--client-cert`/`--client-key` or their environment pair.
   */
  readonly clientCert: { readonly certFile: string; readonly keyFile: string } | undefined;
  /** Plaintext connection. */
  readonly insecure: boolean;
  /** Where the bearer token comes from: a file (`--token-file`) or `E4C2_TOKEN`. */
  readonly token:
    | { readonly from: 'file'; readonly path: string }
    | { readonly from: 'env'; readonly value: string }
    | undefined;
  /** Machine output. */
  readonly json: boolean;
  /** Deadline of each call, in milliseconds. */
  readonly timeoutMs: number;
  /** Idempotency key of the command's mutating call. */
  readonly requestId: string;
}

/** Typed access to the parsed flags of one command. */
export class FlagValues {
  /** @param values - flag name to parsed value; absent flags are absent */
  constructor(private readonly values: ReadonlyMap<string, string | boolean | number>) {}

  /** A flag declared `required` (or guaranteed by a constraint); throws if missing. */
  string(name: string): string {
    const value = this.optionalString(name);
    if (value === undefined) throw CliError.input(`flag --${name} is required`);
    return value;
  }

  /** A string flag, or undefined when not given. */
  optionalString(name: string): string | undefined {
    const value = this.values.get(name);
    return typeof value === 'string' ? value : undefined;
  }

  /** A boolean flag; false when not given. */
  boolean(name: string): boolean {
    return this.values.get(name) === true;
  }

  /** An integer flag, or `fallback` when not given. */
  integer(name: string, fallback: number): number {
    const value = this.values.get(name);
    return typeof value === 'number' ? value : fallback;
  }

  /** True when the flag was given. */
  has(name: string): boolean {
    return this.values.has(name);
  }
}

/** What a command's `run` receives. */
export interface CommandContext {
  /** The server (created after the arguments validated). */
  readonly api: C2Api;
  /** stdout. */
  readonly out: Output;
  /** The command's own flags. */
  readonly flags: FlagValues;
  /** The global settings. */
  readonly globals: GlobalOptions;
  /** Reads a local file (key, password); injected so tests need no disk. */
  readonly readFile: (path: string) => Promise<Uint8Array>;
  /** Aborted on Ctrl-C; streams end cleanly when it fires. */
  readonly signal: AbortSignal;
  /** How `run.ts` will report `err` (exit code, message, hint), for commands that add to it. */
  readonly toCliError: (err: unknown) => CliError;
}

/** One command of the CLI. */
export interface CommandSpec {
  /** Words that select it: `['client', 'create']`, `['attach']`. */
  readonly path: readonly [string, ...string[]];
  /** One line for lists of commands. */
  readonly summary: string;
  /** A paragraph for the command's own help (defaults to the summary). */
  readonly description?: string;
  /** The RPCs it calls, for the help text (`pb.C2/NewClient`, `e4c2.v1.C2Admin/GetClient`). */
  readonly calls: readonly string[];
  /** Its flags. */
  readonly flags: readonly FlagSpec[];
  /** Rules between its flags. */
  readonly constraints?: readonly FlagConstraint[];
  /** Example invocations, without the leading `e4c2 `. */
  readonly examples?: readonly string[];
  /** Runs it; throws {@link CliError} or a gRPC status error on failure. */
  run(ctx: CommandContext): Promise<void>;
}

/** A group of commands (`client`, `topic`), for the help text. */
export interface GroupSpec {
  readonly name: string;
  readonly summary: string;
}

/** Default gRPC address, as the reference c2cli. */
export const DEFAULT_ENDPOINT = '127.0.0.1:5555';
/** Default per-call deadline, in seconds. */
export const DEFAULT_TIMEOUT_SECONDS = 10;
/** Environment variable for `--endpoint`. */
export const ENDPOINT_ENV = 'E4C2_ENDPOINT';
/** Environment variable for `--cert`. */
export const CERT_ENV = 'E4C2_CERT';
/** Environment variable holding an API bearer token (`--token-file` wins). */
export const TOKEN_ENV = 'E4C2_TOKEN';
/** Environment variable for `--client-cert` (used only together with {@link CLIENT_KEY_ENV}). */
export const CLIENT_CERT_ENV = 'E4C2_CLIENT_CERT';
/** Environment variable for `--client-key` (used only together with {@link CLIENT_CERT_ENV}). */
export const CLIENT_KEY_ENV = 'E4C2_CLIENT_KEY';

/** The flags every command accepts (before or after the command words). */
export const GLOBAL_FLAGS: readonly FlagSpec[] = [
  {
    name: 'endpoint',
    short: 'e',
    kind: 'string',
    value: 'HOST:PORT',
    description: `gRPC address of the C2 (default ${DEFAULT_ENDPOINT}, env ${ENDPOINT_ENV})`,
  },
  {
    name: 'cert',
    short: 'c',
    kind: 'string',
    value: 'FILE',
    description: `PEM certificate of the server or its CA: TLS with host-name check (env ${CERT_ENV})`,
  },
  {
    name: 'servername',
    kind: 'string',
    value: 'NAME',
    description: 'host name to check the server certificate against (default: the endpoint host)',
  },
  {
    name: 'client-cert',
    kind: 'string',
    value: 'FILE',
    description: `this client's PEM certificate, for a server that requires one (mutual TLS); needs --client-key (env ${CLIENT_CERT_ENV})`,
  },
  {
    name: 'client-key',
    kind: 'string',
    value: 'FILE',
    description: `PEM private key of the --client-cert certificate, unencrypted (env ${CLIENT_KEY_ENV})`,
  },
  {
    name: 'token-file',
    kind: 'string',
    value: 'FILE',
    description: `file holding the API bearer token (or the token itself in env ${TOKEN_ENV})`,
  },
  {
    name: 'insecure',
    kind: 'boolean',
    description: 'plaintext connection, no TLS (local development only)',
  },
  {
    name: 'json',
    kind: 'boolean',
    description: 'machine output: one JSON document (one JSON line per event for streams)',
  },
  {
    name: 'timeout',
    kind: 'string',
    value: 'SECONDS',
    description: `deadline of each call (default ${DEFAULT_TIMEOUT_SECONDS})`,
  },
  {
    name: 'request-id',
    kind: 'string',
    value: 'ID',
    description: 'idempotency key of the mutating call (default: a random one per invocation)',
  },
  { name: 'help', short: 'h', kind: 'boolean', description: 'show help (for a command too)' },
  { name: 'version', kind: 'boolean', description: 'print the version' },
];
