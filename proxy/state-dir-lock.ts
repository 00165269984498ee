/**
 * One running proxy per state directory. A second start with the same configuration (a mistaken
 * second `npm run proxy`, a supervisor that starts one too many) would otherwise connect with the
 * same control client id and take the running proxy's control session over: the C2's commands
 * would be applied and saved by the second process only, and the running one would never hold
 * them in memory. So the start takes `<stateDir>/proxy.lock` before it touches the broker or the
 * stores, and a second start is refused naming the process that holds it.
 *
 * The lock is a file holding the holder's pid (and, on Linux, the start time of that process, so
 * a pid reused by another process is not taken for the holder). It outlives a proxy that was
 * killed (SIGKILL, power loss): a lock whose process is gone is stale and taken over, with a
 * warning. Pids are those of this machine (one pid namespace): proxies in separate containers
 * sharing a state directory on a volume do not see each other.
 */
import { randomBytes } from 'node:crypto';
import { link, mkdir, open, readFile, rename, unlink } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { fsFailure, ProxyError, ProxyErrorCode } from './errors.ts';
import type { ProxyLogger } from './logger.ts';

/** The lock file's name in the state directory. */
export const LOCK_FILE = 'proxy.lock';

/** What the lock file holds (JSON): nothing secret. */
interface LockHolder {
  readonly pid: number;
  /** `/proc/<pid>/stat` start time (clock ticks since boot), where there is a /proc. */
  readonly procStart?: string;
  /** When it was taken (ISO 8601), for people reading the file. */
  readonly since?: string;
}

/** State directories locked by this process (a second start in the same process is refused). */
const heldHere = new Set<string>();

/**
 * State and start time (clock ticks since boot) of process `pid` from `/proc/<pid>/stat`; undefined
 * where there is no /proc (not Linux) or no such process. (cluster/embedded/process-info.ts reads
 * the same for the C2's data directory lock; the layering keeps proxy/ from importing it.)
 */
async function procStat(
  pid: number,
): Promise<{ state: string | undefined; start: string | undefined } | undefined> {
  let stat: string;
  try {
    stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // Fields after the command name (which may hold spaces and parentheses): state is field 3,
  // starttime field 22.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return { state: fields[0], start: fields[19] };
}

/** True while a process with this pid exists (EPERM: it exists, owned by another user). */
function pidExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function parseHolder(text: string): LockHolder | undefined {
  try {
    const parsed = JSON.parse(text) as Partial<LockHolder> | null;
    if (typeof parsed?.pid !== 'number' || !Number.isSafeInteger(parsed.pid) || parsed.pid <= 0) {
      return undefined;
    }
    return parsed as LockHolder;
  } catch {
    return undefined;
  }
}

/**
 * True when the holder is running: its pid exists, is not ours (a lock left by an earlier
 * process with our pid, such as pid 1 in a restarted container), is no zombie (a killed proxy
 * its parent has not reaped yet), and, where both start times are known, started when the lock
 * says.
 */
async function holderRunning(holder: LockHolder): Promise<boolean> {
  if (holder.pid === process.pid || !pidExists(holder.pid)) return false;
  const now = await procStat(holder.pid);
  if (now?.state === 'Z') return false;
  return (
    holder.procStart === undefined || now?.start === undefined || now.start === holder.procStart
  );
}

/** A state directory held by this process until {@link StateDirLock.release}. */
export class StateDirLock {
  #released = false;

  private constructor(
    /** The lock file. */
    readonly path: string,
    private readonly dir: string,
    private readonly content: string,
  ) {}

  /**
   * Takes the lock of `stateDir` (made, mode 0700, when missing), taking over a stale one.
   * @throws ProxyError `PROXY_STATE_IN_USE` naming the directory and the pid of the running
   *   proxy that holds it; `PROXY_KEY_STORE` when the directory or the file cannot be made or read
   */
  static async acquire(stateDir: string, logger: ProxyLogger): Promise<StateDirLock> {
    const dir = resolve(stateDir);
    const path = join(dir, LOCK_FILE);
    try {
      return await StateDirLock.#acquire(dir, path, logger);
    } catch (err) {
      if (ProxyError.is(err)) throw err;
      throw new ProxyError(
        ProxyErrorCode.KeyStore,
        `stateDir ${dir}: cannot take the lock ${path}: ${fsFailure(err, path)}`,
        { cause: err },
      );
    }
  }

  static async #acquire(dir: string, path: string, logger: ProxyLogger): Promise<StateDirLock> {
    if (heldHere.has(dir)) throw inUse(dir, path, { pid: process.pid });
    try {
      await mkdir(dir, { recursive: true, mode: 0o700 });
    } catch (err) {
      throw new ProxyError(
        ProxyErrorCode.KeyStore,
        `stateDir ${dir}: cannot create the directory: ${fsFailure(err)}`,
        { cause: err },
      );
    }
    const procStart = (await procStat(process.pid))?.start;
    const content = `${JSON.stringify({
      pid: process.pid,
      ...(procStart === undefined ? {} : { procStart }),
      since: new Date().toISOString(),
    })}\n`;
    // Bounded: each round either takes the lock, meets a running holder, or removes a stale lock
    // (which another start may then take first).
    for (let round = 0; round < 5; round++) {
      if (await createExclusive(path, content)) {
        heldHere.add(dir);
        return new StateDirLock(path, dir, content);
      }
      let text: string;
      try {
        text = await readFile(path, 'utf8');
      } catch (err) {
        // Removed meanwhile (its holder stopped): try again.
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue;
        throw err;
      }
      const holder = parseHolder(text);
      // An unreadable lock (torn by a crash while it was written) is stale as well.
      if (holder !== undefined && (await holderRunning(holder))) throw inUse(dir, path, holder);
      if (await removeIfUnchanged(path, text)) {
        logger.warn(
          { stateDir: dir, stalePid: holder?.pid },
          `stateDir lock ${path} left by a proxy that is no longer running (pid ${holder?.pid ?? 'unknown'}): taken over`,
        );
      }
    }
    throw new ProxyError(
      ProxyErrorCode.StateInUse,
      `stateDir ${dir}: the lock ${path} keeps changing (several proxies starting at once?); start one proxy per state directory`,
    );
  }

  /** Releases the lock (removes the file if it is still ours); idempotent. */
  async release(): Promise<void> {
    if (this.#released) return;
    this.#released = true;
    heldHere.delete(this.dir);
    const text = await readFile(this.path, 'utf8').catch(() => undefined);
    if (text === this.content) await unlink(this.path).catch(() => undefined);
  }
}

function inUse(dir: string, path: string, holder: LockHolder): ProxyError {
  const since = holder.since === undefined ? '' : ` since ${holder.since}`;
  return new ProxyError(
    ProxyErrorCode.StateInUse,
    `stateDir ${dir} is in use by another proxy (pid ${holder.pid}${since}; lock ${path}): stop it first, or give this proxy a state directory of its own`,
  );
}

/** Creates `path` with `content` unless it exists; the content is complete once it is visible. */
async function createExclusive(path: string, content: string): Promise<boolean> {
  // Written aside, then linked into place: link fails when the name exists, and a reader never
  // sees a half-written lock.
  const tmp = `${path}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
  const handle = await open(tmp, 'wx', 0o600);
  try {
    await handle.writeFile(content, 'utf8');
  } finally {
    await handle.close();
  }
  try {
    await link(tmp, path);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw err;
  } finally {
    await unlink(tmp).catch(() => undefined);
  }
}

/**
 * Removes the stale lock `path` if it still holds `stale`. Two starts may find the same stale
 * lock: the file is moved aside first (one rename wins), and a file that turns out to be another
 * start's fresh lock is put back.
 * @returns true when the stale lock was removed by this call
 */
async function removeIfUnchanged(path: string, stale: string): Promise<boolean> {
  const aside = `${path}.stale-${process.pid}-${randomBytes(4).toString('hex')}`;
  try {
    await rename(path, aside);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw err;
  }
  const moved = await readFile(aside, 'utf8');
  if (moved !== stale) {
    // Another start's lock, taken since it was read: put it back (unless yet another took the
    // name meanwhile, when the retry below meets that one).
    await link(aside, path).catch(() => undefined);
    await unlink(aside);
    return false;
  }
  await unlink(aside);
  return true;
}
