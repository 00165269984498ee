/**
 * The on-disk side of the embedded PostgreSQL: which OS user runs it, directory ownership, the
 * one-time `initdb`, the role password, and stale `postmaster.pid` files.
 *
 * PostgreSQL refuses to run as root. When the C2 runs as root (as on the project's machines), the
 * binaries run as the OS user `postgres`, so that user must own the cluster directory and be able
 * to reach it and the binaries through every parent directory.
 */
import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  chmod,
  chown,
  mkdir,
  readdir,
  readFile,
  rename,
  rm,
  rmdir,
  stat,
  unlink,
  writeFile,
} from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { C2Error } from '../errors.ts';
import { isProcessAlive, processCommandLine } from '../../runtime/process-info.ts';
import type { EmbeddedLogger } from './logger.ts';
import type { PostgresBinaries } from './postgres-binaries.ts';

/** The OS identity the PostgreSQL processes run as, when it is not our own. */
export interface RunAs {
  readonly name: string;
  readonly uid: number;
  readonly gid: number;
}

const execFileAsync = promisify(execFile);

/** The OS user PostgreSQL runs as when we are root. */
const POSTGRES_OS_USER = 'postgres';

/**
 * `undefined` when we are not root (PostgreSQL runs as us); otherwise the `postgres` OS user.
 * @throws C2Error `C2_CONFIG` when we are root and no `postgres` user exists
 */
export async function postgresRunAs(): Promise<RunAs | undefined> {
  if (process.getuid?.() !== 0) return undefined;
  try {
    const [uid, gid] = await Promise.all([
      idOf(['-u', POSTGRES_OS_USER]),
      idOf(['-g', POSTGRES_OS_USER]),
    ]);
    return { name: POSTGRES_OS_USER, uid, gid };
  } catch (cause) {
    throw new C2Error(
      'C2_CONFIG',
      `embedded PostgreSQL: running as root, and PostgreSQL refuses to run as root, but there is ` +
        `no OS user "${POSTGRES_OS_USER}" to run it as; create one (useradd --system ` +
        `${POSTGRES_OS_USER}), run the C2 as a non-root user, or set DATABASE_URL`,
      { cause },
    );
  }
}

async function idOf(args: readonly string[]): Promise<number> {
  const { stdout } = await execFileAsync('id', args);
  const id = Number(stdout.trim());
  if (stdout.trim() === '' || !Number.isSafeInteger(id)) throw new Error(`id printed "${stdout}"`);
  return id;
}

/**
 * Makes sure `runAs` can reach `target` (a directory, or a binary's directory). `ownDir` (our
 * data directory, mode 0700 by default) is opened to the user's group with g+x (traverse only,
 * no listing); any other parent that blocks the way is an error naming it.
 * @throws C2Error `C2_CONFIG` naming the first directory `runAs` cannot traverse
 */
export async function ensureReachable(
  target: string,
  runAs: RunAs,
  log: EmbeddedLogger,
  ownDir?: string,
): Promise<void> {
  const chain: string[] = [];
  for (let dir = target; ; dir = dirname(dir)) {
    chain.unshift(dir);
    if (dirname(dir) === dir) break;
  }
  for (const dir of chain) {
    const info = await stat(dir);
    if (canTraverse(info, runAs)) continue;
    if (dir === ownDir) {
      await chown(dir, info.uid, runAs.gid);
      await chmod(dir, (info.mode & 0o7777) | 0o010);
      log.info(
        { dir, group: runAs.gid },
        `embedded PostgreSQL: let OS user ${runAs.name} traverse the data directory (g+x)`,
      );
      continue;
    }
    throw new C2Error(
      'C2_CONFIG',
      `embedded PostgreSQL runs as OS user ${runAs.name} (PostgreSQL refuses root) and cannot ` +
        `reach ${target}: ${dir} has mode ${(info.mode & 0o777).toString(8)} and owner ` +
        `${info.uid}:${info.gid}; choose a data directory outside it or allow traversal ` +
        `(chmod o+x ${dir})`,
    );
  }
}

function canTraverse(info: { uid: number; gid: number; mode: number }, who: RunAs): boolean {
  // Exactly the kernel's rule for a process without supplementary groups, which is what the
  // child gets: libuv clears them when it switches uid/gid.
  if (info.uid === who.uid) return (info.mode & 0o100) !== 0;
  if (info.gid === who.gid) return (info.mode & 0o010) !== 0;
  return (info.mode & 0o001) !== 0;
}

/** What the cluster directory holds. */
export type ClusterDirState = 'absent' | 'empty' | 'cluster';

/**
 * Tells a first start (no cluster yet) from a restart by the cluster's `PG_VERSION` file.
 * @throws C2Error `C2_CONFIG` when the directory holds something that is not a PostgreSQL cluster
 */
export async function inspectClusterDir(pgDir: string): Promise<ClusterDirState> {
  let entries: string[];
  try {
    entries = await readdir(pgDir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 'absent';
    throw new C2Error('C2_CONFIG', `embedded PostgreSQL: cannot read ${pgDir}`, { cause: err });
  }
  if (entries.length === 0) return 'empty';
  if (entries.includes('PG_VERSION')) return 'cluster';
  throw new C2Error(
    'C2_CONFIG',
    `embedded PostgreSQL: ${pgDir} is neither empty nor a PostgreSQL cluster (no PG_VERSION); ` +
      `move it away`,
  );
}

/**
 * The `postgres` role's password, kept next to the cluster (mode 0600, readable by the C2 only):
 * a random one rather than a fixed one, because any local user can reach a loopback port.
 * @throws C2Error `C2_CONFIG` when the cluster exists but its password file is gone
 */
export async function readOrCreatePassword(path: string, clusterExists: boolean): Promise<string> {
  try {
    const stored = (await readFile(path, 'utf8')).trim();
    if (stored !== '') return stored;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
      throw new C2Error('C2_CONFIG', `embedded PostgreSQL: cannot read ${path}`, { cause: err });
    }
  }
  if (clusterExists) {
    throw new C2Error(
      'C2_CONFIG',
      `embedded PostgreSQL: the cluster exists but its password file ${path} is missing or ` +
        `empty; restore it, or delete the cluster directory to start from an empty database`,
    );
  }
  const password = randomBytes(24).toString('base64url');
  await writeFile(path, `${password}\n`, { mode: 0o600 });
  return password;
}

/** Inputs of {@link initCluster}. */
export interface InitClusterOptions {
  readonly binaries: PostgresBinaries;
  readonly pgDir: string;
  /** The C2 data directory, parent of `pgDir`; holds the short-lived password file for initdb. */
  readonly dataDir: string;
  readonly password: string;
  readonly runAs: RunAs | undefined;
  readonly log: EmbeddedLogger;
}

/**
 * Creates the cluster in an absent or empty `pgDir` with `initdb`: UTF-8, C collation (the same on
 * every machine, no dependence on installed OS locales), SCRAM passwords for every connection.
 * initdb works in a side directory renamed into place at the end, so that a C2 killed during its
 * first start leaves no half-made cluster that later starts would take for a real one.
 * @throws C2Error `C2_UNAVAILABLE` with initdb's own message when it fails
 */
export async function initCluster(options: InitClusterOptions): Promise<void> {
  const { binaries, pgDir, dataDir, password, runAs, log } = options;
  const workDir = `${pgDir}.initdb`;
  await rm(workDir, { recursive: true, force: true });
  // inspectClusterDir found pgDir absent or empty; an empty one makes way for the rename.
  await rmdir(pgDir).catch((err: unknown) => {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  });
  await mkdir(workDir, { mode: 0o700 });
  if (runAs !== undefined) await chown(workDir, runAs.uid, runAs.gid);
  // initdb reads the password from a file; this one lives in our data directory, readable only by
  // the user initdb runs as, and only for the duration of initdb.
  const pwFile = join(dataDir, `.initdb-pw-${randomBytes(6).toString('hex')}`);
  await writeFile(pwFile, `${password}\n`, { mode: 0o600, flag: 'wx' });
  try {
    if (runAs !== undefined) await chown(pwFile, runAs.uid, runAs.gid);
    const result = await runToEnd(
      binaries.initdb,
      [
        `--pgdata=${workDir}`,
        '--username=postgres',
        `--pwfile=${pwFile}`,
        '--auth=scram-sha-256',
        '--encoding=UTF8',
        '--locale=C',
        '--no-instructions',
      ],
      { runAs, cwd: dataDir },
    );
    log.debug({ output: result.output }, 'embedded PostgreSQL: initdb output');
    if (result.code !== 0) {
      throw new C2Error(
        'C2_UNAVAILABLE',
        `embedded PostgreSQL: initdb failed on ${workDir} (exit ${result.code ?? result.signal}): ` +
          tail(result.output, 6),
      );
    }
    await rename(workDir, pgDir);
  } finally {
    await unlink(pwFile).catch(() => undefined);
  }
}

/**
 * Removes a `postmaster.pid` left by a crash, so that a restart is not refused. The file is
 * removed only when its pid is not a running PostgreSQL server (dead, or reused by another
 * program); PostgreSQL alone would refuse to start when the pid was reused.
 * @throws C2Error `C2_FAILED_PRECONDITION` when a PostgreSQL server still runs on `pgDir`
 */
export async function clearStalePidFile(pgDir: string, log: EmbeddedLogger): Promise<void> {
  const pidFile = join(pgDir, 'postmaster.pid');
  let raw: string;
  try {
    raw = await readFile(pidFile, 'utf8');
  } catch {
    return;
  }
  const pid = Number(raw.split('\n')[0]);
  if (Number.isSafeInteger(pid) && pid > 0 && (await isProcessAlive(pid))) {
    const argv = await processCommandLine(pid);
    // Without /proc (macOS) a live pid cannot be told apart, so it counts as a server.
    const isServer = argv === undefined || argv.some((arg) => /postgres/.test(arg));
    if (isServer) {
      throw new C2Error(
        'C2_FAILED_PRECONDITION',
        `embedded PostgreSQL: a server (pid ${pid}) is still running on ${pgDir}, probably ` +
          `left over from a C2 that was killed; stop it (kill -INT ${pid}) and start again`,
        { details: { pid } },
      );
    }
  }
  await unlink(pidFile);
  log.warn(
    { stalePid: pid, pidFile },
    'embedded PostgreSQL: removed a stale postmaster.pid (crash?)',
  );
}

/** Result of {@link runToEnd}: exit status and interleaved stdout and stderr. */
interface RunResult {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly output: string;
}

function runToEnd(
  command: string,
  args: readonly string[],
  options: { readonly runAs: RunAs | undefined; readonly cwd: string },
): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      cwd: options.cwd,
      env: childEnv(),
      stdio: ['ignore', 'pipe', 'pipe'],
      ...(options.runAs === undefined ? {} : { uid: options.runAs.uid, gid: options.runAs.gid }),
    });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
    child.once('error', (err) => {
      reject(new C2Error('C2_UNAVAILABLE', `cannot run ${command}`, { cause: err }));
    });
    child.once('close', (code, signal) => {
      resolve({ code, signal, output });
    });
  });
}

/**
 * The environment of PostgreSQL's processes: ours, with English messages (our error reports
 * quote them) and without PG* variables that could point the tools elsewhere.
 */
export function childEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (!key.startsWith('PG')) env[key] = value;
  }
  env['LC_ALL'] = 'C';
  return env;
}

/** The last `lines` non-empty lines of `output`, joined for a one-line message. */
export function tail(output: string, lines: number): string {
  const kept = output
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '');
  return kept.slice(-lines).join(' | ') || '(no output)';
}
