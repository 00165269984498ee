#!/usr/bin/env node
// Runs every `*.test.ts` file of the project with Node's built-in test runner.
// Node 20 does not discover `.ts` files by itself, so this script lists them explicitly.
// Usage: node scripts/run-tests.mjs [path-prefix ...]   (no prefix: every test file)
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative, sep } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const skipped = new Set(['node_modules', 'data', 'dist', '.git', '.tmp']);

/** Lists test files below `dir`, sorted so runs are reproducible. */
function findTests(dir) {
  const found = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    if (skipped.has(entry.name)) continue;
    const path = join(dir, entry.name);
    if (entry.isDirectory()) found.push(...findTests(path));
    else if (entry.name.endsWith('.test.ts')) found.push(relative(root, path));
  }
  return found.sort();
}

const prefixes = process.argv.slice(2).map((p) => p.replace(/^\.\//, ''));
const files = findTests(root).filter(
  (f) =>
    prefixes.length === 0 ||
    prefixes.some((p) => f === p || f.startsWith(p.endsWith(sep) ? p : p + sep) || f.startsWith(p)),
);
if (files.length === 0) {
  console.error(`no test files match ${prefixes.join(' ') || '(all)'}`);
  process.exit(1);
}
// Human-readable spec output on stdout; a TAP copy on disk gives the totals for the summary line.
const tapDir = mkdtempSync(join(tmpdir(), 'e4-tests-'));
const tapFile = join(tapDir, 'results.tap');
const result = spawnSync(
  process.execPath,
  [
    '--import',
    'tsx',
    '--test',
    '--test-reporter=spec',
    '--test-reporter-destination=stdout',
    '--test-reporter=tap',
    `--test-reporter-destination=${tapFile}`,
    ...files,
  ],
  { cwd: root, stdio: 'inherit' },
);
let tap = '';
try {
  tap = readFileSync(tapFile, 'utf8');
} catch {
  // no TAP output: the runner itself failed; the exit status below says so
}
rmSync(tapDir, { recursive: true, force: true });
const count = (name) => Number(new RegExp(`^# ${name} (\\d+)$`, 'm').exec(tap)?.[1] ?? 0);
console.log(`${count('pass')} passed, ${count('fail')} failed, ${count('skipped')} skipped`);
process.exit(result.status ?? 1);
