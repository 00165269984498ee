/**
 * The protocol library's examples in README.md and docs/protocol.md run as written: a device
 * developer copies them first. Every `ts` block that imports `./e4/index.ts` is run as a program
 * (an ES module, that import pointed at this checkout) in an empty directory, and must exit 0.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath, pathToFileURL } from 'node:url';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const LIBRARY_IMPORT = "from './e4/index.ts'";

/** The `ts` blocks of a Markdown file that import the protocol library. */
async function libraryExamples(path: string): Promise<string[]> {
  const text = await readFile(join(ROOT, path), 'utf8');
  const blocks = [...text.matchAll(/^```ts\n([\s\S]*?)^```$/gm)].map((m) => m[1] ?? '');
  return blocks.filter((block) => block.includes(LIBRARY_IMPORT));
}

function run(file: string, cwd: string): Promise<{ code: number; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      // The tsx of this checkout: the example's directory has no node_modules.
      ['--import', import.meta.resolve('tsx'), file],
      { cwd, timeout: 60_000 },
      (err, _stdout, stderr) => {
        resolve({ code: err === null ? 0 : typeof err.code === 'number' ? err.code : -1, stderr });
      },
    );
  });
}

void describe('protocol library examples in the docs', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'e4-doc-examples-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  for (const [path, count] of [
    ['README.md', 1],
    ['docs/protocol.md', 4],
  ] as const) {
    void it(`${path}: each example runs`, async () => {
      const examples = await libraryExamples(path);
      assert.equal(examples.length, count, `examples found in ${path}`);
      const library = pathToFileURL(join(ROOT, 'e4/index.ts')).href;
      for (const [i, example] of examples.entries()) {
        const file = join(dir, `${path.replaceAll('/', '-')}-${i}.mts`);
        await writeFile(file, example.replaceAll(LIBRARY_IMPORT, `from '${library}'`));
        // Twice: a second boot of the load-or-create example takes the other branch.
        for (const round of [1, 2]) {
          const { code, stderr } = await run(file, dir);
          assert.equal(code, 0, `${path} example ${i + 1}, run ${round}:\n${stderr}`);
        }
      }
    });
  }
});
