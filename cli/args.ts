/**
 * Turns argv into an {@link Invocation}: which command, its validated flags and the global
 * settings, or a request for help or the version. Everything comes from the command table
 * (`spec.ts`), so what is accepted is exactly what the help text says. Global flags may appear
 * before or after the command words; the command words come before the command's own flags.
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { CliError } from './errors.ts';
import {
  CERT_ENV,
  CLIENT_CERT_ENV,
  CLIENT_KEY_ENV,
  DEFAULT_ENDPOINT,
  DEFAULT_TIMEOUT_SECONDS,
  ENDPOINT_ENV,
  FlagValues,
  GLOBAL_FLAGS,
  TOKEN_ENV,
  type CommandSpec,
  type FlagSpec,
  type GlobalOptions,
  type GroupSpec,
} from './spec.ts';

/** Every command and group of the CLI. */
export interface CommandTable {
  readonly commands: readonly CommandSpec[];
  readonly groups: readonly GroupSpec[];
}

/** What the user asked for. */
export type Invocation =
  /** Help for the whole CLI (`[]`), a group (`['client']`) or a command path. */
  | { readonly kind: 'help'; readonly path: readonly string[] }
  | { readonly kind: 'version' }
  | {
      readonly kind: 'run';
      readonly command: CommandSpec;
      readonly flags: FlagValues;
      readonly globals: GlobalOptions;
    };

/** The environment and randomness parsing depends on. */
export interface ParseEnvironment {
  /** Environment variables (`E4C2_ENDPOINT`, `E4C2_CERT`, `E4C2_CLIENT_CERT`, ...). */
  readonly env: Readonly<Record<string, string | undefined>>;
  /** A fresh idempotency key, used when `--request-id` is not given. */
  readonly newRequestId: () => string;
}

const MAX_REQUEST_ID_LENGTH = 128;

/**
 * Mutating calls the server keeps no idempotency record of: `--request-id` cannot make their
 * repetition safe (a second `rules create` makes a second rule), so it is refused rather than
 * ignored. Rule edits are guarded by `--expected-version` instead.
 */
const CALLS_WITHOUT_IDEMPOTENCY = /^e4c2\.v1\.C2Automation\/(?!List|Get)|\/ReconcileAfterRestore$/;
const MAX_TIMEOUT_SECONDS = 24 * 3600;
const ENDPOINT_SHAPE = /^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+):(\d{1,5})$/;

/**
 * Parses argv (without the node and script paths).
 * @throws CliError exit 2 (usage) for unknown commands or flags, missing or conflicting flags,
 *   malformed values
 */
export function parseInvocation(
  argv: readonly string[],
  table: CommandTable,
  environment: ParseEnvironment,
): Invocation {
  // `e4c2 --version status ...` asks for the program's version, as in git: a leading --version
  // is never `status --version V`, whose value it would otherwise swallow the command word as.
  if (argv[0] === '--version') return { kind: 'version' };
  const words = commandWords(argv);
  const wantsHelp = helpRequested(argv);
  if (words[0] === 'help') return { kind: 'help', path: resolveHelpPath(words.slice(1), table) };
  const command = findCommand(words, table);
  if (command === undefined) {
    if (wantsHelp) return { kind: 'help', path: resolveHelpPath(words, table) };
    if (words.length === 0) {
      if (argv.includes('--version')) return { kind: 'version' };
      // The prescan stops at a flag it does not know: that flag is the problem, not the command.
      const stray = argv.find(
        (token) =>
          token.startsWith('-') &&
          token.length > 1 &&
          token !== '--' &&
          globalFlagOf(token) === undefined,
      );
      if (stray !== undefined) throw unknownLeadingFlag(stray);
      throw CliError.usage('missing command', []);
    }
    throw unknownCommand(words, table);
  }
  if (wantsHelp) return { kind: 'help', path: command.path };

  const flagSpecs = flagsOf(command);
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({
      args: negativeIntegersJoined(argv, flagSpecs),
      options: parseArgsOptions(flagSpecs),
      strict: true,
      allowPositionals: true,
      tokens: true,
    });
  } catch (err) {
    throw CliError.usage(describeParseError(err), command.path);
  }
  // parseArgs keeps the last of a repeated flag: `--name x --name y` would silently act on y.
  const seen = new Set<string>();
  for (const token of parsed.tokens ?? []) {
    if (token.kind !== 'option') continue;
    if (seen.has(token.name)) {
      throw CliError.usage(`flag --${token.name} is given more than once`, command.path);
    }
    seen.add(token.name);
  }
  const extra = parsed.positionals.slice(command.path.length);
  if (extra[0] !== undefined) {
    throw CliError.usage(`unexpected argument "${extra[0]}"`, command.path);
  }
  const values = new Map<string, string | boolean | number>();
  for (const spec of flagSpecs) {
    const raw = parsed.values[spec.name];
    if (raw === undefined || Array.isArray(raw)) continue;
    values.set(spec.name, convert(spec, raw, command));
  }
  if (values.get('version') === true && !command.flags.some((f) => f.name === 'version')) {
    return { kind: 'version' };
  }
  checkCommandFlags(command, values);
  return {
    kind: 'run',
    command,
    flags: new FlagValues(values),
    globals: globalOptions(values, command, environment),
  };
}

/** The words before the first flag the prescan cannot classify (values of global flags skipped). */
function commandWords(argv: readonly string[]): string[] {
  const words: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const token = argv[i] ?? '';
    if (token === '--') break;
    if (token.startsWith('-') && token.length > 1) {
      const global = globalFlagOf(token);
      if (global === undefined) break;
      const attached = token.startsWith('--') ? token.includes('=') : token.length > 2;
      if (global.kind !== 'boolean' && !attached) i++;
      continue;
    }
    words.push(token);
  }
  return words;
}

/** A flag before the command words that is no global flag. */
function unknownLeadingFlag(token: string): CliError {
  const name = token.split('=')[0] ?? token;
  // A guess users make: tokens are read from a file or the environment, never from argv.
  const hint = name === '--token' ? ` (a token comes from --token-file FILE or ${TOKEN_ENV})` : '';
  return CliError.usage(
    `unknown flag ${name}${hint}; only global flags may come before the command`,
    [],
  );
}

function globalFlagOf(token: string): FlagSpec | undefined {
  if (token.startsWith('--')) {
    const name = token.slice(2).split('=')[0];
    return GLOBAL_FLAGS.find((f) => f.name === name);
  }
  return GLOBAL_FLAGS.find((f) => f.short !== undefined && token.startsWith(`-${f.short}`));
}

function helpRequested(argv: readonly string[]): boolean {
  const end = argv.indexOf('--');
  const flags = end === -1 ? argv : argv.slice(0, end);
  return flags.includes('-h') || flags.includes('--help');
}

function findCommand(words: readonly string[], table: CommandTable): CommandSpec | undefined {
  let best: CommandSpec | undefined;
  for (const command of table.commands) {
    const matches = command.path.every((word, i) => words[i] === word);
    if (matches && (best === undefined || command.path.length > best.path.length)) best = command;
  }
  return best;
}

function resolveHelpPath(words: readonly string[], table: CommandTable): readonly string[] {
  const command = findCommand(words, table);
  if (command !== undefined) return command.path;
  const group = words[0];
  if (group !== undefined && table.groups.some((g) => g.name === group)) return [group];
  if (words.length > 0) throw unknownCommand(words, table);
  return [];
}

function unknownCommand(words: readonly string[], table: CommandTable): CliError {
  const [first, second] = words;
  const group = table.groups.find((g) => g.name === first);
  if (group !== undefined) {
    if (second === undefined) return CliError.usage(`"${group.name}" needs a verb`, [group.name]);
    const verbs = table.commands
      .filter((c) => c.path[0] === group.name && c.path.length === 2)
      .map((c) => c.path[1] ?? '');
    return CliError.usage(`unknown command "${group.name} ${second}"${didYouMean(second, verbs)}`, [
      group.name,
    ]);
  }
  const topLevel = [
    ...table.groups.map((g) => g.name),
    ...table.commands.filter((c) => c.path.length === 1).map((c) => c.path[0]),
  ];
  return CliError.usage(`unknown command "${first ?? ''}"${didYouMean(first ?? '', topLevel)}`, []);
}

/** `; did you mean "x"?` for the closest candidate within two edits (or a prefix), else ''. */
export function didYouMean(word: string, candidates: readonly string[]): string {
  let best: string | undefined;
  let bestDistance = 3;
  for (const candidate of candidates) {
    const distance =
      candidate.startsWith(word) && word.length >= 2 ? 1 : editDistance(word, candidate);
    if (distance < bestDistance) {
      best = candidate;
      bestDistance = distance;
    }
  }
  return best === undefined ? '' : `; did you mean "${best}"?`;
}

function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_v, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      const substitution = (previous[j - 1] ?? 0) + (a[i - 1] === b[j - 1] ? 0 : 1);
      current.push(Math.min((previous[j] ?? 0) + 1, (current[j - 1] ?? 0) + 1, substitution));
    }
    previous = current;
  }
  return previous[b.length] ?? 0;
}

/** The command's flags plus the global ones it does not redefine (`status --version V`). */
export function flagsOf(command: CommandSpec): readonly FlagSpec[] {
  const own = new Set(command.flags.map((f) => f.name));
  return [...command.flags, ...GLOBAL_FLAGS.filter((f) => !own.has(f.name))];
}

function parseArgsOptions(specs: readonly FlagSpec[]): NonNullable<ParseArgsConfig['options']> {
  const options: NonNullable<ParseArgsConfig['options']> = {};
  for (const spec of specs) {
    options[spec.name] = {
      type: spec.kind === 'boolean' ? 'boolean' : 'string',
      ...(spec.short === undefined ? {} : { short: spec.short }),
    };
  }
  return options;
}

/**
 * `--count -1` as c2cli (Go's pflag) reads it: the value of an integer flag may start with `-`.
 * parseArgs would take `-1` for a flag and say `--count` has no value; joined, it is
 * `--count=-1`.
 */
function negativeIntegersJoined(argv: readonly string[], specs: readonly FlagSpec[]): string[] {
  const integers = new Set<string>();
  for (const spec of specs) {
    if (spec.kind !== 'integer') continue;
    integers.add(`--${spec.name}`);
    if (spec.short !== undefined) integers.add(`-${spec.short}`);
  }
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const token = argv[i] ?? '';
    const next = argv[i + 1];
    if (token === '--') return [...out, ...argv.slice(i)];
    if (integers.has(token) && next !== undefined && /^-\d+$/.test(next)) {
      out.push(`${token}=${next}`);
      i++;
    } else out.push(token);
  }
  return out;
}

function describeParseError(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const code = (err as { code?: unknown }).code;
  // Node names an option as `-e, --endpoint <value>`: show the flag as the user knows it.
  const described = /'(-[^']*)'/.exec(err.message)?.[1];
  const option =
    described === undefined ? undefined : (/--[A-Za-z0-9-]+/.exec(described)?.[0] ?? described);
  if (code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION' && option !== undefined) {
    return `unknown flag ${option}`;
  }
  if (code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE' && option !== undefined) {
    if (err.message.includes('argument missing')) return `flag ${option} needs a value`;
    if (err.message.includes('does not take an argument')) return `flag ${option} takes no value`;
    if (err.message.includes('ambiguous')) {
      return `flag ${option} needs a value (write ${option}=VALUE for a value that starts with "-")`;
    }
  }
  return err.message.split('\n')[0] ?? err.message;
}

function convert(
  spec: FlagSpec,
  raw: string | boolean,
  command: CommandSpec,
): string | boolean | number {
  if (spec.kind !== 'integer' || typeof raw !== 'string') return raw;
  if (!/^-?\d{1,15}$/.test(raw)) {
    throw CliError.usage(`flag --${spec.name} needs an integer, got "${raw}"`, command.path);
  }
  const value = Number(raw);
  if (spec.min !== undefined && value < spec.min) {
    throw CliError.usage(`flag --${spec.name} must be at least ${spec.min}`, command.path);
  }
  // Beyond a field's range the gRPC encoder would wrap the number silently (2^32 + 1 to 1).
  if (spec.max !== undefined && value > spec.max) {
    throw CliError.usage(`flag --${spec.name} must be at most ${spec.max}`, command.path);
  }
  return value;
}

function given(values: ReadonlyMap<string, unknown>, name: string): boolean {
  const value = values.get(name);
  return value !== undefined && value !== false;
}

function checkCommandFlags(
  command: CommandSpec,
  values: ReadonlyMap<string, string | boolean | number>,
): void {
  for (const spec of command.flags) {
    if (values.get(spec.name) === '' && spec.allowEmpty !== true)
      throw CliError.usage(`flag --${spec.name} needs a value, not an empty one`, command.path);
    if (spec.required === true && !given(values, spec.name))
      throw CliError.usage(`flag --${spec.name} is required`, command.path);
  }
  for (const rule of command.constraints ?? []) {
    if (rule.kind === 'exactly-one') {
      const present = rule.flags.filter((name) => given(values, name));
      const list = rule.flags.map((name) => `--${name}`).join(' or ');
      if (present.length === 0) throw CliError.usage(`one of ${list} is required`, command.path);
      if (present.length > 1) throw CliError.usage(`only one of ${list} is allowed`, command.path);
    } else if (given(values, rule.flag) && !given(values, rule.with)) {
      throw CliError.usage(`--${rule.flag} can be used only with --${rule.with}`, command.path);
    }
  }
}

function globalOptions(
  values: ReadonlyMap<string, string | boolean | number>,
  command: CommandSpec,
  environment: ParseEnvironment,
): GlobalOptions {
  const str = (name: string): string | undefined => {
    const value = values.get(name);
    return typeof value === 'string' ? value : undefined;
  };
  const env = (name: string): string | undefined => {
    const value = environment.env[name];
    return value === undefined || value === '' ? undefined : value;
  };
  const usage = (message: string): CliError => CliError.usage(message, command.path);

  const endpoint = str('endpoint') ?? env(ENDPOINT_ENV) ?? DEFAULT_ENDPOINT;
  const port = ENDPOINT_SHAPE.exec(endpoint)?.[1];
  if (port === undefined || Number(port) < 1 || Number(port) > 65535) {
    const source = str('endpoint') === undefined ? ENDPOINT_ENV : '--endpoint';
    throw usage(`${source} must be HOST:PORT (for example 127.0.0.1:5555), got "${endpoint}"`);
  }

  const insecure = values.get('insecure') === true;
  const certFlag = str('cert');
  if (certFlag === '') throw usage('flag --cert needs a file');
  if (insecure && certFlag !== undefined) throw usage('--cert and --insecure exclude each other');
  const certFile = insecure ? undefined : (certFlag ?? env(CERT_ENV));
  const servername = str('servername');
  if (insecure && servername !== undefined) {
    throw usage('--servername applies to TLS connections; it cannot be used with --insecure');
  }
  const clientCert = clientCertificate(str, env, insecure, usage);

  const tokenFile = str('token-file');
  if (tokenFile === '') throw usage('flag --token-file needs a file');
  const tokenEnv = env(TOKEN_ENV);
  const token =
    tokenFile !== undefined
      ? { from: 'file' as const, path: tokenFile }
      : tokenEnv === undefined
        ? undefined
        : { from: 'env' as const, value: tokenEnv };

  const timeoutText = str('timeout');
  let timeoutMs = DEFAULT_TIMEOUT_SECONDS * 1000;
  if (timeoutText !== undefined) {
    const seconds = /^\d+(\.\d+)?$/.test(timeoutText) ? Number(timeoutText) : Number.NaN;
    if (!(seconds > 0 && seconds <= MAX_TIMEOUT_SECONDS)) {
      throw usage(`--timeout must be a number of seconds above 0, got "${timeoutText}"`);
    }
    timeoutMs = Math.max(1, Math.round(seconds * 1000));
  }

  const requestIdFlag = str('request-id');
  if (
    requestIdFlag !== undefined &&
    !new RegExp(`^[\\x21-\\x7e]{1,${MAX_REQUEST_ID_LENGTH}}$`).test(requestIdFlag)
  ) {
    throw usage(
      `--request-id must be 1 to ${MAX_REQUEST_ID_LENGTH} printable ASCII characters without spaces`,
    );
  }
  const unkeyed = command.calls.find((call) => CALLS_WITHOUT_IDEMPOTENCY.test(call));
  if (requestIdFlag !== undefined && unkeyed !== undefined) {
    throw usage(
      `${command.path.join(' ')} takes no --request-id: the server keeps no idempotency record of ${unkeyed} (repeating it repeats it; rule edits are guarded by --expected-version)`,
    );
  }

  return {
    endpoint,
    certFile,
    servername,
    clientCert,
    insecure,
    token,
    json: values.get('json') === true,
    timeoutMs,
    requestId: requestIdFlag ?? environment.newRequestId(),
  };
}

/**
 * The client certificate and key (mutual TLS): both flags, else both environment variables, else
 * none. The two are taken as a pair, never one from the flags and one from the environment: a
 * key from E4C2_CLIENT_KEY beside a `--client-cert` of another identity would only fail later,
 * at the TLS handshake, with a message that names neither file.
 * @throws CliError exit 2 when one of the pair is missing, empty, or given with `--insecure`
 */
function clientCertificate(
  flag: (name: string) => string | undefined,
  env: (name: string) => string | undefined,
  insecure: boolean,
  usage: (message: string) => CliError,
): GlobalOptions['clientCert'] {
  const certFlag = flag('client-cert');
  const keyFlag = flag('client-key');
  if (certFlag === '') throw usage('flag --client-cert needs a file');
  if (keyFlag === '') throw usage('flag --client-key needs a file');
  if (certFlag !== undefined || keyFlag !== undefined) {
    if (insecure) {
      throw usage(
        '--client-cert and --client-key apply to TLS connections; they cannot be used with --insecure',
      );
    }
    // Said only when the missing half is in the environment, where the user may expect it from.
    const notMixed = (envName: string): string =>
      env(envName) === undefined ? '' : ` (${envName} is not combined with a flag)`;
    if (keyFlag === undefined) {
      throw usage(
        `--client-cert needs --client-key FILE, the private key of that certificate${notMixed(CLIENT_KEY_ENV)}`,
      );
    }
    if (certFlag === undefined) {
      throw usage(
        `--client-key needs --client-cert FILE, the certificate of that key${notMixed(CLIENT_CERT_ENV)}`,
      );
    }
    return { certFile: certFlag, keyFile: keyFlag };
  }
  // As E4C2_CERT, the environment's pair is ignored with --insecure rather than refused: it may
  // be set for the whole shell.
  if (insecure) return undefined;
  const certEnv = env(CLIENT_CERT_ENV);
  const keyEnv = env(CLIENT_KEY_ENV);
  if (certEnv === undefined && keyEnv === undefined) return undefined;
  if (certEnv === undefined || keyEnv === undefined) {
    const [set, unset] =
      certEnv === undefined ? [CLIENT_KEY_ENV, CLIENT_CERT_ENV] : [CLIENT_CERT_ENV, CLIENT_KEY_ENV];
    throw usage(`${set} is set but ${unset} is not: a client certificate needs its key`);
  }
  return { certFile: certEnv, keyFile: keyEnv };
}
