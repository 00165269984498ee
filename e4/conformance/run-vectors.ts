/**
 * `npm run vectors [-- DIR]`: checks the E4 library against every case of every reference vector
 * file (default: the copy in `e4/conformance/vectors`), prints one line per failure and a summary
 * per file, and ends with `N passed, M failed`. Exits 1 when anything failed.
 */
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { checkVectorFile, vectorFiles } from './vector-cases.ts';

async function main(): Promise<number> {
  const dir = process.argv[2] ?? new URL('./vectors', import.meta.url).pathname;
  const present = new Set((await readdir(dir)).filter((f) => f.endsWith('.json')));
  let passed = 0;
  let failed = 0;
  for (const fileName of Object.keys(vectorFiles)) {
    if (!present.has(fileName)) {
      console.log(`FAIL ${fileName}: missing from ${dir}`);
      failed++;
      continue;
    }
    const content = JSON.parse(await readFile(join(dir, fileName), 'utf8')) as Record<
      string,
      unknown
    >;
    const results = await checkVectorFile(fileName, content);
    const fileFailed = results.filter((r) => !r.passed);
    for (const r of fileFailed) console.log(`FAIL ${r.file}: ${r.name}: ${r.detail ?? ''}`);
    console.log(`${fileName}: ${results.length - fileFailed.length}/${results.length} passed`);
    passed += results.length - fileFailed.length;
    failed += fileFailed.length;
  }
  for (const extra of present) {
    if (!(extra in vectorFiles)) console.log(`note: ${extra} is not a known vector file, skipped`);
  }
  console.log(`${passed} passed, ${failed} failed`);
  return failed === 0 ? 0 : 1;
}

process.exitCode = await main();
