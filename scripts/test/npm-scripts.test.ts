/**
 * The npm scripts that run one node process `exec` it: npm passes SIGTERM and SIGINT to its child
 * only, and a shell child does not pass them on, so `kill -TERM` of `npm run proxy` (or a process
 * manager stopping `npm start`) left the node running without npm. `npm start` has a test of
 * its own that stops it (bin/test/start-stop.integration.test.ts); this one holds the rule for
 * every script.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';

const pkg = JSON.parse(readFileSync('package.json', 'utf8')) as {
  scripts: Record<string, string>;
};

void describe('npm scripts', () => {
  void it('exec the node process they run, so that signals reach it', () => {
    const single = Object.entries(pkg.scripts).filter(([, command]) => !command.includes('&&'));
    const runsNode = single.filter(([, command]) => /(^|\s)node\s/.test(command));
    assert.ok(runsNode.length >= 8, `only ${runsNode.length} node scripts found`);
    const without = runsNode.filter(([, command]) => !command.startsWith('exec node '));
    assert.deepEqual(
      without.map(([name]) => name),
      [],
      'scripts that run node without exec',
    );
  });
});
