/**
 * A signal during start-up (Ctrl-C, a closed terminal, a `kill`) stops what the start had made:
 * no PostgreSQL, Redis, Mosquitto or node left running, no temporary directory left (they hold
 * tens of MB and the KEK passphrase), and the exit status of the signal. Each run gets a TMPDIR
 * of its own and its children are watched while it runs, so that what it leaves is told apart
 * from what other runs on the machine have.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

/**
 * Every live process: `pid starttime` (so a reused pid is not taken for one seen before), its
 * parent and its command. Zombies are dead already, only not reaped yet.
 */
function processTable(): Array<{ id: string; pid: number; ppid: number; comm: string }> {
  const table = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'latin1');
      const comm = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
      // After the command, which may hold spaces: state, ppid, ...; starttime is field 22.
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (fields[0] === 'Z') continue;
      const id = `${entry} ${fields[19] ?? ''}`;
      table.push({ id, pid: Number(entry), ppid: Number(fields[1]), comm });
    } catch {
      // gone meanwhile
    }
  }
  return table;
}

/**
 * Watches the children of `pid` until stopped: services, nodes and Redlock Redis are all started
 * by the run itself (in process groups of their own, and redis-server overwrites its environment,
 * so neither the group nor the environment finds them all afterwards).
 */
function watchChildren(pid: number): { seen: Set<string>; stop: () => void } {
  const seen = new Set<string>();
  const look = (): void => {
    // tsx's esbuild service is the runner's own, and ends with it (on its closed stdin).
    for (const p of processTable()) if (p.ppid === pid && p.comm !== 'esbuild') seen.add(p.id);
  };
  const timer = setInterval(look, 50);
  return {
    seen,
    stop: () => {
      clearInterval(timer);
    },
  };
}

/** Those of `ids` still alive. */
const alive = (ids: Iterable<string>): number[] => {
  const now = new Set(processTable().map((p) => p.id));
  return [...ids].filter((id) => now.has(id)).map((id) => Number(id.split(' ')[0]));
};

/**
 * Starts a run, sends `signal` once `when` shows in its progress (to its process group, as a
 * terminal does, or to it alone, as `kill` does), and reports what it left behind.
 */
async function interrupt(
  signal: NodeJS.Signals,
  when: RegExp,
  afterMs: number,
  group: boolean,
  /** The signal again this soon after (the copy npm forwards of one Ctrl-C). */
  copyAfterMs?: number,
): Promise<{ code: number | null; dirs: string[]; processes: number[]; err: string }> {
  const tmp = mkdtempSync(join(tmpdir(), 'chaos-interrupt-'));
  chmodSync(tmp, 0o755); // as root, PostgreSQL runs as its own user, which must get through
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', 'chaos/main.ts', '--scenario', 'worker-crash', '--duration', '8'],
    {
      cwd: ROOT,
      env: { ...process.env, TMPDIR: tmp },
      stdio: ['ignore', 'ignore', 'pipe'],
      detached: true,
    },
  );
  const children = watchChildren(child.pid ?? 0);
  let err = '';
  const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
  try {
    await new Promise<void>((resolve, reject) => {
      child.stderr.on('data', (d: Buffer) => {
        err += d.toString();
        if (when.test(err)) resolve();
      });
      child.on('exit', () => {
        reject(new Error(`exited before ${when.source}:\n${err}`));
      });
    });
    // Mid-step: initdb running, or nodes starting.
    await new Promise((r) => setTimeout(r, afterMs));
    process.kill(group ? -(child.pid ?? 0) : (child.pid ?? 0), signal);
    if (copyAfterMs !== undefined) {
      await new Promise((r) => setTimeout(r, copyAfterMs));
      process.kill(child.pid ?? 0, signal);
    }
    let timer: NodeJS.Timeout | undefined;
    const code = await Promise.race([
      exited,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => {
          reject(new Error(`still running 90 s after ${signal}:\n${err}`));
        }, 90_000);
      }),
    ]).finally(() => {
      clearTimeout(timer);
      children.stop();
    });
    // tsx keeps its cache in TMPDIR too; the suite's own directories are e4c2-*.
    const dirs = readdirSync(tmp).filter((d) => d.startsWith('e4c2-'));
    return { code, dirs, processes: alive(children.seen), err };
  } finally {
    // Whatever a failing run left: never leave it to the machine.
    children.stop();
    child.kill('SIGKILL');
    for (const pid of alive(children.seen)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    rmSync(tmp, { recursive: true, force: true });
  }
}

void describe('a chaos run interrupted during start-up', { timeout: 240_000 }, () => {
  // A terminal signals the whole foreground group: initdb (which shares it) dies too.
  for (const [signal, when, afterMs, group, status] of [
    ['SIGHUP', /starting PostgreSQL, Redis and Mosquitto/, 300, true, 129],
    ['SIGINT', /starting PostgreSQL, Redis and Mosquitto/, 300, true, 130],
    ['SIGTERM', /cluster: starting/, 1000, false, 143],
  ] as const) {
    void it(`${signal}${group ? ' to its process group' : ''} while ${when.source}: nothing left`, async () => {
      const left = await interrupt(signal, when, afterMs, group);
      assert.equal(left.code, status, left.err);
      assert.match(left.err, new RegExp(`${signal}: stopping everything`));
      assert.doesNotMatch(left.err, /could not complete/, 'an interruption is no failure');
      assert.deepEqual(left.dirs, [], 'temporary directories left');
      assert.deepEqual(left.processes, [], 'processes left');
    });
  }

  // `npm run chaos`: the terminal's SIGINT and npm's forwarded copy, 50 ms apart, are one Ctrl-C.
  void it('SIGINT and its copy from npm while the cluster starts: stopped in order, nothing left', async () => {
    const left = await interrupt('SIGINT', /cluster: starting/, 1000, false, 50);
    assert.equal(left.code, 130, left.err);
    assert.match(left.err, /SIGINT: stopping everything/);
    assert.deepEqual(left.dirs, [], 'temporary directories left');
    assert.deepEqual(left.processes, [], 'processes left');
  });
});
