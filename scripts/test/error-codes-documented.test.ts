/**
 * The error codes users match on are documented where the README and the guides say they are:
 * every C2 code in the README's table and in docs/api.md's table with the gRPC and HTTP statuses
 * `api/errors-map.ts` gives it,
 * every protocol-library code in the README, every CLI exit code in docs/cli.md. A code added to
 * the code without its row fails here.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { status as GrpcStatus } from '@grpc/grpc-js';
import { ERROR_MAP } from '../../api/errors-map.ts';
import { ExitCode } from '../../cli/errors.ts';
import { C2ErrorCode } from '../../cluster/errors.ts';
import { E4ErrorCode } from '../../e4/src/errors.ts';

const read = (path: string): string =>
  readFileSync(new URL(`../../${path}`, import.meta.url), 'utf8');

/** The first cells of a Markdown document's table rows, split on `, ` and stripped of backticks. */
function tableKeys(markdown: string): Set<string> {
  const keys = new Set<string>();
  for (const line of markdown.split('\n')) {
    const cell = /^\|\s*([^|]+?)\s*\|/.exec(line)?.[1];
    if (cell === undefined) continue;
    for (const part of cell.split(/,\s*/)) keys.add(part.replaceAll('`', '').trim());
  }
  return keys;
}

void describe('documented error codes', () => {
  void it('README lists every C2 error code', () => {
    const keys = tableKeys(read('README.md'));
    for (const code of Object.values(C2ErrorCode))
      assert.ok(keys.has(code), `${code} in README.md`);
  });

  void it('docs/api.md gives every C2 error code the statuses the API answers with', () => {
    const rows = new Map<string, string[]>();
    for (const line of read('docs/api.md').split('\n')) {
      const cells = line.split('|').map((c) => c.trim());
      for (const code of cells[1]?.match(/`C2_[A-Z_]+`/g) ?? []) rows.set(code.slice(1, -1), cells);
    }
    for (const code of Object.values(C2ErrorCode)) {
      const cells = rows.get(code);
      assert.ok(cells !== undefined, `${code} in a table of docs/api.md`);
      const { grpc, http } = ERROR_MAP[code];
      assert.equal(cells[2], `${GrpcStatus[grpc]} (${grpc})`, `gRPC status of ${code}`);
      assert.equal(cells[3], String(http), `HTTP status of ${code}`);
    }
  });

  void it('README lists every protocol-library error code', () => {
    const keys = tableKeys(read('README.md'));
    for (const code of Object.values(E4ErrorCode))
      assert.ok(keys.has(code), `${code} in README.md`);
  });

  void it('docs/cli.md lists every exit code', () => {
    const keys = tableKeys(read('docs/cli.md'));
    for (const [name, code] of Object.entries(ExitCode))
      assert.ok(keys.has(String(code)), `exit code ${code} (${name}) in a table of docs/cli.md`);
  });
});
