/**
 * `npm run proxy` as a process, as an operator runs it: for the tests of the command line and of
 * what happens between processes (a second start, a SIGKILL).
 */
import { spawn, spawnSync, type ChildProcessByStdio } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../..', import.meta.url));
const main = join(root, 'proxy', 'main.ts');

/** A proxy process with its output piped. */
export type ProxyProcess = ChildProcessByStdio<null, Readable, Readable>;

/** Runs the proxy's command line to its end (at most 30 s). */
export function runProxy(
  args: string[],
  input?: string,
): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, ['--import', 'tsx', main, ...args], {
    cwd: root,
    input,
    encoding: 'utf8',
    timeout: 30_000,
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Starts `--mode local --config FILE` as a process, its output piped. */
export function spawnProxy(config: string): ProxyProcess {
  return spawn(process.execPath, ['--import', 'tsx', main, '--mode', 'local', '--config', config], {
    cwd: root,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
}

/**
 * Resolves with the start-up line (`e4 protection proxy ...`) once the proxy printed it; rejects
 * when it exits first or prints none within 30 s.
 */
export function startupLine(child: ProxyProcess): Promise<string> {
  const lines = createInterface({ input: child.stdout });
  return new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => {
      reject(new Error('no start-up line within 30 s'));
    }, 30_000);
    lines.on('line', (line) => {
      if (line.startsWith('e4 protection proxy')) {
        clearTimeout(timer);
        resolve(line);
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`exited with ${String(code)}`));
    });
  });
}
