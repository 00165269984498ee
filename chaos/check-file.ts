/**
 * `npm run chaos -- --check FILE`: the checker again on a recorded `.history.json`, nothing
 * started. A file that is missing or is not a history is the caller's mistake, said in one line
 * (exit 2, as a usage error), not a stack trace that exit 1 ("violations found") would follow.
 */
import { readFile } from 'node:fs/promises';
import { checkRun, type InvariantId, type Violation } from './checker.ts';
import type { RunRecord } from './history.ts';
import { invariantStatuses, type InvariantStatus } from './invariant-status.ts';

/** A file that cannot be checked; `code` is the exit status (2: a wrong file, 3: unreadable). */
export class CheckFileError extends Error {
  constructor(
    message: string,
    readonly code: 2 | 3,
  ) {
    super(message);
  }
}

/** Mistakes in naming the file, as opposed to a failing disk. */
const WRONG_FILE = new Set(['ENOENT', 'ENOTDIR', 'EISDIR']);

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

const isNumber = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);
const isString = (v: unknown): v is string => typeof v === 'string';

/** Fields every operation, device apply and fault needs, by type (the checker reads them all). */
const ELEMENT_FIELDS: Readonly<
  Record<string, ReadonlyArray<readonly [string, 'number' | 'string']>>
> = {
  operations: [
    ['id', 'number'],
    ['kind', 'string'],
    ['outcome', 'string'],
    ['invokedAt', 'number'],
    ['completedAt', 'number'],
  ],
  applies: [
    ['device', 'string'],
    ['type', 'string'],
    ['at', 'number'],
  ],
  faults: [
    ['kind', 'string'],
    ['target', 'string'],
    ['startedAt', 'number'],
    ['endedAt', 'number'],
  ],
};

/** What is wrong with the first element of `list` that lacks a field, or `undefined`. */
function badElement(name: string, list: readonly unknown[]): string | undefined {
  const fields = ELEMENT_FIELDS[name] ?? [];
  for (const [i, element] of list.entries()) {
    if (!isObject(element)) return `"${name}"[${i}] is not an object`;
    for (const [field, type] of fields) {
      const v = element[field];
      if (type === 'number' ? !isNumber(v) : typeof v !== 'string')
        return `"${name}"[${i}] has no ${type} "${field}"`;
    }
  }
  return undefined;
}

/**
 * What is wrong with a final client's failure times (I6 compares them), or `undefined`. Both are
 * optional (older histories), but a wrong type would compare as nothing and hide a report.
 */
function badFailureTimes(client: unknown, i: number): string | undefined {
  if (!isObject(client)) return `its final "clients"[${i}] is not an object`;
  const at = client['failedAt'];
  if (at !== undefined && at !== null && !isNumber(at))
    return `its final "clients"[${i}] has a "failedAt" that is no number`;
  const reports = client['failureReports'];
  if (
    reports !== undefined &&
    !(Array.isArray(reports) && reports.every((r) => isObject(r) && isNumber(r['at'])))
  )
    return `its final "clients"[${i}] has "failureReports" that are not a list of {"at": number}`;
  return undefined;
}

/**
 * What makes `value` no history the checker can read, or `undefined` when it is one. Every field
 * a check reads is required with its type: a history missing one would otherwise pass that check
 * unseen (a missing `convergenceDeadlineMs` compares as false, so no outbox row is ever too old;
 * a missing `budget.duringFaults` never exceeds the budget).
 */
function notAHistory(value: unknown): string | undefined {
  if (!isObject(value)) return 'it is not a JSON object';
  // A summary (`<scenario>-seed<N>.json`) has a count of operations, a history their list.
  if (typeof value['replay'] === 'string')
    return 'it is a summary; the checker reads the .history.json beside it';
  for (const field of ['operations', 'applies', 'faults']) {
    const list = value[field];
    if (!Array.isArray(list)) return `it has no "${field}" list`;
    const bad = badElement(field, list);
    if (bad !== undefined) return bad;
  }
  if (typeof value['scenario'] !== 'string') return 'it has no string "scenario"';
  for (const field of ['seed', 'deliveryCap', 'networkCopies', 'healedAt', 'convergenceDeadlineMs'])
    if (!isNumber(value[field])) return `it has no number "${field}"`;
  const budget = value['budget'];
  if (!isObject(budget)) return 'it has no "budget"';
  for (const field of ['duringFaults', 'settleMs'])
    if (!isNumber(budget[field])) return `its budget has no number "${field}"`;
  const final = value['final'];
  if (!isObject(final)) return 'it has no "final" state';
  for (const field of [
    'topics',
    'c2Keys',
    'clients',
    'devices',
    'audit',
    'outbox',
    'leaks',
    'crashes',
  ])
    if (!Array.isArray(final[field])) return `its final state has no "${field}" list`;
  const clientFault = (final['clients'] as unknown[]).map(badFailureTimes).find(Boolean);
  if (clientFault !== undefined) return clientFault;
  const apiNodes = value['apiNodes'];
  if (apiNodes !== undefined && !(Array.isArray(apiNodes) && apiNodes.every(isString)))
    return '"apiNodes" is not a list of node names';
  const automation = value['automation'];
  if (automation !== undefined) {
    if (!isObject(automation)) return '"automation" is not an object';
    if (!isNumber(automation['intervalMs']) || !isNumber(automation['finalKeyVersion']))
      return '"automation" has no number "intervalMs" or "finalKeyVersion"';
    if (!Array.isArray(automation['firings'])) return '"automation" has no "firings" list';
  }
  return undefined;
}

/** Reads and validates a recorded run. @throws CheckFileError */
export async function readHistory(file: string): Promise<RunRecord> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? '';
    const why = code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'a directory' : code;
    throw new CheckFileError(
      `cannot read ${file}: ${why || (err as Error).message}`,
      WRONG_FILE.has(code) ? 2 : 3,
    );
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new CheckFileError(`${file} is not JSON: not a chaos history (.history.json)`, 2);
  }
  const wrong = notAHistory(value);
  if (wrong !== undefined)
    throw new CheckFileError(`${file} is not a chaos history (.history.json): ${wrong}`, 2);
  return value as RunRecord;
}

/** The checker's verdict on a file. @throws CheckFileError */
export async function checkFile(file: string): Promise<{
  readonly scenario: string;
  readonly seed: number;
  /** Per invariant: passed, violated, or not applicable to this run and why. */
  readonly invariants: Record<InvariantId, InvariantStatus>;
  violations: Violation[];
}> {
  const record = await readHistory(file);
  let violations: Violation[];
  try {
    violations = checkRun(record);
  } catch (err) {
    // The shape passed but something inside does not (a hand-edited file): still not a history.
    throw new CheckFileError(`${file} is not a valid chaos history: ${(err as Error).message}`, 2);
  }
  return {
    scenario: record.scenario,
    seed: record.seed,
    invariants: invariantStatuses(record, violations),
    violations,
  };
}
