/**
 * `npm run chaos` as a user meets it: `--check` on a recorded run (A1 included), a file that is
 * not a history, and an `--out` that cannot be a directory each get one line and the usage
 * status (2), never a stack trace under the "violations found" status (1); nothing is started.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parseCommand, UsageError } from '../args.ts';
import type { RunRecord } from '../history.ts';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'chaos-cli-test-'));
after(() => {
  rmSync(dir, { recursive: true, force: true });
});

/** Runs `chaos/main.ts` with `args`; its status, stdout and stderr. */
function chaos(...args: string[]): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'chaos/main.ts', ...args], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => {
      resolve({ code, out, err });
    });
  });
}

/** A one-line complaint (the usage text may follow), no stack trace. */
function oneLine(err: string, pattern: RegExp): void {
  const first = err.split('\n')[0] ?? '';
  assert.match(first, pattern);
  assert.doesNotMatch(err, /^\s+at /m, 'no stack trace');
}

/** A recorded run with nothing in it but an automation rule that skipped a slot. */
const history: RunRecord = {
  scenario: 'automation-leader-kill',
  seed: 1,
  deliveryCap: 5,
  networkCopies: 1,
  budget: { duringFaults: 0.05, settleMs: 2000 },
  healedAt: 1000,
  convergenceDeadlineMs: 45_000,
  operations: [],
  applies: [],
  faults: [],
  final: {
    topics: [],
    c2Keys: [],
    clients: [],
    devices: [],
    audit: [],
    outbox: [],
    leaks: [],
    crashes: [],
    convergedAfterMs: 10,
  },
  automation: {
    intervalMs: 1000,
    firings: [1, 3].map((s) => ({
      id: `f${s}`,
      dueAt: new Date(Date.UTC(2026, 10, 26, 5, 0, s)).toISOString(),
      status: 'succeeded',
      coalesced: 0,
    })),
    finalKeyVersion: 3,
  },
};

void describe('npm run chaos -- --check', () => {
  void it('re-checks A1 from the history: the failure the run found is found again', async () => {
    const file = join(dir, 'automation-leader-kill-seed1.history.json');
    writeFileSync(file, JSON.stringify(history));
    const { code, out } = await chaos('--check', file);
    assert.equal(code, 1, out);
    const verdict = JSON.parse(out) as {
      violations: Array<{ invariant: string }>;
      invariants: Record<string, { status: string }>;
    };
    assert.deepEqual(
      verdict.violations.map((v) => v.invariant),
      ['A1'],
    );
    assert.equal(verdict.invariants['A1']?.status, 'violated');
    const clean = join(dir, 'clean.history.json');
    writeFileSync(clean, JSON.stringify({ ...history, automation: undefined }));
    const passed = await chaos('--check', clean);
    assert.equal(passed.code, 0);
    // A pass says what it covered: no rule was recorded, so A1 was not judged.
    const covered = (JSON.parse(passed.out) as typeof verdict).invariants;
    assert.equal(covered['A1']?.status, 'not applicable');
    assert.equal(covered['R5']?.status, 'passed');
  });

  void it('says in one line that a file is missing, a summary or not JSON (status 2)', async () => {
    const summary = join(dir, 'worker-crash-seed1.json');
    writeFileSync(
      summary,
      JSON.stringify({ scenario: 'worker-crash', operations: 3, replay: 'x' }),
    );
    const text = join(dir, 'notes.txt');
    writeFileSync(text, 'not json\n');
    const cases: Array<[string, RegExp]> = [
      [join(dir, 'missing.history.json'), /cannot read .*missing\.history\.json: no such file/],
      [summary, /is not a chaos history .*it is a summary/],
      [text, /is not JSON/],
    ];
    for (const [file, pattern] of cases) {
      const { code, err } = await chaos('--check', file);
      assert.equal(code, 2, err);
      oneLine(err, pattern);
      assert.equal(err.trim().split('\n').length, 1, err);
    }
  });

  void it('is a usage error without a file or beside the options of a run', async () => {
    const missing = await chaos('--check');
    assert.equal(missing.code, 2);
    oneLine(missing.err, /--check/);
    assert.doesNotMatch(missing.err, /Unknown option '--check'/);
    const file = join(dir, 'clean.history.json');
    writeFileSync(file, JSON.stringify({ ...history, automation: undefined }));
    const mixed = await chaos('--seed', '3', '--check', file);
    assert.equal(mixed.code, 2);
    oneLine(mixed.err, /--check takes no other option \(--seed\)/);
    assert.equal((await chaos('--check=' + file)).code, 0, 'the --option=value form too');
  });
});

void describe('npm run chaos -- --out', () => {
  void it('refuses a file, or a path under one, in one line before starting anything', async () => {
    const file = join(dir, 'a-file');
    writeFileSync(file, '');
    for (const out of [file, join(file, 'under')]) {
      const { code, err } = await chaos('--scenario', 'worker-crash', '--out', out);
      assert.equal(code, 2, err);
      oneLine(err, /^chaos: --out .*cannot use it as a directory/);
      assert.doesNotMatch(err, /starting PostgreSQL/);
    }
  });
});

void describe('npm run chaos -- with a bad number', () => {
  void it('names the option and its valid range, whatever the mistake', () => {
    const cases: Array<[string[], string]> = [
      [['--seed', '-1'], '--seed must be a whole number from 0 to 4294967295, not "-1"'],
      [['--seed=-1'], '--seed must be a whole number from 0 to 4294967295, not "-1"'],
      [['--duration', 'abc'], '--duration must be a whole number from 5 to 3600, not "abc"'],
      [['--duration', '0'], '--duration must be between 5 and 3600, not 0'],
      [['--duration', '-5'], '--duration must be a whole number from 5 to 3600, not "-5"'],
      [['--deadline', '1.5'], '--deadline must be a whole number from 10 to 600, not "1.5"'],
      [['--duration'], '--duration needs a value: a whole number from 5 to 3600'],
      [['--seed', '--duration', '8'], '--seed needs a value: a whole number from 0 to 4294967295'],
      [['--out'], '--out needs a value'],
    ];
    for (const [argv, message] of cases)
      assert.throws(
        () => parseCommand(['--scenario', 'worker-crash', ...argv]),
        (err: unknown) => err instanceof UsageError && err.message === message,
        argv.join(' '),
      );
  });

  void it('is a usage error (status 2) in one line, nothing started', async () => {
    const { code, err } = await chaos('--scenario', 'worker-crash', '--seed', '-1');
    assert.equal(code, 2, err);
    oneLine(err, /^chaos: --seed must be a whole number from 0 to 4294967295, not "-1"$/);
    assert.doesNotMatch(err, /ambiguous|starting PostgreSQL/);
  });
});

void describe('npm run chaos -- --ports', () => {
  const run = (...argv: string[]): ReturnType<typeof parseCommand> =>
    parseCommand(['--scenario', 'worker-crash', ...argv]);

  void it("is the range every port comes from, the user's alone", () => {
    const command = run('--ports', '44000-44999');
    assert.ok(command.kind === 'run');
    assert.deepEqual(command.args.ports, { low: 44_000, high: 44_999, only: true });
    const byDefault = run();
    assert.ok(byDefault.kind === 'run');
    assert.equal(byDefault.args.ports, undefined);
  });

  void it('refuses a malformed range, and one too small for the run', () => {
    const shape = /^--ports must be LOW-HIGH, whole numbers from 1024 to 65535 with LOW <= HIGH/;
    for (const bad of ['44000', '44999-44000', '80-90', '44000-70000', 'a-b', '-1-5'])
      assert.throws(
        () => run('--ports', bad),
        (err: unknown) => err instanceof UsageError && shape.test(err.message),
        bad,
      );
    assert.throws(
      () => run('--ports', '44000-44049', '--api', '3'),
      (err: unknown) =>
        err instanceof UsageError &&
        err.message ===
          '--ports 44000-44049 holds 50 port(s); a run of 3 API node(s) and 2 worker(s) listens on 62',
    );
    assert.equal(run('--ports', '44000-44049').kind, 'run', '50 ports: enough for the defaults');
  });
});
