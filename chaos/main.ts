/**
 * `npm run chaos -- --scenario NAME|all --seed N --duration SECONDS`: the chaos suite
 * (docs/chaos.md). Starts a private environment (PostgreSQL, Redis, Mosquitto, fault proxies, a
 * cluster of API nodes and workers behind the load balancer), runs the scenario(s) with a fault
 * schedule decided by the seed, checks I1-I9 on the recorded history, prints a JSON summary on
 * stdout (progress goes to stderr), writes it with the full history under `--out`, and exits 1 when
 * an invariant failed (2: usage error, 3: the run itself could not complete). Everything it started
 * is stopped at the end, on SIGINT (Ctrl-C), SIGTERM and SIGHUP (exit 130, 143, 129), also during
 * start-up, and at the hard timeout.
 */
import { constants } from 'node:fs';
import { access, mkdir, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ephemeralLow, type DrawRange } from '../bin/free-ports.ts';
import { StopSignals } from '../runtime/stop-signals.ts';
import {
  combinedName,
  parseCommand,
  replayCommand,
  USAGE,
  UsageError,
  type ChaosArgs,
  type ChaosCommand,
} from './args.ts';
import { checkFile, CheckFileError } from './check-file.ts';
import { ChaosEnvironment } from './environment.ts';
import { describeFault } from './injectors.ts';
import { describeStatuses, invariantStatuses } from './invariant-status.ts';
import { Rng } from './rng.ts';
import { runScenario, type ScenarioResult } from './run-scenario.ts';
import type { Scenario } from './scenarios.ts';

export { parseChaosArgs, USAGE, UsageError, type ChaosArgs } from './args.ts';

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
    faults: result.schedule.map((s, id) => ({
      atMs: s.atMs,
      durationMs: s.durationMs,
      fault: describeFault(s.fault),
      // Its target still held by an earlier fault: not applied (chaos/injectors.ts).
      ...(record.faults.some((f) => f.id === id && f.skipped === true) ? { skipped: true } : {}),
    })),
    convergedAfterMs: record.final.convergedAfterMs ?? null,
    // Per invariant: passed, violated, or not applicable and why, so a PASS says what it covers.
    invariants: invariantStatuses(record, result.violations),
    violations: result.violations,
    replay: replayCommand(record.scenario, args),
  };
}

/**
 * `-broken-<faults>` for a run of a broken variant (`--test-faults`): its files must not replace
 * those of a real run of the same scenario and seed (the evidence of a release).
 */
export function variantSuffix(a: Pick<ChaosArgs, 'testFaults'>): string {
  return a.testFaults.length === 0 ? '' : `-broken-${[...a.testFaults].sort().join('+')}`;
}

/** `--check FILE`: the checker again on a recorded run; exit status as for a run. */
async function checkCommand(file: string): Promise<number> {
  try {
    const verdict = await checkFile(file);
    process.stdout.write(JSON.stringify(verdict, null, 2) + '\n');
    return verdict.violations.length === 0 ? 0 : 1;
  } catch (err) {
    if (!(err instanceof CheckFileError)) throw err;
    process.stderr.write(`chaos: --check: ${err.message}\n`);
    return err.code;
  }
}

/**
 * Makes `--out` and proves it writable before anything starts: a path that is a file, or lies
 * under one, is a usage error, not a run that fails after minutes of start-up.
 * @throws UsageError
 */
async function prepareOutDir(out: string): Promise<string> {
  const dir = resolve(out);
  try {
    await mkdir(dir, { recursive: true });
    await access(dir, constants.W_OK);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why =
      code === 'EEXIST' || code === 'ENOTDIR'
        ? 'a file is in the way'
        : code === 'EACCES'
          ? 'not writable'
          : (err as Error).message;
    throw new UsageError(`--out ${out}: cannot use it as a directory (${why})`);
  }
  return dir;
}

/**
 * The warning for a `--ports` range that reaches into the kernel's ephemeral range: a port freed
 * while its service restarts may be taken by any outgoing connection meanwhile (EADDRINUSE).
 */
function ephemeralOverlap(range: DrawRange): string | undefined {
  const from = ephemeralLow();
  if (from === undefined || range.high < from) return undefined;
  return `--ports ${range.low}-${range.high} reach into the kernel's ephemeral range (from ${from}): an outgoing connection may take a port while its service restarts (EADDRINUSE); a range below ${from} avoids it`;
}

/** Exit statuses on a signal: 128 + its number, as a shell reports a process killed by it. */
const SIGNAL_EXITS = { SIGHUP: 129, SIGINT: 130, SIGTERM: 143 } as const;

async function main(): Promise<number> {
  let command: ChaosCommand;
  try {
    command = parseCommand(process.argv.slice(2));
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    process.stderr.write(`chaos: ${err.message}\n${USAGE}\n`);
    return 2;
  }
  if (command.kind === 'help') {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  if (command.kind === 'check') return checkCommand(command.file);
  const a = command.args;
  let outDir: string;
  try {
    outDir = await prepareOutDir(a.out);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    process.stderr.write(`chaos: ${err.message}\n`);
    return 2;
  }
  const progress = (line: string): void => {
    process.stderr.write(`chaos: ${line}\n`);
  };
  // After SIGHUP the terminal is gone and writes to it fail (EIO): an unhandled stream error
  // would end the process in the middle of the clean-up. The summaries are in files too.
  for (const stream of [process.stdout, process.stderr]) stream.on('error', () => undefined);
  const nodeOutput: string[] = [];
  // Lines beyond the cap are not kept, so not scanned for key material: I8 says so.
  let nodeLinesDropped = 0;
  /** Node lines shown when the run cannot complete. */
  const NODE_LINES_ON_FAILURE = 40;
  /**
   * Node output lines kept (and scanned for key material, I8) per run: far above what nodes
   * write at the suite's log level (a few hundred lines in the CI run), low enough to bound memory.
   */
  const MAX_NODE_LINES = 50_000;
  const perScenarioMs = (a.durationS + a.deadlineS) * 1000 + 120_000;
  const hardTimeoutMs = 180_000 + a.scenarios.length * perScenarioMs;
  let env: ChaosEnvironment | undefined;
  /** The environment being started, if one is: a signal must wait for it to undo itself. */
  let starting: Promise<ChaosEnvironment> | undefined;
  /** Aborts a start in progress, which then stops what it had started (environment.ts). */
  const abort = new AbortController();
  let stopping: Promise<never> | undefined;
  const shutdown = (why: string, code: number): Promise<never> => {
    // A second signal while stopping: exit at once; the exit handlers SIGKILL every process
    // still running (services, nodes), and only temporary directories may be left behind.
    if (stopping !== undefined) process.exit(code);
    stopping = (async () => {
      progress(`${why}: stopping everything`);
      abort.abort();
      const started = await starting?.catch(() => undefined);
      await (started ?? env)?.stop();
      process.exit(code);
    })();
    return stopping;
  };
  const hard = setTimeout(() => {
    void shutdown(`hard timeout of ${Math.round(hardTimeoutMs / 1000)} s`, 3);
  }, hardTimeoutMs);
  hard.unref();
  // One Ctrl-C arrives twice under `npm run chaos` (the terminal's and npm's copy): taken for a
  // second press, it skipped the orderly stop and left the temporary directories behind (the
  // KEK passphrase, PostgreSQL's data). Only a second signal, later, exits at once.
  const signals = new StopSignals();
  for (const signal of Object.keys(SIGNAL_EXITS) as Array<keyof typeof SIGNAL_EXITS>)
    process.on(signal, () => {
      if (signals.receive() !== 'copy') void shutdown(signal, SIGNAL_EXITS[signal]);
    });

  const overlap = a.ports === undefined ? undefined : ephemeralOverlap(a.ports);
  if (overlap !== undefined) progress(`warning: ${overlap}`);
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
    starting = ChaosEnvironment.start({
      portRange: a.ports,
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
        if (nodeOutput.length < MAX_NODE_LINES) nodeOutput.push(`${name} | ${line}`);
        else nodeLinesDropped += 1;
      },
      signal: abort.signal,
    });
    env = await starting;
    starting = undefined;
    envMode = mode;
    if (a.testFaults.length > 0)
      progress(`TEST-ONLY broken variant of the C2: ${a.testFaults.join(', ')}`);
    return env;
  };
  let code: number;
  try {
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
        nodeOutput: () => ({ lines: nodeOutput, dropped: nodeLinesDropped }),
      });
      const summary = summarize(result, a);
      summaries.push(summary);
      const base = join(outDir, `${scenario.name}-seed${a.seed}${variantSuffix(a)}`);
      await writeFile(`${base}.json`, JSON.stringify(summary, null, 2) + '\n');
      await writeFile(`${base}.history.json`, JSON.stringify(result.record) + '\n');
      await writeFile(`${base}.nodes.log`, nodeOutput.slice(firstLine).join('\n') + '\n');
      const n = result.violations.length;
      failed ||= n > 0;
      progress(
        `${scenario.name}: ${n === 0 ? 'PASS' : `FAIL (${n} violation(s))`} in ${Math.round((Date.now() - started) / 1000)} s; ${result.record.operations.length} operations; summary ${base}.json`,
      );
      progress(
        `${scenario.name}: invariants: ${describeStatuses(invariantStatuses(result.record, result.violations))}`,
      );
    }
    const output = a.scenarios.length === 1 ? summaries[0] : summaries;
    process.stdout.write(JSON.stringify(output, null, 2) + '\n');
    if (a.scenarios.length > 1)
      await writeFile(
        join(outDir, `${combinedName(a)}-seed${a.seed}${variantSuffix(a)}.json`),
        JSON.stringify(summaries, null, 2) + '\n',
      );
    code = failed ? 1 : 0;
  } catch (err) {
    // Interrupted (a signal, the hard timeout): the shutdown stops everything and sets the status.
    if (stopping !== undefined) return stopping;
    progress(`the run could not complete: ${(err as Error).stack ?? String(err)}`);
    // A node that died during start-up is only named by the launcher ("see its output"): show
    // the last lines the nodes wrote, which the summaries would otherwise never hold.
    const tail = nodeOutput.slice(-NODE_LINES_ON_FAILURE);
    if (tail.length > 0) progress(`last ${tail.length} node output line(s):\n${tail.join('\n')}`);
    code = 3;
  }
  await env?.stop();
  clearTimeout(hard);
  // A signal during that last stop: its shutdown exits with the signal's status.
  return stopping ?? code;
}

const invoked = process.argv[1];
if (invoked !== undefined && resolve(invoked) === fileURLToPath(import.meta.url))
  process.exit(await main());
