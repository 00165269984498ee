/** The KEK every node of a local cluster opens its keys with. */
import { randomBytes } from 'node:crypto';
import { chmod, mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { DEFAULT_VAULT_KEY, SETTINGS, type SettingSpec } from '../cluster/config/index.ts';

/**
 * Reads the cluster's KEK passphrase from `<dataDir>/kek-passphrase`, creating it (mode 0600,
 * 32 random bytes as hex) on first use.
 * @throws Error when the file is readable by others or too short
 */
export async function loadOrCreatePassphrase(dataDir: string): Promise<string> {
  await mkdir(dataDir, { recursive: true, mode: 0o700 });
  const file = resolve(dataDir, 'kek-passphrase');
  try {
    await writeFile(file, randomBytes(32).toString('hex') + '\n', { flag: 'wx', mode: 0o600 });
    await chmod(file, 0o600); // the umask may have taken bits away, never added: be explicit
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
  const info = await stat(file);
  if ((info.mode & 0o077) !== 0)
    throw new Error(
      `${file} is readable by others (mode ${(info.mode & 0o777).toString(8)}); chmod 600 it`,
    );
  const passphrase = (await readFile(file, 'utf8')).trim();
  if (Buffer.byteLength(passphrase) < 16)
    throw new Error(`${file} holds a passphrase shorter than 16 bytes`);
  return passphrase;
}

/**
 * The KEK the environment sets for every node, described for the address block, or `undefined`
 * when it sets none (the launcher then makes a shared passphrase file).
 */
export function explicitKek(env: Readonly<Record<string, string | undefined>>): string | undefined {
  const set = (spec: SettingSpec): string | undefined => {
    const v = env[spec.env];
    return v === undefined || v === '' ? undefined : v;
  };
  const file = set(SETTINGS.kekFile);
  if (file !== undefined) return `${SETTINGS.kekFile.env} (${file})`;
  if (set(SETTINGS.kekPassphrase) !== undefined)
    return `${SETTINGS.kekPassphrase.env} (from the environment)`;
  const vault = set(SETTINGS.kekVaultAddr);
  if (vault !== undefined)
    return `Vault transit key "${set(SETTINGS.kekVaultKey) ?? DEFAULT_VAULT_KEY}" at ${vault}`;
  const module = set(SETTINGS.kekPkcs11Module);
  if (module !== undefined)
    return `PKCS#11 key on token "${set(SETTINGS.kekPkcs11Token) ?? '?'}" (${SETTINGS.kekPkcs11Module.env} ${module})`;
  return undefined;
}
