/**
 * The earlier release of an upgrade practice, made runnable: a `git worktree` of the commit with
 * its own `npm ci` (its own dependencies: a release runs what its lock file says), or a directory
 * given as it is. A worktree prepared once is reused: a marker written after its `npm ci`
 * succeeded names the commit, so an interrupted preparation is redone rather than trusted.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';

/** Written into a prepared worktree once its `npm ci` succeeded: the commit it holds. */
const READY_MARKER = '.e4c2-release-ready';

/** An earlier release, ready to run. */
export interface PreparedRelease {
  /** Its checkout: nodes run `bin/start.ts` there. */
  readonly dir: string;
  /** Its commit, when known (a given directory outside git has none). */
  readonly commit: string | undefined;
}

/**
 * Runs a command; each output line goes to `log` (npm's progress is on both streams), and its
 * standard output is also returned. @throws Error naming the command on failure
 */
function run(
  command: string,
  args: readonly string[],
  cwd: string,
  log: (line: string) => void,
): Promise<string> {
  return new Promise((done, fail) => {
    const child = spawn(command, [...args], { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    createInterface({ input: child.stdout, crlfDelay: Infinity }).on('line', (line) => {
      out += `${line}\n`;
      log(line);
    });
    createInterface({ input: child.stderr, crlfDelay: Infinity }).on('line', log);
    child.once('error', fail);
    // 'close', not 'exit': the output streams have ended by then, so `out` is whole.
    child.once('close', (code) => {
      if (code === 0) done(out);
      else fail(new Error(`${command} ${args.join(' ')} failed (exit code ${code ?? '?'})`));
    });
  });
}

/** `npm ci` in `dir`, its progress passed on. */
async function npmCi(dir: string, log: (line: string) => void): Promise<void> {
  log(`upgrade: npm ci in ${dir} (the earlier release's own dependencies; a minute or two)`);
  await run('npm', ['ci', '--no-audit', '--no-fund'], dir, (line) => {
    log(`npm | ${line}`);
  });
}

/**
 * Makes `from` runnable: a directory is used as it is (after `npm ci` when it has no
 * `node_modules`); anything else is resolved as a commit of `repo` and checked out into
 * `releaseDir` (default `/tmp/e4c2-release-<commit>`) as a detached worktree, reused when an
 * earlier run prepared it.
 * @throws Error when `from` is neither, or a step fails
 */
export async function prepareRelease(
  from: string,
  repo: string,
  releaseDir: string | undefined,
  log: (line: string) => void,
): Promise<PreparedRelease> {
  if (existsSync(join(from, 'package.json'))) {
    const dir = resolve(from);
    if (!existsSync(join(dir, 'node_modules'))) await npmCi(dir, log);
    const head = await run('git', ['rev-parse', 'HEAD'], dir, () => undefined).catch(() => '');
    log(`upgrade: the earlier release is the checkout in ${dir}`);
    return { dir, commit: head.trim() === '' ? undefined : head.trim() };
  }
  const commit = (
    await run('git', ['rev-parse', '--verify', `${from}^{commit}`], repo, () => undefined).catch(
      () => {
        throw new Error(`--from ${from} is neither a directory holding a release nor a commit`);
      },
    )
  ).trim();
  const dir = resolve(releaseDir ?? join(tmpdir(), `e4c2-release-${commit.slice(0, 12)}`));
  const marker = join(dir, READY_MARKER);
  const prepared = await readFile(marker, 'utf8').catch(() => '');
  if (prepared.trim() === commit) {
    log(`upgrade: reusing the worktree of ${commit.slice(0, 12)} prepared in ${dir}`);
    return { dir, commit };
  }
  if (existsSync(dir)) {
    if (!existsSync(join(dir, 'package.json')))
      throw new Error(`${dir} exists and is no checkout: remove it or choose --release-dir`);
    const head = (await run('git', ['rev-parse', 'HEAD'], dir, () => undefined)).trim();
    if (head !== commit)
      throw new Error(`${dir} holds ${head.slice(0, 12)}, not ${commit.slice(0, 12)}`);
    log(`upgrade: finishing the worktree of ${commit.slice(0, 12)} in ${dir}`);
  } else {
    log(`upgrade: git worktree add --detach ${dir} ${commit.slice(0, 12)}`);
    await run('git', ['worktree', 'add', '--detach', dir, commit], repo, (line) => {
      log(`git | ${line}`);
    });
  }
  await npmCi(dir, log);
  await writeFile(marker, `${commit}\n`);
  return { dir, commit };
}
