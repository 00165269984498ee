/**
 * One process per directory: the C2's data directory (`<dataDir>/.lock`) and a protection proxy's
 * state directory (`<stateDir>/proxy.lock`) take this lock before they touch what is inside, so
 * that a second start on the same directory is refused naming the process that holds it.
 *
 * The lock is a file of three lines: the holder's pid, the start time of that process (Linux
 * `/proc/<pid>/stat`, empty elsewhere: a pid reused by another process is then not taken for the
 * holder) and when it was taken (ISO 8601, for people reading the file). The first line alone is
 * the pid, for scripts. It outlives a holder that was killed (SIGKILL, power loss): a lock whose
 * process is gone is stale and taken over. Pids are those of this machine (one pid namespace):
 * processes in separate containers sharing a directory on a volume do not see each other.
 */
import { randomBytes } from 'node:crypto';
import { link, open, readFile, rename, unlink } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { isProcessAlive, processStartTime } from './process-info.ts';

/** Who holds a lock, as its file says. */
export interface LockHolder {
  readonly pid: number;
  /** Start time of the process (clock ticks since boot), where the OS tells it. */
  readonly procStart?: string;
  /** When it was taken (ISO 8601), where the file says. */
  readonly since?: string;
}

/** Why a lock was not taken (callers map these to their own typed errors). */
export type DirLockErrorCode =
  /** A running process holds it (this one included): see {@link DirLockError.holder}. */
  | 'DIR_LOCK_IN_USE'
  /** It kept changing hands while this start looked at it (several starts at once). */
  | 'DIR_LOCK_CONTENDED';

/** The lock is someone else's; nothing was changed. */
export class DirLockError extends Error {
  override readonly name = 'DirLockError';

  constructor(
    readonly code: DirLockErrorCode,
    /** The lock file. */
    readonly path: string,
    /** Its running holder (`DIR_LOCK_IN_USE`). */
    readonly holder?: LockHolder,
  ) {
    super(
      code === 'DIR_LOCK_IN_USE'
        ? `${path} is held by process ${holder?.pid ?? 'unknown'}`
        : `${path} keeps changing hands`,
    );
  }

  /** True when `err` is a {@link DirLockError} (with `code`, when given). */
  static is(err: unknown, code?: DirLockErrorCode): err is DirLockError {
    return err instanceof DirLockError && (code === undefined || err.code === code);
  }
}

/**
 * The locks this process holds, by lock file: a second lock in the same process is refused while
 * the file still holds what this process wrote (a file since replaced, as a test replaces it to
 * play a crashed holder, is judged by what it holds now).
 */
const heldHere = new Map<string, { readonly content: string }>();

/**
 * Reads a lock file: the three lines this module writes, or the JSON object
 * (`{"pid":N,"procStart":"...","since":"..."}`) that proxies wrote before they shared this lock,
 * so that a lock left by an earlier release is understood. Undefined when it is neither (torn).
 */
export function parseLockHolder(text: string): LockHolder | undefined {
  let fields: { pid?: unknown; procStart?: unknown; since?: unknown };
  if (text.trimStart().startsWith('{')) {
    try {
      fields = (JSON.parse(text) as typeof fields | null) ?? {};
    } catch {
      return undefined;
    }
  } else {
    const [pid, procStart, since] = text.split('\n');
    // The pid line must be complete (a newline after it) and hold only digits.
    if (pid === undefined || !/^[0-9]+$/.test(pid) || !text.includes('\n')) return undefined;
    fields = { pid: Number(pid), procStart, since };
  }
  const { pid, procStart, since } = fields;
  if (typeof pid !== 'number' || !Number.isSafeInteger(pid) || pid <= 0) return undefined;
  return {
    pid,
    ...(typeof procStart === 'string' && procStart !== '' ? { procStart } : {}),
    ...(typeof since === 'string' && since !== '' ? { since } : {}),
  };
}

/**
 * True when the holder is running: its pid exists, is not ours (a lock left by an earlier
 * process with our pid, such as pid 1 in a restarted container: the locks of this process are
 * in `heldHere`), is no zombie (a killed holder its parent has not reaped yet), and, where both start
 * times are known, started when the lock says.
 */
async function holderRunning(holder: LockHolder): Promise<boolean> {
  if (holder.pid === process.pid || !(await isProcessAlive(holder.pid))) return false;
  const now = await processStartTime(holder.pid);
  return holder.procStart === undefined || now === undefined || now === holder.procStart;
}

/** Options of {@link DirLock.acquire}. */
export interface DirLockOptions {
  /** A stale lock (its process gone) was removed to take this one: say so. */
  readonly onStaleTakenOver?: (stale: LockHolder | undefined) => void;
}

/** A directory held by this process until {@link DirLock.release}. */
export class DirLock {
  #released: Promise<void> | undefined;

  private constructor(
    /** The lock file. */
    readonly path: string,
    private readonly dir: string,
    private readonly held: { readonly content: string },
  ) {}

  /**
   * Takes the lock `fileName` of the existing directory `dir`, taking over a stale one.
   * @throws DirLockError `DIR_LOCK_IN_USE` (a running process holds it, this one included) or
   *   `DIR_LOCK_CONTENDED`; the file system's error when the lock file cannot be made or read
   */
  static async acquire(
    dir: string,
    fileName: string,
    options: DirLockOptions = {},
  ): Promise<DirLock> {
    const absolute = resolve(dir);
    const path = join(absolute, fileName);
    const procStart = (await processStartTime(process.pid)) ?? '';
    const content = `${process.pid}\n${procStart}\n${new Date().toISOString()}\n`;
    // Bounded: each round either takes the lock, meets a running holder, or removes a stale lock
    // (which another start may then take first).
    for (let round = 0; round < 5; round++) {
      if (await createExclusive(path, content)) {
        const held = { content };
        heldHere.set(path, held);
        return new DirLock(path, absolute, held);
      }
      let text: string;
      try {
        text = await readFile(path, 'utf8');
      } catch (err) {
        // Removed meanwhile (its holder stopped): try again.
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue;
        throw err;
      }
      if (heldHere.get(path)?.content === text) {
        throw new DirLockError('DIR_LOCK_IN_USE', path, { pid: process.pid });
      }
      const holder = parseLockHolder(text);
      // The file is complete once visible (createExclusive): an unreadable one was torn by a
      // crash (or written by hand), and is stale as well.
      if (holder !== undefined && (await holderRunning(holder))) {
        throw new DirLockError('DIR_LOCK_IN_USE', path, holder);
      }
      if (await removeIfUnchanged(path, text)) options.onStaleTakenOver?.(holder);
    }
    throw new DirLockError('DIR_LOCK_CONTENDED', path);
  }

  /** The locked directory (absolute). */
  get directory(): string {
    return this.dir;
  }

  /** Releases the lock (removes the file if it is still ours); idempotent. */
  release(): Promise<void> {
    this.#released ??= this.#release();
    return this.#released;
  }

  async #release(): Promise<void> {
    if (heldHere.get(this.path) === this.held) heldHere.delete(this.path);
    // Only our own lock: if it was taken over (we were presumed dead), it is no longer ours.
    const text = await readFile(this.path, 'utf8').catch(() => undefined);
    if (text === this.held.content) await unlink(this.path).catch(() => undefined);
  }
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
