/**
 * The version a process reports (`c2_node_info{version}`, the `service.version` of its spans):
 * the package version, and the build it came from. Every build of one package version says
 * `0.1.0`, so without the build the `C2VersionSkew` alert could never see a rolling upgrade left
 * half done. The build is the `BUILD_ID` file an image build writes (Dockerfile, `E4C2_BUILD`),
 * else the commit of the checkout the process runs from.
 */
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

/** What a build id may look like (a commit, a tag, a CI run number). */
const BUILD_ID = /^[0-9A-Za-z][0-9A-Za-z._-]{0,63}$/;
const COMMIT = /^[0-9a-f]{40}([0-9a-f]{24})?$/;

function readText(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}

/**
 * Where the checkout's git state is: its `.git` directory, or for a worktree (or a submodule)
 * the directory its `.git` file names (`gitdir: ...`), with the shared refs in the directory
 * that one's `commondir` names (a worktree's refs are the main checkout's).
 */
function gitDirs(root: string): { readonly head: string; readonly refs: string } {
  const dotGit = join(root, '.git');
  const gitdir = /^gitdir: (.+)$/m.exec(readText(dotGit) ?? '')?.[1]?.trim();
  if (gitdir === undefined) return { head: dotGit, refs: dotGit };
  const head = resolve(root, gitdir);
  const common = readText(join(head, 'commondir'))?.trim();
  return { head, refs: common === undefined || common === '' ? head : resolve(head, common) };
}

/** The commit HEAD names in the checkout `root` (a `.git` directory, or a worktree's file). */
function gitCommit(root: string): string | undefined {
  const git = gitDirs(root);
  const head = readText(join(git.head, 'HEAD'))?.trim();
  if (head === undefined) return undefined;
  if (COMMIT.test(head)) return head;
  const ref = /^ref: (refs\/[\w./-]+)$/.exec(head)?.[1];
  if (ref === undefined || ref.includes('..')) return undefined;
  const loose = readText(join(git.refs, ref))?.trim();
  if (loose !== undefined) return COMMIT.test(loose) ? loose : undefined;
  // A ref that `git gc` packed: `<commit> <ref>` lines.
  for (const line of (readText(join(git.refs, 'packed-refs')) ?? '').split('\n')) {
    const [commit, name] = line.trim().split(' ');
    if (name === ref && commit !== undefined && COMMIT.test(commit)) return commit;
  }
  return undefined;
}

/** The build id: the `BUILD_ID` file's first line, else the checkout's commit (12 digits). */
function buildId(root: string): string | undefined {
  const written = readText(join(root, 'BUILD_ID'))?.split('\n')[0]?.trim();
  if (written !== undefined && BUILD_ID.test(written)) return written;
  return gitCommit(root)?.slice(0, 12);
}

/**
 * `<package version>+<build>` (`0.1.0+3f5c20f1a2b4`), or the package version alone when the
 * build is unknown, or `unknown` without a readable package.json.
 * @param root - the directory holding package.json
 */
export function buildVersion(root: string): string {
  let version = 'unknown';
  try {
    const pkg = JSON.parse(readText(join(root, 'package.json')) ?? '') as { version?: unknown };
    if (typeof pkg.version === 'string') version = pkg.version;
  } catch {
    return version;
  }
  const build = buildId(root);
  return build === undefined ? version : `${version}+${build}`;
}
