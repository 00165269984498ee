/**
 * The node configuration as every composition root reads it: the environment (with the host name
 * as the default node id) and, when `E4C2_CONFIG_FILE` names one, the JSON config file.
 */
import { readFile, stat } from 'node:fs/promises';
import { hostname } from 'node:os';
import {
  CONFIG_FILE_ENV,
  ConfigError,
  loadConfig,
  SETTINGS,
  type Config,
} from '../cluster/config/index.ts';

/** The file keys of settings whose values are secret (`mqtt.password`, `database.url`, ...). */
const SECRET_FILE_KEYS = Object.values(SETTINGS)
  .filter((s) => 'secret' in s && s.secret)
  .map((s) => s.file);

/** Whether the parsed file sets `key` (a dotted path). */
function sets(document: unknown, key: string): boolean {
  let node: unknown = document;
  for (const part of key.split('.')) {
    if (typeof node !== 'object' || node === null || !(part in node)) return false;
    node = (node as Record<string, unknown>)[part];
  }
  return node !== undefined && node !== null && node !== '';
}

/**
 * A config file holding secrets must not be readable by others, as the KEK file must not: a
 * 0644 file with `mqtt.password` was accepted without a word.
 * @throws ConfigError naming the file, the secret settings (never their values) and the fix
 */
async function checkSecretFileMode(file: string, text: string): Promise<void> {
  let document: unknown;
  try {
    document = JSON.parse(text);
  } catch {
    return; // loadConfig reports a file that is not JSON
  }
  const secrets = SECRET_FILE_KEYS.filter((key) => sets(document, key));
  if (secrets.length === 0) return;
  const mode = (await stat(file)).mode & 0o777;
  if ((mode & 0o077) === 0) return;
  throw new ConfigError([
    `${CONFIG_FILE_ENV} ${file} holds secrets (${secrets.join(', ')}) and is readable by others (mode ${mode.toString(8).padStart(4, '0')}): run "chmod 600 ${file}"`,
  ]);
}

/**
 * Reads and validates the configuration.
 * @throws ConfigError listing every problem; the file's read error when it cannot be read
 */
export async function readNodeConfig(): Promise<Config> {
  const file = process.env[CONFIG_FILE_ENV];
  const text = file === undefined || file === '' ? undefined : await readFile(file, 'utf8');
  if (file !== undefined && text !== undefined) await checkSecretFileMode(file, text);
  return loadConfig({ HOSTNAME: hostname(), ...process.env }, text);
}
