/**
 * A summary's `replay` command, parsed back with the suite's own parser, runs the scenario with
 * every option that shaped the run (the schedule picks among the nodes, so the node counts matter).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseChaosArgs, summarize, variantSuffix, type ChaosArgs } from '../main.ts';
import type { ScenarioResult } from '../run-scenario.ts';

/** The options of a `replay` command, parsed as the suite parses its own command line. */
function parseReplay(replay: unknown): ChaosArgs {
  const prefix = 'npm run chaos -- ';
  assert.ok(typeof replay === 'string' && replay.startsWith(prefix), String(replay));
  const args = parseChaosArgs(replay.slice(prefix.length).split(' '));
  assert.ok(args !== undefined);
  return args;
}

/** Everything but the output directory and ports, which do not shape the run; scenarios by name. */
function shape(a: ChaosArgs): Record<string, unknown> {
  const { out: _out, ports: _ports, scenarios, ...rest } = a;
  return { ...rest, scenarios: scenarios.map((s) => s.name) };
}

/** The replay a summary of `scenario` gives for a run of `argv`. */
function replayOf(scenario: string, argv: string[]): { args: ChaosArgs; replay: unknown } {
  const args = parseChaosArgs(argv);
  assert.ok(args !== undefined);
  const result = {
    record: { scenario, seed: args.seed, operations: [], applies: [], final: {} },
    schedule: [],
    violations: [],
  } as unknown as ScenarioResult;
  return { args, replay: summarize(result, args)['replay'] };
}

void describe('the replay command of a summary', () => {
  void it('carries every option that shapes the run, and parses back to the same run', () => {
    const { args, replay } = replayOf('worker-crash', [
      ...['--scenario', 'worker-crash', '--seed', '7', '--duration', '12', '--api', '3'],
      ...['--workers', '4', '--devices', '9', '--topics', '3', '--deadline', '60'],
      ...['--test-faults', 'no-idempotency', '--out', '/tmp/elsewhere', '--ports', '44000-44999'],
    ]);
    assert.deepEqual(shape(parseReplay(replay)), shape(args));
  });

  void it('stays short with the defaults, and names the one scenario of a list it replays', () => {
    const { args, replay } = replayOf('api-crash', [
      ...['--scenario', 'worker-crash,api-crash', '--duration', '8'],
    ]);
    assert.equal(replay, 'npm run chaos -- --scenario api-crash --seed 1 --duration 8');
    assert.deepEqual(shape(parseReplay(replay)), { ...shape(args), scenarios: ['api-crash'] });
  });
});

void describe('the faults of a summary', () => {
  void it('marks a fault that was skipped (its target still held by an earlier one)', () => {
    const args = parseChaosArgs(['--scenario', 'worker-crash']);
    assert.ok(args !== undefined);
    const kill = { kind: 'kill-node', target: 'worker-1' } as const;
    const result = {
      record: {
        scenario: 'worker-crash',
        seed: 1,
        operations: [],
        applies: [],
        final: {},
        faults: [
          { id: 0, kind: 'kill-node', target: 'kill-node worker-1', startedAt: 5, endedAt: 7 },
          {
            id: 1,
            kind: 'kill-node',
            target: 'kill-node worker-1',
            startedAt: 6,
            endedAt: 6,
            skipped: true,
          },
        ],
      },
      schedule: [
        { atMs: 5, durationMs: 2, fault: kill },
        { atMs: 6, durationMs: 2, fault: kill },
      ],
      violations: [],
    } as unknown as ScenarioResult;
    assert.deepEqual(summarize(result, args)['faults'], [
      { atMs: 5, durationMs: 2, fault: 'kill-node worker-1' },
      { atMs: 6, durationMs: 2, fault: 'kill-node worker-1', skipped: true },
    ]);
  });
});

void describe('the files of a broken variant', () => {
  void it('are named apart from those of a real run', () => {
    assert.equal(variantSuffix({ testFaults: [] }), '');
    assert.equal(variantSuffix({ testFaults: ['no-idempotency'] }), '-broken-no-idempotency');
    assert.equal(variantSuffix({ testFaults: ['b', 'a'] }), '-broken-a+b');
  });
});
