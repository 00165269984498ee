/**
 * Facts about other processes, by pid, for the stale-lock decisions of the directory locks
 * (dir-lock.ts: the C2's data directory, a proxy's state directory) and of PostgreSQL's
 * `postmaster.pid`.
 *
 * A pid alone is weak evidence: after a crash and a restart (a container restart especially, where
 * the C2 gets the same small pid every time) a recorded pid can belong to a live, unrelated
 * process. On Linux the process start time from `/proc/<pid>/stat` tells the two apart; elsewhere
 * these functions answer conservatively ("might be alive").
 */
import { readFile } from 'node:fs/promises';

/**
 * True when a process with this pid exists (including one owned by another user, which makes
 * `kill(pid, 0)` fail with EPERM). A zombie counts as dead: it holds no resources any more, and
 * on machines whose pid 1 does not reap orphans it may linger for ever.
 */
export async function isProcessAlive(pid: number): Promise<boolean> {
  if (!Number.isSafeInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  const stat = await readProcStat(pid);
  return stat?.state !== 'Z';
}

/**
 * The start time of a process in clock ticks since boot (Linux `/proc/<pid>/stat` field 22), as a
 * string; `undefined` when unknown (not Linux, or no such process).
 */
export async function processStartTime(pid: number): Promise<string | undefined> {
  return (await readProcStat(pid))?.startTime;
}

/**
 * The command line of a process as its arguments (Linux `/proc/<pid>/cmdline`); `undefined` when
 * unknown.
 */
export async function processCommandLine(pid: number): Promise<readonly string[] | undefined> {
  try {
    const raw = await readFile(`/proc/${pid}/cmdline`, 'utf8');
    return raw.split('\0').filter((arg) => arg !== '');
  } catch {
    return undefined;
  }
}

async function readProcStat(
  pid: number,
): Promise<{ readonly state: string; readonly startTime: string } | undefined> {
  let raw: string;
  try {
    raw = await readFile(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // Field 2 is the command name in parentheses and may itself hold spaces and parentheses, so the
  // fixed fields are counted from the last ')': state is field 3, starttime field 22.
  const fields = raw.slice(raw.lastIndexOf(')') + 2).split(' ');
  const state = fields[0];
  const startTime = fields[19];
  return state === undefined || startTime === undefined ? undefined : { state, startTime };
}
