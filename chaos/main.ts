/**
 * `npm run chaos -- --scenario NAME|all --seed N --duration SECONDS`: the chaos suite
 * (docs/chaos.md). Starts a private environment (PostgreSQL, Redis, Mosquitto, fault proxies, a
 * cluster of API nodes and workers behind the load balancer), runs the scenario(s) with a fault
 * schedule decided by the seed, checks I1-I9 on the recorded history, prints a JSON summary on
 * stdout (progress goes to stderr), writes it with the full history under `--out`, and exits 1 when
 * an invariant failed (2: usage error, 3: the run itself could not complete). Everything it started
 * is stopped at the end, on Ctrl-C, and at the hard timeout.
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { intArg, UsageError } from '../bin/usage-args.ts';
import { checkRun } from './checker.ts';
import { ChaosEnvironment } from './environment.ts';
import type { RunRecord } from './history.ts';
import { describeFault } from './injectors.ts';
import { Rng } from './rng.ts';
import { runScenario, type ScenarioResult } from './run-scenario.ts';
import { SCENARIOS, scenarioNamed, type Scenario } from './scenarios.ts';
import { TEST_FAULTS } from './test-faults.ts';

/** The command line, parsed. */
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
}

/** A bad command line. */
export { UsageError };

export const USAGE = `usage: npm run chaos -- --scenario NAME|all [--seed N] [--duration SECONDS]
       [--api N] [--workers N] [--devices N] [--topics N] [--deadline SECONDS] [--out DIR]
       [--test-faults LIST]
       npm run chaos -- --check FILE.history.json   (the checker again, on a recorded run)

scenarios: ${SCENARIOS.map((s) => s.name).join(', ')}, all
  --seed N          fault schedule and workload seed (default 1): same seed, same schedule
  --duration S      seconds of faults and workload per scenario, 5..3600 (default 30)
  --api N           API nodes, 2..8 (default 2);  --workers N  workers, 2..8 (default 2)
  --devices N       simulated devices per scenario, 2..200 (default 6)
  --topics N        topics per scenario, 1..20 (default 2)
  --deadline S      convergence deadline after the heal, 10..600 (default 45)
  --out DIR         where summaries and histories go (default data/chaos)
  --test-faults L   TEST ONLY: broken variants of the C2 (${TEST_FAULTS.join(', ')}),
                    to show the checker catches them`;

/** Parses the arguments; `undefined` for `--help`. @throws UsageError */
export function parseChaosArgs(argv: readonly string[]): ChaosArgs | undefined {
  let values;
  try {
    ({ values } = parseArgs({
      args: [...argv],
      strict: true,
      allowPositionals: false,
      options: {
        scenario: { type: 'string' },
        seed: { type: 'string' },
        duration: { type: 'string' },
        api: { type: 'string' },
        workers: { type: 'string' },
        devices: { type: 'string' },
        topics: { type: 'string' },
        deadline: { type: 'string' },
        out: { type: 'string' },
        'test-faults': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    }));
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  if (values.help === true) return undefined;
  const name = values.scenario;
  if (name === undefined) throw new UsageError('--scenario is required');
  let scenarios: readonly Scenario[];
  if (name === 'all') scenarios = SCENARIOS;
  else {
    const found = name.split(',').map((n) => {
      const s = scenarioNamed(n);
      if (s === undefined) throw new UsageError(`unknown scenario "${n}"`);
      return s;
    });
    scenarios = found;
  }
  const testFaults = (values['test-faults'] ?? '').split(',').filter((f) => f !== '');
  for (const f of testFaults)
    if (!TEST_FAULTS.includes(f)) throw new UsageError(`unknown test fault "${f}"`);
  return {
    scenarios,
    seed: intArg(values.seed, '--seed', 0, 2 ** 32 - 1, 1),
    durationS: intArg(values.duration, '--duration', 5, 3600, 30),
    apiNodes: intArg(values.api, '--api', 2, 8, 2),
    workers: intArg(values.workers, '--workers', 2, 8, 2),
    devices: intArg(values.devices, '--devices', 2, 200, 6),
    topics: intArg(values.topics, '--topics', 1, 20, 2),
    deadlineS: intArg(values.deadline, '--deadline', 10, 600, 45),
    out: values.out ?? 'data/chaos',
    testFaults,
  };
}

/** The summary of one scenario run (printed and written). */
export function summarize(result: ScenarioResult, args: ChaosArgs): Record<string, unknown> {
  const { record } = result;
  const outcomes = { ok: 0, fail: 0, unknown: 0 };
  for (const op of record.operations) outcomes[op.outcome] += 1;
  return {
    scenario: record.scenario,
    seed: record.seed,
    durationSeconds: args.durationS,
    operations: record.operations.length,
    outcomes,
    deviceApplies: record.applies.length,
    faults: result.schedule.map((s) => ({
      atMs: s.atMs,
      durationMs: s.durationMs,
      fault: describeFault(s.fault),
    })),
    convergedAfterMs: record.final.convergedAfterMs ?? null,
    violations: result.violations,
    replay: `npm run chaos -- --scenario ${record.scenario} --seed ${record.seed} --duration ${args.durationS}`,
  };
}

/** `--check FILE`: runs the checker again on a recorded `.history.json`, nothing started. */
async function checkFile(file: string): Promise<number> {
  const record = JSON.parse(await readFile(file, 'utf8')) as RunRecord;
  const violations = checkRun(record);
  process.stdout.write(
    JSON.stringify({ scenario: record.scenario, seed: record.seed, violations }, null, 2) + '\n',
  );
  return violations.length === 0 ? 0 : 1;
}

async function main(): Promise<number> {
  const argv = process.argv.slice(2);
  if (argv[0] === '--check' && argv[1] !== undefined) return checkFile(argv[1]);
  let args;
  try {
    args = parseChaosArgs(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`chaos: ${(err as Error).message}\n${USAGE}\n`);
    return 2;
  }
  if (args === undefined) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  const a = args;
  const progress = (line: string): void => {
    process.stderr.write(`chaos: ${line}\n`);
  };
  const nodeOutput: string[] = [];
  /** Node lines shown when the run cannot complete. */
  const NODE_LINES_ON_FAILURE = 40;
  const perScenarioMs = (a.durationS + a.deadlineS) * 1000 + 120_000;
  const hardTimeoutMs = 180_000 + a.scenarios.length * perScenarioMs;
  let env: ChaosEnvironment | undefined;
  let stopping = false;
  const shutdown = async (why: string, code: number): Promise<never> => {
    if (!stopping) {
      stopping = true;
      progress(`${why}: stopping everything`);
      await env?.stop();
    }
    process.exit(code);
  };
  const hard = setTimeout(() => {
    void shutdown(`hard timeout of ${Math.round(hardTimeoutMs / 1000)} s`, 3);
  }, hardTimeoutMs);
  hard.unref();
  process.on('SIGINT', () => void shutdown('SIGINT', 130));
  process.on('SIGTERM', () => void shutdown('SIGTERM', 143));

  const networkRng = new Rng(a.seed).fork('network');
  const summaries: Array<Record<string, unknown>> = [];
  let failed = false;
  /** One environment per crypto mode, started when its first scenario comes. */
  let envMode: Scenario['mode'] | undefined;
  const environmentFor = async (mode: Scenario['mode']): Promise<ChaosEnvironment> => {
    if (env !== undefined && envMode === mode) return env;
    if (env !== undefined) {
      progress('stopping the cluster to start one in the other crypto mode');
      await env.stop();
      env = undefined;
    }
    env = await ChaosEnvironment.start({
      apiNodes: a.apiNodes,
      workers: a.workers,
      nodeEnv: {
        ...(mode === 'pubkey' ? { E4C2_CRYPTO_MODE: 'pubkey' } : {}),
        ...(a.testFaults.length === 0
          ? {}
          : { E4C2_TEST_FAULTS: a.testFaults.join(','), E4C2_ALLOW_TEST_FAULTS: 'true' }),
      },
      random: () => networkRng.next(),
      log: progress,
      nodeOutput: (name, line) => {
        if (nodeOutput.length < 50_000) nodeOutput.push(`${name} | ${line}`);
      },
    });
    envMode = mode;
    if (a.testFaults.length > 0)
      progress(`TEST-ONLY broken variant of the C2: ${a.testFaults.join(', ')}`);
    return env;
  };
  try {
    const outDir = resolve(a.out);
    await mkdir(outDir, { recursive: true });
    // Symmetric scenarios first, then the public-key ones on a cluster of their own.
    const ordered = [...a.scenarios].sort(
      (x, y) => Number(x.mode === 'pubkey') - Number(y.mode === 'pubkey'),
    );
    for (const scenario of ordered) {
      const running = await environmentFor(scenario.mode);
      const started = Date.now();
      const firstLine = nodeOutput.length;
      const result = await runScenario(running, scenario, {
        seed: a.seed,
        durationMs: a.durationS * 1000,
        convergenceDeadlineMs: a.deadlineS * 1000,
        devices: a.devices,
        topics: a.topics,
        processes: 4,
        progress,
        nodeOutput: () => nodeOutput,
      });
      const summary = summarize(result, a);
      summaries.push(summary);
      const base = join(outDir, `${scenario.name}-seed${a.seed}`);
      await writeFile(`${base}.json`, JSON.stringify(summary, null, 2) + '\n');
      await writeFile(`${base}.history.json`, JSON.stringify(result.record) + '\n');
      await writeFile(`${base}.nodes.log`, nodeOutput.slice(firstLine).join('\n') + '\n');
      const n = result.violations.length;
      failed ||= n > 0;
      progress(
        `${scenario.name}: ${n === 0 ? 'PASS' : `FAIL (${n} violation(s))`} in ${Math.round((Date.now() - started) / 1000)} s; ${result.record.operations.length} operations; summary ${base}.json`,
      );
    }
    const output = a.scenarios.length === 1 ? summaries[0] : summaries;
    process.stdout.write(JSON.stringify(output, null, 2) + '\n');
    if (a.scenarios.length > 1)
      await writeFile(
        join(outDir, `all-seed${a.seed}.json`),
        JSON.stringify(summaries, null, 2) + '\n',
      );
  } catch (err) {
    progress(`the run could not complete: ${(err as Error).stack ?? String(err)}`);
    // A node that died during start-up is only named by the launcher ("see its output"): show
    // the last lines the nodes wrote, which the summaries would otherwise never hold.
    const tail = nodeOutput.slice(-NODE_LINES_ON_FAILURE);
    if (tail.length > 0) progress(`last ${tail.length} node output line(s):\n${tail.join('\n')}`);
    await env?.stop();
    clearTimeout(hard);
    return 3;
  }
  await env?.stop();
  clearTimeout(hard);
  return failed ? 1 : 0;
}

const invoked = process.argv[1];
if (invoked !== undefined && resolve(invoked) === fileURLToPath(import.meta.url))
  process.exit(await main());
