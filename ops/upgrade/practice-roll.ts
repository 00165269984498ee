/**
 * `npm run upgrade-practice -- --from COMMIT|DIR [...]` (ROLL_USAGE in roll-args.ts): practises a
 * rolling upgrade as processes on loopback. It prepares the earlier release (old-release.ts),
 * starts `npm run cluster`'s topology of that release on a fresh schema, registers a fleet of
 * simulated devices and an automation rule firing every second, runs the workload
 * (roll-workload.ts) while every node is replaced by this checkout's release one at a time and one
 * API node and one worker are rolled back (roll-plan.ts), then waits for the devices to converge
 * and checks the record (roll-checks.ts; roll-run.ts runs it all). Exit code 0 when nothing was violated, 1 when something
 * was (or the run failed), 2 for a usage mistake. Everything it started is stopped on exit, on
 * Ctrl-C and when `--timeout-minutes` runs out. An operator's and release tool: too slow for
 * `npm test`.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { StopSignals } from '../../runtime/stop-signals.ts';
import { UsageError } from '../../bin/usage-args.ts';
import { ROLL_USAGE, parseRollArgs, type RollArgs } from './roll-args.ts';
import { practise } from './roll-run.ts';
import { cleanUpRun } from './run-cleanup.ts';

/** This checkout: the new release, and the repository the earlier commit is taken from. */
const ROOT = fileURLToPath(new URL('../..', import.meta.url));

async function main(): Promise<number> {
  let args: RollArgs | undefined;
  try {
    args = parseRollArgs(process.argv.slice(2), process.env);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    process.stderr.write(`upgrade-practice: ${err.message}\n${ROLL_USAGE}\n`);
    return 2;
  }
  if (args === undefined) {
    process.stdout.write(`${ROLL_USAGE}\n`);
    return 0;
  }
  const log = (line: string): void => {
    process.stdout.write(`${line}\n`);
  };
  const abort = new AbortController();
  const signals = new StopSignals();
  const onSignal = (signal: NodeJS.Signals): void => {
    const meaning = signals.receive();
    if (meaning === 'copy') return;
    if (meaning === 'again') {
      log(`upgrade: ${signal} again: leaving now (the launcher kills its processes on exit)`);
      process.exit(130);
    }
    log(`upgrade: ${signal}: stopping everything (again to leave at once)`);
    abort.abort(new Error(`interrupted by ${signal}`));
  };
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(signal, onSignal);
  const bound = setTimeout(() => {
    log(`upgrade: the run's bound of ${args.timeoutMs / 60_000} minute(s) passed: stopping`);
    abort.abort(new Error('the run took longer than --timeout-minutes'));
  }, args.timeoutMs);
  const tag = randomBytes(3).toString('hex');
  const schema = `e4c2_upgrade_${tag}`;
  const dataDir = await mkdtemp(join(tmpdir(), 'e4c2-upgrade-'));
  try {
    const passed = await practise({
      args,
      root: ROOT,
      tag,
      schema,
      dataDir,
      signal: abort.signal,
      log,
    });
    return passed ? 0 : 1;
  } catch (err) {
    log(`upgrade: the practice did not complete: ${(err as Error).message}`);
    return 1;
  } finally {
    clearTimeout(bound);
    await cleanUpRun(args, schema, tag, log);
    await rm(dataDir, { recursive: true, force: true });
  }
}

process.exitCode = await main();
// Devices' and pools' timers must not keep a finished run alive.
process.exit();
