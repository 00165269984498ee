/** Helpers for reading what the CLI printed. */
import assert from 'node:assert/strict';

/** The command words of an argv (everything before the first flag). */
export function words(argv: readonly string[]): string {
  const end = argv.findIndex((a) => a.startsWith('-'));
  return (end === -1 ? argv : argv.slice(0, end)).join(' ');
}

/** Parses stdout that must be exactly one JSON document on one line. */
export function json(stdout: string): unknown {
  assert.ok(stdout.endsWith('\n'));
  assert.equal(stdout.trimEnd().split('\n').length, 1, 'one JSON document on one line');
  return JSON.parse(stdout) as unknown;
}
