// docs/cli.md and `e4c2 --help` name the same commands and global flags: the help is generated
// from the command table, the guide is written by hand, and a command added to one only (as
// `token new` was, documented in prose but in no command table) is one a reader of the other
// never finds.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { COMMAND_TABLE } from '../commands/index.ts';
import { GLOBAL_FLAGS } from '../spec.ts';

const GUIDE = readFileSync(new URL('../../docs/cli.md', import.meta.url), 'utf8');

/** The text of the guide's `## title` section, up to the next `## ` heading. */
function section(title: string): string {
  const start = GUIDE.indexOf(`\n## ${title}\n`);
  assert.ok(start >= 0, `docs/cli.md has a "## ${title}" section`);
  const end = GUIDE.indexOf('\n## ', start + 1);
  return GUIDE.slice(start, end < 0 ? undefined : end);
}

/** The first cells of a section's table rows (header and separator rows left out). */
function firstCells(text: string): string[] {
  const cells: string[] = [];
  for (const line of text.split('\n')) {
    const cell = /^\|((?:[^|\\]|\\.)*)\|/.exec(line)?.[1]?.trim();
    if (cell === undefined || cell === 'command' || cell === 'flag' || /^-+$/.test(cell)) continue;
    cells.push(cell);
  }
  return cells;
}

/**
 * The commands a cell of the command tables names: each backticked span's words up to its first
 * flag, the last word possibly alternatives (`rules list\|get` names `rules list` and `rules get`).
 */
function commandsOf(cell: string): string[] {
  const names: string[] = [];
  for (const [, span = ''] of cell.matchAll(/`([^`]+)`/g)) {
    const words = span.split(' ');
    const end = words.findIndex((w) => w.startsWith('-'));
    const path = end < 0 ? words : words.slice(0, end);
    const last = path.pop() ?? '';
    for (const alternative of last.split('\\|')) names.push([...path, alternative].join(' '));
  }
  return names;
}

void describe('docs/cli.md and the command table', () => {
  const documented = new Set(firstCells(section('Commands')).flatMap(commandsOf));
  const commands = COMMAND_TABLE.commands.map((c) => c.path.join(' '));

  void it('every command of `e4c2 --help` has a row in the command tables of docs/cli.md', () => {
    const missing = commands.filter((c) => !documented.has(c));
    assert.deepEqual(missing, [], 'commands without a row in docs/cli.md "## Commands"');
  });

  void it('every command the command tables of docs/cli.md name exists', () => {
    const known = new Set(commands);
    const unknown = [...documented].filter((c) => !known.has(c));
    assert.deepEqual(unknown, [], 'rows of docs/cli.md "## Commands" that name no command');
  });

  void it('every global flag has a row in the "Connecting" table', () => {
    const rows = firstCells(section('Connecting')).join('\n');
    const missing = GLOBAL_FLAGS.filter((f) => !rows.includes(`--${f.name}`)).map((f) => f.name);
    assert.deepEqual(missing, [], 'global flags without a row in docs/cli.md "## Connecting"');
  });
});
