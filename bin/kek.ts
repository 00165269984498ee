/**
 * `npm run kek -- <command>`: maintenance of the key-encryption key (DESIGN R8), with the node's
 * own configuration (environment and E4C2_CONFIG_FILE) naming the database and the KEK.
 *
 * - `status`: which KEKs wrap the stored data keys;
 * - `rewrap --from-...`: a KEK rotation: every data key is re-wrapped under the configured KEK
 *   (each checked by a round trip before it is written; a re-run resumes);
 * - `pkcs11-keygen`: creates the configured PKCS#11 key on its token.
 *
 * Sealed keys are not touched by any of them: only the few data keys that wrap them are.
 */
import { access } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import type { Logger } from 'pino';
import { ConfigError, type Config } from '../cluster/config/index.ts';
import { DATA_DIR_LAYOUT, prepareDataDir } from '../cluster/embedded/index.ts';
import { C2Error } from '../cluster/errors.ts';
import {
  KeyVault,
  LocalKekProvider,
  Pkcs11KekProvider,
  VaultTransitKekProvider,
  type KekProvider,
  type StoredDataKey,
} from '../cluster/keyvault/index.ts';
import { Lifecycle } from '../cluster/lifecycle.ts';
import { PgC2Store, PgDataKeyStore } from '../cluster/storage/index.ts';
import { createLogger } from '../cluster/telemetry/index.ts';
import {
  configuredKek,
  openPkcs11Kek,
  storedPassphraseKek,
  vaultOptions,
} from './kek-providers.ts';
import { withKekSettings } from './kek-settings.ts';
import { connectDatabase } from './node-parts.ts';
import { readNodeConfig } from './read-config.ts';
import { UsageError } from './usage-args.ts';

const USAGE = `usage: npm run kek -- <command> [options]

Maintenance of the key-encryption key (KEK). The database and the KEK are the node's own
settings (environment and E4C2_CONFIG_FILE); with the embedded database, stop the node first.

commands:
  status                 which KEKs wrap the stored data keys
  rewrap                 re-wraps every data key under the configured KEK (a KEK rotation);
                         the KEK the data keys are under now is given by one of:
    --from-file PATH               a key file (32 bytes or 64 hex characters)
    --from-passphrase-env NAME     a passphrase, read from the environment variable NAME
    --from-pkcs11-key-label LABEL  another key on the configured PKCS#11 token
    --from-vault-key NAME          another transit key of the configured Vault
                         with none, data keys under the configured KEK already are moved to its
                         newest version (Vault transit: after a key rotation in Vault)
  pkcs11-keygen          creates the configured PKCS#11 key (E4C2_KEK_PKCS11_KEY_LABEL) on the
                         configured token (never replaces an existing one)

After a rewrap, restart every node with the new KEK settings: a node still configured with the
old KEK refuses to start, naming the KEK it is missing.
`;

const OPTIONS = {
  'from-file': { type: 'string' },
  'from-passphrase-env': { type: 'string' },
  'from-pkcs11-key-label': { type: 'string' },
  'from-vault-key': { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

/** What the command line asks for. */
interface KekCommand {
  readonly command: 'status' | 'rewrap' | 'pkcs11-keygen';
  readonly fromFile?: string;
  readonly fromPassphraseEnv?: string;
  readonly fromPkcs11KeyLabel?: string;
  readonly fromVaultKey?: string;
}

/** @throws UsageError for an unknown command, unknown options, or several `--from-...` */
export function parseKekArgs(argv: readonly string[]): KekCommand | 'help' {
  let parsed;
  try {
    parsed = parseArgs({ args: [...argv], options: OPTIONS, allowPositionals: true });
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const { values, positionals } = parsed;
  if (values.help === true) return 'help';
  const [command, ...extra] = positionals;
  if (command === undefined) throw new UsageError('a command is required');
  if (extra.length > 0) throw new UsageError(`unexpected argument "${extra[0] ?? ''}"`);
  if (command !== 'status' && command !== 'rewrap' && command !== 'pkcs11-keygen')
    throw new UsageError(`unknown command "${command}"`);
  const from = {
    ...(values['from-file'] === undefined ? {} : { fromFile: values['from-file'] }),
    ...(values['from-passphrase-env'] === undefined
      ? {}
      : { fromPassphraseEnv: values['from-passphrase-env'] }),
    ...(values['from-pkcs11-key-label'] === undefined
      ? {}
      : { fromPkcs11KeyLabel: values['from-pkcs11-key-label'] }),
    ...(values['from-vault-key'] === undefined ? {} : { fromVaultKey: values['from-vault-key'] }),
  };
  const given = Object.keys(from).length;
  if (given > 0 && command !== 'rewrap')
    throw new UsageError(`--from-... options apply only to rewrap`);
  if (given > 1) throw new UsageError('give at most one --from-... option');
  return { command, ...from };
}

/** The output of a command: lines for stdout. */
type Print = (line: string) => void;

/** The KEK the data keys are under now, from the `--from-...` option. */
async function previousKek(
  cmd: KekCommand,
  config: Config,
  store: PgC2Store,
  lifecycle: Lifecycle,
  logger: Logger,
): Promise<KekProvider | undefined> {
  if (cmd.fromFile !== undefined) return LocalKekProvider.fromKeyFile(cmd.fromFile);
  if (cmd.fromPassphraseEnv !== undefined) {
    const passphrase = process.env[cmd.fromPassphraseEnv];
    if (passphrase === undefined || passphrase === '')
      throw new UsageError(`the environment variable ${cmd.fromPassphraseEnv} is not set`);
    return storedPassphraseKek(passphrase, store);
  }
  if (cmd.fromPkcs11KeyLabel !== undefined) {
    if (config.kek.kind !== 'pkcs11')
      throw new UsageError('--from-pkcs11-key-label needs a configured PKCS#11 KEK (same token)');
    return openPkcs11Kek(
      {
        modulePath: config.kek.modulePath,
        tokenLabel: config.kek.tokenLabel,
        keyLabel: cmd.fromPkcs11KeyLabel,
        pin: config.kek.pin.reveal(),
      },
      lifecycle,
      logger,
    );
  }
  if (cmd.fromVaultKey !== undefined) {
    if (config.kek.kind !== 'vault-transit')
      throw new UsageError('--from-vault-key needs a configured Vault transit KEK (same Vault)');
    return VaultTransitKekProvider.connect(await vaultOptions(config.kek, cmd.fromVaultKey));
  }
  return undefined;
}

/** Creates the configured PKCS#11 key on its token. */
async function pkcs11Keygen(config: Config, print: Print): Promise<void> {
  if (config.kek.kind !== 'pkcs11')
    throw new UsageError('pkcs11-keygen needs E4C2_KEK_PKCS11_MODULE, _TOKEN and _PIN');
  const provider = await Pkcs11KekProvider.generateKey({
    modulePath: config.kek.modulePath,
    tokenLabel: config.kek.tokenLabel,
    keyLabel: config.kek.keyLabel,
    pin: config.kek.pin.reveal(),
  });
  provider.close();
  print(`created KEK ${provider.kind}/${provider.keyId}`);
}

/** The configured database's stores and its data keys as stored. */
async function openDataKeys(
  config: Config,
  logger: Logger,
  lifecycle: Lifecycle,
): Promise<{ store: PgC2Store; dataKeys: PgDataKeyStore; stored: StoredDataKey[] }> {
  if (config.database.kind === 'embedded') await lockEmbedded(config.dataDir, lifecycle);
  const { pool, display } = await connectDatabase(config, logger, lifecycle, []).catch(
    (err: unknown) => {
      if (config.database.kind !== 'embedded') throw err;
      // The data directory's lock is ours, so no node runs there: a server still running is one
      // that a killed node left behind, as the embedded server's own message says.
      throw new C2Error('C2_UNAVAILABLE', (err as Error).message, { cause: err });
    },
  );
  const dataKeys = new PgDataKeyStore(pool);
  const stored = await dataKeys.list().catch((err: unknown) => {
    throw new C2Error(
      'C2_CONFIG',
      `cannot read the data keys at ${display}: is it a C2 database?`,
      {
        cause: err,
      },
    );
  });
  return { store: new PgC2Store(pool), dataKeys, stored };
}

/**
 * Takes the data directory's lock for the tool's run, as a node does: a node running there is
 * named (its embedded database is its own while it runs), and no node starts there meanwhile.
 * A directory without an embedded database is refused rather than given a new, empty one.
 * @throws C2Error `C2_CONFIG` when the directory holds no embedded database;
 *   `C2_FAILED_PRECONDITION` when a live process (a C2 node) holds the directory
 */
async function lockEmbedded(dataDir: string, lifecycle: Lifecycle): Promise<void> {
  const pgVersion = join(resolve(dataDir), DATA_DIR_LAYOUT.postgres, 'PG_VERSION');
  try {
    await access(pgVersion);
  } catch {
    throw new C2Error(
      'C2_CONFIG',
      `${resolve(dataDir)} holds no embedded database (no ${DATA_DIR_LAYOUT.postgres}/PG_VERSION): set E4C2_DATA_DIR to the node's data directory, or DATABASE_URL to its database`,
    );
  }
  const dir = await prepareDataDir(dataDir);
  lifecycle.add('data directory lock', () => dir.release());
}

/** How many data keys each KEK wraps. */
function printStatus(stored: readonly StoredDataKey[], print: Print): void {
  const byKek = new Map<string, number>();
  for (const k of stored) {
    const name = `${k.wrapped.kekKind}/${k.wrapped.kekId}`;
    byKek.set(name, (byKek.get(name) ?? 0) + 1);
  }
  print(`data keys: ${stored.length}`);
  for (const [name, count] of byKek) print(`  ${name}: ${count}`);
}

/** Re-wraps every data key under the configured KEK. */
async function rewrap(
  cmd: KekCommand,
  config: Config,
  opened: Awaited<ReturnType<typeof openDataKeys>>,
  lifecycle: Lifecycle,
  logger: Logger,
  print: Print,
): Promise<void> {
  if (opened.stored.length === 0) {
    print('no data keys stored: nothing to re-wrap');
    return;
  }
  // The new KEK comes from the settings: a failure names the one at fault, as a node's does.
  const target = await configuredKek(config.kek, opened.store, lifecycle, logger).catch(
    (err: unknown) => {
      throw withKekSettings(config.kek, err);
    },
  );
  const previous = await previousKek(cmd, config, opened.store, lifecycle, logger);
  let vault: KeyVault;
  try {
    vault = await KeyVault.create({
      provider: target,
      previousProviders: previous === undefined ? [] : [previous],
      store: opened.dataKeys,
    });
  } catch (err) {
    if (C2Error.is(err, 'C2_KEY_VAULT') && /is not configured/.test(err.message)) {
      throw new C2Error(
        'C2_KEY_VAULT',
        `${err.message}; name the KEK the data keys are under with --from-file, --from-passphrase-env, --from-pkcs11-key-label or --from-vault-key`,
        { cause: err },
      );
    }
    throw err;
  }
  const count = await vault.rewrapAll(target);
  print(
    count === 0
      ? `every data key is under KEK ${target.kind}/${target.keyId} already`
      : `re-wrapped ${count} data key(s) under KEK ${target.kind}/${target.keyId}`,
  );
}

/** Runs one command against the configured database. */
export async function runKekCommand(cmd: KekCommand, config: Config, print: Print): Promise<void> {
  if (cmd.command === 'pkcs11-keygen') {
    await pkcs11Keygen(config, print);
    return;
  }
  if (cmd.command === 'rewrap' && config.kek.kind === 'generated-file') {
    throw new UsageError(
      'set the new KEK first (E4C2_KEK_FILE, E4C2_KEK_PASSPHRASE, E4C2_KEK_PKCS11_MODULE or E4C2_KEK_VAULT_ADDR): rewrap moves the data keys to the configured KEK',
    );
  }
  const logger = createLogger({ level: 'warn', nodeId: 'kek-tool', destination: process.stderr });
  const lifecycle = new Lifecycle(logger);
  try {
    const opened = await openDataKeys(config, logger, lifecycle);
    if (cmd.command === 'status') printStatus(opened.stored, print);
    else await rewrap(cmd, config, opened, lifecycle, logger, print);
  } finally {
    await lifecycle.shutdown(30_000, 'kek tool done');
  }
}

async function main(): Promise<void> {
  let cmd: KekCommand | 'help';
  try {
    cmd = parseKekArgs(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`kek: ${(err as Error).message}\n\n${USAGE}`);
    process.exit(2);
  }
  if (cmd === 'help') {
    process.stdout.write(USAGE);
    return;
  }
  try {
    const config = await readNodeConfig();
    await runKekCommand(cmd, config, (line) => process.stdout.write(`${line}\n`));
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`kek: ${err.message}\n`);
      process.exit(2);
    }
    if (err instanceof ConfigError || C2Error.is(err)) {
      process.stderr.write(`kek: ${err.message}\n`);
      process.exit(1);
    }
    process.stderr.write(`kek: ${(err as Error).message}\n`);
    process.exit(1);
  }
}

const invoked = process.argv[1];
if (invoked !== undefined && resolve(invoked) === fileURLToPath(import.meta.url)) await main();
