/**
 * The node configuration as every composition root reads it: the environment (with the host name
 * as the default node id) and, when `E4C2_CONFIG_FILE` names one, the JSON config file.
 */
import { readFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { CONFIG_FILE_ENV, loadConfig, type Config } from '../cluster/config/index.ts';

/**
 * Reads and validates the configuration.
 * @throws ConfigError listing every problem; the file's read error when it cannot be read
 */
export async function readNodeConfig(): Promise<Config> {
  const file = process.env[CONFIG_FILE_ENV];
  const text = file === undefined || file === '' ? undefined : await readFile(file, 'utf8');
  return loadConfig({ HOSTNAME: hostname(), ...process.env }, text);
}
