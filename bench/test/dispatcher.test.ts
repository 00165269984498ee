/**
 * The benchmark dispatcher (`npm run bench`) loads every `.ts` file directly in `bench/` as a
 * benchmark, before it reads its arguments: a script that runs at import (a measurement tool
 * parsing its own arguments) broke every benchmark, `fanout` included. Tools live in
 * `bench/tools/`.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readdir } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const benchDir = join(dirname(fileURLToPath(import.meta.url)), '..');

void test('the dispatcher lists every benchmark file of bench/, each loading as a benchmark', async () => {
  const files = (await readdir(benchDir, { withFileTypes: true }))
    .filter((e) => e.isFile() && e.name.endsWith('.ts') && e.name !== 'run.ts')
    .map((e) => e.name.slice(0, -'.ts'.length))
    .sort();
  const { stdout } = await promisify(execFile)(
    process.execPath,
    ['--import', 'tsx', join(benchDir, 'run.ts'), '--list'],
    { timeout: 60_000 },
  );
  const listed = stdout
    .trim()
    .split('\n')
    .map((line) => line.split('\t')[0]);
  assert.deepEqual(listed, files);
  assert.ok(listed.includes('fanout'), 'the fan-out benchmark is one of them');
});
