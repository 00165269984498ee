/**
 * The one directory under which a single-node C2 keeps everything it persists (DESIGN §8), and the
 * lock that keeps two `npm start` off the same directory.
 */
import { mkdir, stat, writeFile, access, constants } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { DirLock, DirLockError } from '../../runtime/dir-lock.ts';
import { C2Error } from '../errors.ts';

/** Names inside the data directory (relative to it). */
export const DATA_DIR_LAYOUT = {
  /** The embedded PostgreSQL cluster (owned by the OS user `postgres` when the C2 runs as root). */
  postgres: 'postgres',
  /** The password of the embedded cluster's `postgres` role (mode 0600). */
  postgresPassword: 'postgres-password',
  /** The self-signed TLS certificate and its key. */
  tls: 'tls',
  /** Pid of the process that uses the directory (runtime/dir-lock.ts: pid, start time, since). */
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
  const lock = await acquireLock(dir);
  const release = (): Promise<void> => lock.release();
  try {
    await writeFile(join(dir, DATA_DIR_LAYOUT.readme), README, { mode: 0o644 });
  } catch (cause) {
    await release();
    throw new C2Error('C2_CONFIG', `data directory ${dir} is not writable`, { cause });
  }
  return { path: dir, release };
}

/** Takes `<dir>/.lock` (runtime/dir-lock.ts), as a C2 error when it cannot. */
async function acquireLock(dir: string): Promise<DirLock> {
  try {
    return await DirLock.acquire(dir, DATA_DIR_LAYOUT.lock);
  } catch (err) {
    if (DirLockError.is(err, 'DIR_LOCK_IN_USE')) {
      const pid = err.holder?.pid ?? process.pid;
      const self = pid === process.pid ? ' (this process)' : '';
      throw new C2Error(
        'C2_FAILED_PRECONDITION',
        `data directory ${dir} is in use by process ${pid}${self}: stop that C2 first, or ` +
          `choose another data directory`,
        { details: { pid } },
      );
    }
    if (DirLockError.is(err)) {
      throw new C2Error('C2_FAILED_PRECONDITION', `cannot lock data directory ${dir}; try again`);
    }
    throw new C2Error(
      'C2_CONFIG',
      `cannot create the lock file ${join(dir, DATA_DIR_LAYOUT.lock)}`,
      { cause: err },
    );
  }
}
