/**
 * Which lines of a node's output an upgrade practice reports: log lines at level warn or above
 * (pino's numeric levels: 40 warn, 50 error, 60 fatal) and anything on stderr that is no log line
 * (a stack trace, a runtime warning). A roll that works logs neither, but for the warnings the
 * practice's own set-up causes ({@link EXPECTED_WARNINGS}), which are counted, not reported.
 */

import type { Release } from './roll-history.ts';

/** pino's level of `warn`. */
const WARN = 40;

/** Warnings the practice's set-up causes on every start, whichever release: not the roll's. */
export const EXPECTED_WARNINGS: ReadonlyArray<{ readonly msg: RegExp; readonly why: string }> = [
  {
    msg: /^API authentication is off/,
    why: 'the practice runs without API credentials, as `npm run cluster` does',
  },
];

/** What a line is: nothing to report, a warning the set-up causes, or a warning (or worse). */
export type LineKind = 'quiet' | 'expected' | 'warning';

/**
 * Whether a warning line is one the earlier release is known to log (`--known-old-warning`):
 * only on a node that runs the earlier release, and only when a pattern matches its message.
 */
export function isKnownOldWarning(
  line: string,
  release: Release,
  known: readonly RegExp[],
): boolean {
  if (release !== 'old' || known.length === 0) return false;
  const message = logMessage(line);
  return message !== undefined && known.some((pattern) => pattern.test(message));
}

/** The message of a pino log line, or `undefined` for any other line. */
function logMessage(line: string): string | undefined {
  try {
    const parsed: unknown = JSON.parse(line);
    if (typeof parsed !== 'object' || parsed === null) return undefined;
    const { msg } = parsed as { msg?: unknown };
    return typeof msg === 'string' ? msg : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Classifies a node's output line.
 * @param stream - where the node wrote it
 */
export function classifyLine(stream: 'stdout' | 'stderr', line: string): LineKind {
  if (line.trim() === '') return 'quiet';
  const other: LineKind = stream === 'stderr' ? 'warning' : 'quiet';
  let parsed: unknown;
  try {
    parsed = JSON.parse(line);
  } catch {
    return other;
  }
  if (typeof parsed !== 'object' || parsed === null) return other;
  const { level, msg } = parsed as { level?: unknown; msg?: unknown };
  if (typeof level !== 'number') return other;
  if (level < WARN) return 'quiet';
  const text = typeof msg === 'string' ? msg : '';
  return EXPECTED_WARNINGS.some((e) => e.msg.test(text)) ? 'expected' : 'warning';
}
