/**
 * Where the CPU goes during a step of `bench/fanout.ts`: user + system time of this process, of
 * the benchmark's child processes, of the broker and of the PostgreSQL server, read from
 * `/proc/<pid>/stat` before and after the step (Linux only; elsewhere the figures are null).
 * PostgreSQL's figure counts every process of the server (background workers, autovacuum, other
 * users' sessions on a shared machine), so it is an upper bound; the benchmark adds its own
 * sessions as a separate group.
 */
import { readdirSync, readFileSync } from 'node:fs';

/** Clock ticks per second of `/proc/<pid>/stat` (USER_HZ, 100 on Linux). */
const TICKS_PER_SECOND = 100;

/** CPU seconds per group of processes. */
export type CpuSeconds = Readonly<Record<string, number>>;

/** utime + stime of a process in ticks, or undefined when it is gone or unreadable. */
function ticks(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may contain spaces; fields after it are space-separated.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after the name.
    return Number(fields[11]) + Number(fields[12]);
  } catch {
    return undefined;
  }
}

/** Pids of the processes whose command name is `name`. */
function pidsNamed(name: string): number[] {
  const found: number[] = [];
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return found;
  }
  for (const entry of entries) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/comm`, 'utf8').trim() === name) found.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return found;
}

/** A set of process groups to watch. */
export class CpuWatch {
  readonly #groups: Map<string, () => number[]>;

  /** @param children - the benchmark's own child processes, by group name */
  constructor(children: () => Readonly<Record<string, readonly number[]>>) {
    this.#groups = new Map<string, () => number[]>([
      ['benchmark', () => [process.pid]],
      ['broker', () => pidsNamed('mosquitto')],
      ['postgres', () => pidsNamed('postgres')],
    ]);
    this.#children = children;
  }

  readonly #children: () => Readonly<Record<string, readonly number[]>>;

  /** Ticks per pid, grouped. */
  snapshot(): Map<string, Map<number, number>> {
    const groups = new Map<string, number[]>();
    for (const [name, pids] of this.#groups) groups.set(name, pids());
    for (const [name, pids] of Object.entries(this.#children())) groups.set(name, [...pids]);
    const result = new Map<string, Map<number, number>>();
    for (const [name, pids] of groups) {
      const perPid = new Map<number, number>();
      for (const pid of pids) {
        const t = ticks(pid);
        if (t !== undefined) perPid.set(pid, t);
      }
      result.set(name, perPid);
    }
    return result;
  }

  /**
   * CPU seconds used by each group since `before` (processes that started meanwhile count from
   * zero, processes that ended meanwhile are lost).
   */
  since(before: Map<string, Map<number, number>>): CpuSeconds {
    const after = this.snapshot();
    const out: Record<string, number> = {};
    for (const [name, perPid] of after) {
      let total = 0;
      for (const [pid, t] of perPid) total += t - (before.get(name)?.get(pid) ?? 0);
      out[name] = Math.round((total / TICKS_PER_SECOND) * 100) / 100;
    }
    return out;
  }
}
