/**
 * The one directory under which a single-node C2 keeps everything it persists (DESIGN §8), and the
 * lock that keeps two `npm start` off the same directory.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, stat, unlink, writeFile, access, constants } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { C2Error } from '../errors.ts';
import { isProcessAlive, processStartTime } from './process-info.ts';

/** Names inside the data directory (relative to it). */
export const DATA_DIR_LAYOUT = {
  /** The embedded PostgreSQL cluster (owned by the OS user `postgres` when the C2 runs as root). */
  postgres: 'postgres',
  /** The password of the embedded cluster's `postgres` role (mode 0600). */
  postgresPassword: 'postgres-password',
  /** The self-signed TLS certificate and its key. */
  tls: 'tls',
  /** Pid of the process that uses the directory. */
  lock: '.lock',
  readme: 'README.txt',
  /** The generated KEK of a node with no other KEK configured (see load-config.ts). */
  kek: 'kek.key',
} as const;

/** A prepared, locked data directory. */
export interface DataDir {
  /** Absolute path. */
  readonly path: string;
  /** Removes the lock (only if it is still ours). Idempotent. */
  release(): Promise<void>;
}

const README = `This directory holds the data of a single-node E4 C2 (\`npm start\` on embedded defaults).

  ${DATA_DIR_LAYOUT.postgres}/            the embedded PostgreSQL cluster: every client, topic and key of the C2
                       (when the C2 runs as root, this directory belongs to the OS user postgres)
  ${DATA_DIR_LAYOUT.postgresPassword}    password of the cluster's postgres role (keep it with the cluster)
  ${DATA_DIR_LAYOUT.tls}/                 self-signed TLS certificate (cert.pem) and key (key.pem) of the API
  ${DATA_DIR_LAYOUT.kek}              the key-encryption key that wraps every key in the database (when no
                       other KEK is configured): created at the first start, mode 0600
  ${DATA_DIR_LAYOUT.lock}                pid of the C2 that is using this directory

Back up the directory while the C2 is stopped, but keep ${DATA_DIR_LAYOUT.kek} apart from the
copies of the rest (offline, or in a secret store): together they open every key of the fleet.
Restoring needs both. Deleting the directory resets the C2 to an empty state and a new
certificate (clients that trusted the old one must be given the new cert.pem).
The embedded MQTT broker keeps nothing on disk. (ops/backup/backup.sh needs a pg_dump of the
embedded PostgreSQL's major version or newer; a copy of the stopped directory needs nothing.)
`;

/**
 * Creates the data directory (mode 0700; an existing one keeps its mode), writes `README.txt` and
 * takes the lock `<path>/.lock`, which holds this process's pid. A lock left by a dead process (or
 * by a pid since reused by another process) is taken over.
 * @throws C2Error `C2_FAILED_PRECONDITION` when another live process holds the lock
 * @throws C2Error `C2_CONFIG` when the path is not a writable directory
 */
export async function prepareDataDir(path: string): Promise<DataDir> {
  const dir = resolve(path);
  try {
    await mkdir(dir, { recursive: true, mode: 0o700 });
    if (!(await stat(dir)).isDirectory()) throw new Error('not a directory');
    await access(dir, constants.W_OK | constants.X_OK);
  } catch (cause) {
    throw new C2Error('C2_CONFIG', `data directory ${dir} is not a writable directory`, {
      cause,
    });
  }
  const lockPath = join(dir, DATA_DIR_LAYOUT.lock);
  const content = `${process.pid}\n${(await processStartTime(process.pid)) ?? ''}\n`;
  await acquireLock(dir, lockPath, content);
  let released: Promise<void> | undefined;
  const release = (): Promise<void> => (released ??= releaseLock(lockPath, content));
  try {
    await writeFile(join(dir, DATA_DIR_LAYOUT.readme), README, { mode: 0o644 });
  } catch (cause) {
    await release();
    throw new C2Error('C2_CONFIG', `data directory ${dir} is not writable`, { cause });
  }
  return { path: dir, release };
}

/** The lock file's content: pid, then the process start time when the OS tells it. */
interface LockOwner {
  readonly pid: number;
  readonly startTime: string | undefined;
}

function parseLock(raw: string): LockOwner | undefined {
  const [pidLine, startLine] = raw.split('\n');
  const pid = Number(pidLine);
  if (!Number.isSafeInteger(pid) || pid <= 0) return undefined;
  return { pid, startTime: startLine === undefined || startLine === '' ? undefined : startLine };
}

async function isLive(owner: LockOwner): Promise<boolean> {
  if (!(await isProcessAlive(owner.pid))) return false;
  // Same pid, different start time: the pid was reused after the owner died (typical of
  // containers, where the C2 gets the same pid on every start).
  const now = await processStartTime(owner.pid);
  return owner.startTime === undefined || now === undefined || now === owner.startTime;
}

/** How long a lock file with unreadable content counts as "being written" rather than stale. */
const YOUNG_LOCK_MS = 5_000;

async function acquireLock(dir: string, lockPath: string, content: string): Promise<void> {
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      await writeFile(lockPath, content, { flag: 'wx', mode: 0o600 });
      return;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') {
        throw new C2Error('C2_CONFIG', `cannot create the lock file ${lockPath}`, { cause: err });
      }
    }
    const raw = await readFile(lockPath, 'utf8').catch(() => undefined);
    if (raw === undefined) continue; // released in the meantime: try again
    const owner = parseLock(raw);
    if (owner !== undefined && (await isLive(owner))) {
      const self = owner.pid === process.pid ? ' (this process)' : '';
      throw new C2Error(
        'C2_FAILED_PRECONDITION',
        `data directory ${dir} is in use by process ${owner.pid}${self}: stop that C2 first, or ` +
          `choose another data directory`,
        { details: { pid: owner.pid } },
      );
    }
    if (owner === undefined && (await isYoung(lockPath))) {
      throw new C2Error(
        'C2_FAILED_PRECONDITION',
        `data directory ${dir} is being locked by another process right now; try again`,
      );
    }
    await takeOverStale(lockPath, raw);
  }
  throw new C2Error('C2_FAILED_PRECONDITION', `cannot lock data directory ${dir}; try again`);
}

async function isYoung(path: string): Promise<boolean> {
  const info = await stat(path).catch(() => undefined);
  return info !== undefined && Date.now() - info.mtimeMs < YOUNG_LOCK_MS;
}

/**
 * Removes a stale lock whose content was `staleRaw`. Two processes can find the same stale lock at
 * once; a short-lived guard file makes sure only one removes it, so the other cannot remove the
 * fresh lock the first one has just written.
 */
async function takeOverStale(lockPath: string, staleRaw: string): Promise<void> {
  const guard = `${lockPath}.takeover`;
  const token = randomBytes(8).toString('hex');
  try {
    await writeFile(guard, token, { flag: 'wx', mode: 0o600 });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    // A guard is held for milliseconds; an old one was left by a crash during a take-over.
    if (!(await isYoung(guard))) await unlink(guard).catch(() => undefined);
    return; // the caller loops and looks at the lock again
  }
  try {
    const current = await readFile(lockPath, 'utf8').catch(() => undefined);
    if (current === staleRaw) await unlink(lockPath).catch(() => undefined);
  } finally {
    await unlink(guard).catch(() => undefined);
  }
}

async function releaseLock(lockPath: string, content: string): Promise<void> {
  // Only our own lock: if it was taken over (we were presumed dead), it is no longer ours to remove.
  const current = await readFile(lockPath, 'utf8').catch(() => undefined);
  if (current === content) await unlink(lockPath).catch(() => undefined);
}
