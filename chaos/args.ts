/**
 * The command line of `npm run chaos` (docs/chaos.md): a run, or `--check FILE` on a recorded
 * one; and the `replay` command of a summary, which must carry every option that shapes the run.
 */
import { parseArgs } from 'node:util';
import type { DrawRange } from '../bin/free-ports.ts';
import { attachDashValues, intArg, UsageError } from '../bin/usage-args.ts';
import { portsNeeded } from './port-plan.ts';
import { SCENARIOS, scenarioNamed, type Scenario } from './scenarios.ts';
import { TEST_FAULTS } from './test-faults.ts';

/** The command line of a run, parsed. */
export interface ChaosArgs {
  readonly scenarios: readonly Scenario[];
  readonly seed: number;
  readonly durationS: number;
  readonly apiNodes: number;
  readonly workers: number;
  readonly devices: number;
  readonly topics: number;
  readonly deadlineS: number;
  readonly out: string;
  readonly testFaults: readonly string[];
  /** `--ports LOW-HIGH`: where every port the suite listens on comes from; default as free-ports. */
  readonly ports: DrawRange | undefined;
}

/** What the command line asks for. */
export type ChaosCommand =
  | { readonly kind: 'help' }
  | { readonly kind: 'check'; readonly file: string }
  | { readonly kind: 'run'; readonly args: ChaosArgs };

export { UsageError };

/** The numeric options: flag, field, bounds, default (USAGE and `replayCommand` follow it). */
const NUMBERS = [
  { flag: 'seed', field: 'seed', min: 0, max: 2 ** 32 - 1, def: 1 },
  { flag: 'duration', field: 'durationS', min: 5, max: 3600, def: 30 },
  { flag: 'api', field: 'apiNodes', min: 2, max: 8, def: 2 },
  { flag: 'workers', field: 'workers', min: 2, max: 8, def: 2 },
  { flag: 'devices', field: 'devices', min: 2, max: 200, def: 6 },
  { flag: 'topics', field: 'topics', min: 1, max: 20, def: 2 },
  { flag: 'deadline', field: 'deadlineS', min: 10, max: 600, def: 45 },
] as const;

export const USAGE = `usage: npm run chaos -- --scenario NAME|all [--seed N] [--duration SECONDS]
       [--api N] [--workers N] [--devices N] [--topics N] [--deadline SECONDS] [--out DIR]
       [--ports LOW-HIGH] [--test-faults LIST]
       npm run chaos -- --check FILE.history.json   (the checker again, on a recorded run)

scenarios: ${SCENARIOS.map((s) => s.name).join(', ')}, all
  --seed N          fault schedule and workload seed, 0..4294967295 (default 1): same seed, same schedule
  --duration S      seconds of faults and workload per scenario, 5..3600 (default 30)
  --api N           API nodes, 2..8 (default 2);  --workers N  workers, 2..8 (default 2)
  --devices N       simulated devices per scenario, 2..200 (default 6)
  --topics N        topics per scenario, 1..20 (default 2)
  --deadline S      convergence deadline after the heal, 10..600 (default 45)
  --out DIR         where summaries and histories go (default data/chaos)
  --ports LOW-HIGH  every port the suite listens on from this range, 1024..65535
                    (default: free ports below the kernel's ephemeral range)
  --test-faults L   TEST ONLY: broken variants of the C2 (${TEST_FAULTS.join(', ')}),
                    to show the checker catches them`;

/**
 * A `parseArgs` complaint in the suite's words: an option given without its value names what the
 * value must be (Node's own text, "argument is ambiguous", does not).
 */
function parseArgsMistake(err: Error & { code?: string }): UsageError {
  const flag = /'--([\w-]+)/.exec(err.message)?.[1];
  if (err.code !== 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE' || flag === undefined)
    return new UsageError(err.message);
  const n = NUMBERS.find((x) => x.flag === flag);
  return new UsageError(
    n === undefined
      ? `--${flag} needs a value`
      : `--${flag} needs a value: a whole number from ${n.min} to ${n.max}`,
  );
}

/** Flags whose value may start with a dash (`--seed -1`: refused by its own check, not as "ambiguous"). */
const DASH_VALUE_FLAGS: ReadonlySet<string> = new Set([
  ...NUMBERS.map((n) => `--${n.flag}`),
  '--ports',
]);

/** `--ports LOW-HIGH`, room for a run of `apiNodes` and `workers` included. @throws UsageError */
function portRangeArg(
  value: string | undefined,
  apiNodes: number,
  workers: number,
): DrawRange | undefined {
  if (value === undefined) return undefined;
  const m = /^(\d{1,5})-(\d{1,5})$/.exec(value);
  const [low, high] = [Number(m?.[1]), Number(m?.[2])];
  if (m === null || low < 1024 || high > 65_535 || low > high)
    throw new UsageError(
      `--ports must be LOW-HIGH, whole numbers from 1024 to 65535 with LOW <= HIGH (44000-44999), not "${value}"`,
    );
  const needed = portsNeeded(apiNodes, workers);
  if (high - low + 1 < needed)
    throw new UsageError(
      `--ports ${value} holds ${high - low + 1} port(s); a run of ${apiNodes} API node(s) and ${workers} worker(s) listens on ${needed}`,
    );
  return { low, high, only: true };
}

/** Parses the arguments. @throws UsageError */
export function parseCommand(argv: readonly string[]): ChaosCommand {
  let values;
  try {
    ({ values } = parseArgs({
      args: attachDashValues(argv, DASH_VALUE_FLAGS),
      strict: true,
      allowPositionals: false,
      options: {
        scenario: { type: 'string' },
        ...Object.fromEntries(NUMBERS.map((n) => [n.flag, { type: 'string' } as const])),
        out: { type: 'string' },
        ports: { type: 'string' },
        'test-faults': { type: 'string' },
        check: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    }));
  } catch (err) {
    throw parseArgsMistake(err as Error);
  }
  if (values.help === true) return { kind: 'help' };
  const check = values['check'];
  if (typeof check === 'string') {
    const others = Object.keys(values).filter((k) => k !== 'check');
    // Nothing else applies to a recorded run: silently ignoring `--seed 2` would mislead.
    if (others.length > 0) throw new UsageError(`--check takes no other option (--${others[0]})`);
    return { kind: 'check', file: check };
  }
  const name = values['scenario'];
  if (typeof name !== 'string') throw new UsageError('--scenario is required');
  const scenarios =
    name === 'all'
      ? SCENARIOS
      : name.split(',').map((n) => {
          const s = scenarioNamed(n);
          if (s === undefined) throw new UsageError(`unknown scenario "${n}"`);
          return s;
        });
  const faults = values['test-faults'];
  const testFaults = (typeof faults === 'string' ? faults : '').split(',').filter((f) => f !== '');
  for (const f of testFaults)
    if (!TEST_FAULTS.includes(f)) throw new UsageError(`unknown test fault "${f}"`);
  const numbers: Record<string, number> = {};
  const given: Readonly<Record<string, string | boolean | undefined>> = values;
  for (const n of NUMBERS) {
    const value = given[n.flag];
    numbers[n.field] = intArg(
      typeof value === 'string' ? value : undefined,
      `--${n.flag}`,
      n.min,
      n.max,
      n.def,
    );
  }
  const out = values['out'];
  const counts = numbers as Pick<ChaosArgs, (typeof NUMBERS)[number]['field']>;
  const ports = values['ports'];
  return {
    kind: 'run',
    args: {
      ...counts,
      scenarios,
      out: typeof out === 'string' ? out : 'data/chaos',
      testFaults,
      ports: portRangeArg(
        typeof ports === 'string' ? ports : undefined,
        counts.apiNodes,
        counts.workers,
      ),
    },
  };
}

/** The arguments of a run; `undefined` for `--help`. @throws UsageError (also for `--check`) */
export function parseChaosArgs(argv: readonly string[]): ChaosArgs | undefined {
  const command = parseCommand(argv);
  if (command.kind === 'check') throw new UsageError('--check is not a run');
  return command.kind === 'run' ? command.args : undefined;
}

/**
 * The command that runs `scenario` again as `args` ran it: the seed and duration always, and every
 * other option that shapes the run where it differs from its default (the schedule picks among
 * the nodes, so `--api` and `--workers` change it; `--out` and `--ports` do not shape the run).
 */
export function replayCommand(scenario: string, args: ChaosArgs): string {
  const words = ['--scenario', scenario];
  for (const n of NUMBERS) {
    const value = args[n.field];
    if (value !== n.def || n.flag === 'seed' || n.flag === 'duration')
      words.push(`--${n.flag}`, String(value));
  }
  if (args.testFaults.length > 0) words.push('--test-faults', args.testFaults.join(','));
  return `npm run chaos -- ${words.join(' ')}`;
}

/**
 * The name of the combined summary of a several-scenario run: `all`, or the list's names joined
 * with `+`, so that runs of different lists with one seed do not overwrite each other's.
 */
export function combinedName(args: ChaosArgs): string {
  return args.scenarios === SCENARIOS ? 'all' : args.scenarios.map((s) => s.name).join('+');
}
