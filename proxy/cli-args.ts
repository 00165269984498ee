/** The proxy's command line: `npm run proxy -- [COMMAND] [options]`. */
import { parseArgs } from 'node:util';
import type { ProxyMode } from './config.ts';
import { ProxyError, ProxyErrorCode } from './errors.ts';

/** Usage text. */
export const USAGE = `usage: npm run proxy -- [COMMAND] --config FILE [options]
commands:
  start           run the proxy (default)
  register        register the identities with the C2 (create clients, attach topics)
  status          print the /healthz status of a running proxy (exit 1 when not ok)
  hash-password   read a password on stdin, print a scrypt hash for devices[].passwordHash
options:
  --config FILE   configuration file (YAML or JSON); required except for hash-password
  --mode MODE     local | gateway (overrides the file)
  --tofu          trust on first use: register new identities and have the C2 rotate them
  --rotate        with register: ask the C2 to rotate each identity key afterwards
  --replace       with register: also post the stored key of identities the C2 already knows
                  (undoes any rotation the proxy has not applied yet: see docs/proxies.md)
  --new-local-key with start or register: the local key file is lost; make a new one and move
                  the key stores it opened aside (the identities then need register --replace)
  --help`;

/** Parsed arguments. */
export interface ProxyArgs {
  readonly command: 'start' | 'register' | 'status' | 'hash-password';
  readonly configPath: string | undefined;
  readonly mode: ProxyMode | undefined;
  readonly tofu: boolean;
  readonly rotate: boolean;
  /** `register --replace`: overwrite the C2's key of identities it already knows. */
  readonly replace: boolean;
  /** `--new-local-key`: start over after a lost local key. */
  readonly newLocalKey: boolean;
}

/**
 * Parses the arguments; `undefined` for `--help`.
 * @throws ProxyError `PROXY_CONFIG` for a usage mistake
 */
export function parseProxyArgs(argv: readonly string[]): ProxyArgs | undefined {
  let parsed;
  try {
    parsed = parseArgs({
      args: [...argv],
      allowPositionals: true,
      options: {
        config: { type: 'string' },
        mode: { type: 'string' },
        tofu: { type: 'boolean' },
        rotate: { type: 'boolean' },
        replace: { type: 'boolean' },
        'new-local-key': { type: 'boolean' },
        help: { type: 'boolean' },
      },
    });
  } catch (err) {
    throw new ProxyError(ProxyErrorCode.Config, err instanceof Error ? err.message : String(err));
  }
  if (parsed.values.help === true) return undefined;
  const [command = 'start', ...rest] = parsed.positionals;
  if (rest.length > 0)
    throw new ProxyError(ProxyErrorCode.Config, `unexpected '${rest.join(' ')}'`);
  if (
    command !== 'start' &&
    command !== 'register' &&
    command !== 'status' &&
    command !== 'hash-password'
  ) {
    throw new ProxyError(ProxyErrorCode.Config, `unknown command '${command}'`);
  }
  const mode = parsed.values.mode;
  if (mode !== undefined && mode !== 'local' && mode !== 'gateway') {
    throw new ProxyError(ProxyErrorCode.Config, `--mode must be local or gateway`);
  }
  const replace = parsed.values.replace === true;
  if (replace && command !== 'register') {
    throw new ProxyError(ProxyErrorCode.Config, '--replace is an option of register');
  }
  const newLocalKey = parsed.values['new-local-key'] === true;
  if (newLocalKey && command !== 'start' && command !== 'register') {
    throw new ProxyError(
      ProxyErrorCode.Config,
      '--new-local-key is an option of start and register',
    );
  }
  const configPath = parsed.values.config;
  if (configPath === undefined && command !== 'hash-password') {
    throw new ProxyError(ProxyErrorCode.Config, '--config FILE is required');
  }
  return {
    command,
    configPath,
    mode,
    tofu: parsed.values.tofu === true,
    rotate: parsed.values.rotate === true,
    replace,
    newLocalKey,
  };
}
