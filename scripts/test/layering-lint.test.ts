/**
 * The layering of DESIGN.md §4 is enforced by ESLint (`eslint.config.js`, import-x
 * `no-restricted-paths`). This lints probe modules placed in each layer, through the project's
 * own configuration, so that a zone that stops matching (a renamed directory, an edited list)
 * fails here instead of silently allowing every import.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { ESLint } from 'eslint';
import tseslint from 'typescript-eslint';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const RULE = 'import-x/no-restricted-paths';

// The probes are not files on disk, so the type-aware rules (which need them in the TypeScript
// project) are switched off; the import rules resolve the imported files, which do exist.
const eslint = new ESLint({ cwd: ROOT, overrideConfig: [tseslint.configs.disableTypeChecked] });

/** The layering errors of a module at `path` (relative to the root) importing `specifier`. */
async function layeringErrors(path: string, specifier: string): Promise<string[]> {
  const code = `import * as probe from '${specifier}';\nexport const used = probe;\n`;
  const [result] = await eslint.lintText(code, { filePath: join(ROOT, path) });
  assert.ok(result !== undefined, `a result for ${path}`);
  const fatal = result.messages.filter((m) => m.fatal === true);
  assert.deepEqual(fatal, [], `${path} parses`);
  return result.messages.filter((m) => m.ruleId === RULE).map((m) => m.message);
}

/** [the importing module, what it imports] */
type Import = readonly [string, string];

const FORBIDDEN: readonly Import[] = [
  ['e4/src/probe.ts', '../../cluster/config/index.ts'],
  ['e4/src/probe.ts', '../../bin/cluster.ts'],
  ['e4/src/probe.ts', '../../runtime/dir-lock.ts'],
  ['runtime/probe.ts', '../e4/src/bytes.ts'],
  ['runtime/probe.ts', '../cluster/config/index.ts'],
  ['runtime/probe.ts', '../proxy/errors.ts'],
  ['cli/probe.ts', '../runtime/stop-signals.ts'],
  ['web/probe.js', '../runtime/stop-signals.ts'],
  ['cluster/probe.ts', '../api/index.ts'],
  ['cluster/probe.ts', '../worker/index.ts'],
  ['api/probe.ts', '../worker/index.ts'],
  ['api/probe.ts', '../bin/cluster.ts'],
  ['worker/probe.ts', '../api/index.ts'],
  ['proxy/probe.ts', '../cluster/config/index.ts'],
  ['cli/probe.ts', '../cluster/config/index.ts'],
  ['cli/probe.ts', '../bin/free-ports.ts'],
  ['web/probe.js', '../e4/src/bytes.ts'],
  // Tests keep their layer's rules, except for bin/free-ports.ts.
  ['cli/test/probe.test.ts', '../../bin/cluster.ts'],
  ['cluster/test/probe.test.ts', '../../api/index.ts'],
];

const ALLOWED: readonly Import[] = [
  ['cluster/probe.ts', '../e4/src/bytes.ts'],
  ['api/probe.ts', '../cluster/config/index.ts'],
  ['worker/probe.ts', '../cluster/config/index.ts'],
  ['proxy/probe.ts', '../e4/src/bytes.ts'],
  ['proxy/probe.ts', '../runtime/dir-lock.ts'],
  ['cluster/probe.ts', '../runtime/stop-signals.ts'],
  ['bin/probe.ts', '../runtime/stop-signals.ts'],
  ['bin/probe.ts', '../api/index.ts'],
  ['chaos/probe.ts', '../bin/cluster.ts'],
  ['cli/test/probe.test.ts', '../../bin/free-ports.ts'],
  ['cluster/test/probe.test.ts', '../../bin/free-ports.ts'],
];

void describe('layering lint (DESIGN.md §4)', () => {
  for (const [path, specifier] of FORBIDDEN) {
    void it(`forbids ${path} -> ${specifier}`, async () => {
      const errors = await layeringErrors(path, specifier);
      assert.equal(errors.length, 1, `one layering error, got: ${errors.join(' | ')}`);
    });
  }
  for (const [path, specifier] of ALLOWED) {
    void it(`allows ${path} -> ${specifier}`, async () => {
      assert.deepEqual(await layeringErrors(path, specifier), []);
    });
  }
});
