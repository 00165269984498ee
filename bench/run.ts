/**
 * Benchmark dispatcher.
 *
 *     npm run bench -- [NAME ...] [--quick] [--rounds N] [--slice-ms N] [--no-write] [--list]
 *
 * Every `bench/<name>.ts` module exporting `benchmark` (see `bench/lib/types.ts`) is a benchmark;
 * helpers live in `bench/lib/`. Without a name every benchmark runs. Each report is printed on
 * stdout as JSON (one object for one benchmark, an array for several) and written to
 * `bench/results/<name>-<timestamp>.json`; progress and a summary table go to stderr.
 * Exit codes: 0 done, 1 a benchmark failed, 2 usage error (unknown name or option).
 */
import { mkdir, readdir, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { loadAverage, machineInfo } from './lib/machine.ts';
import { isBenchmark, type Benchmark, type BenchOptions, type JsonObject } from './lib/types.ts';

const benchDir = dirname(fileURLToPath(import.meta.url));
const resultsDir = join(benchDir, 'results');

const usage = `usage: npm run bench -- [NAME ...] [options]
  NAME            a benchmark (default: all of them)
  --list          list the benchmarks and exit
  --quick         short run for smoke tests (figures indicative only)
  --rounds N      alternating rounds per comparison
  --slice-ms N    length of one timed slice in milliseconds
  --no-write      do not write bench/results/<name>-<timestamp>.json`;

/** Thrown for command-line mistakes: reported with the usage and exit code 2. */
class UsageError extends Error {}

/** The benchmark names: the `.ts` files next to this one, except the dispatcher itself. */
async function availableBenchmarks(): Promise<string[]> {
  const entries = await readdir(benchDir, { withFileTypes: true });
  return entries
    .filter(
      (e) =>
        e.isFile() && e.name.endsWith('.ts') && e.name !== basename(fileURLToPath(import.meta.url)),
    )
    .map((e) => e.name.slice(0, -'.ts'.length))
    .sort();
}

async function loadBenchmark(name: string): Promise<Benchmark> {
  const module = (await import(`./${name}.ts`)) as { readonly benchmark?: unknown };
  if (!isBenchmark(module.benchmark) || module.benchmark.name !== name) {
    throw new Error(`bench/${name}.ts does not export a benchmark named '${name}'`);
  }
  return module.benchmark;
}

function positiveInteger(option: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n <= 0) throw new UsageError(`${option} needs a positive integer`);
  return n;
}

/** A file-name-safe UTC timestamp, e.g. `2025-01-31T12-00-00Z`. */
function fileTimestamp(date: Date): string {
  return date
    .toISOString()
    .replace(/\.\d+Z$/, 'Z')
    .replaceAll(':', '-');
}

async function runOne(name: string, options: BenchOptions, write: boolean): Promise<JsonObject> {
  const benchmark = await loadBenchmark(name);
  options.log(`bench ${name}: ${benchmark.description}`);
  const started = new Date();
  const loadAtStart = loadAverage();
  const outcome = await benchmark.run(options);
  const report: JsonObject = {
    benchmark: name,
    description: benchmark.description,
    command: `npm run bench -- ${name}${options.quick ? ' --quick' : ''}`,
    startedAt: started.toISOString(),
    durationSeconds: Math.round((Date.now() - started.getTime()) / 100) / 10,
    machine: machineInfo(),
    loadAverageAtStart: loadAtStart,
    loadAverageAtEnd: loadAverage(),
    settings: outcome.settings,
    results: outcome.results,
  };
  process.stderr.write(`\n${outcome.summary.join('\n')}\n\n`);
  if (write) {
    await mkdir(resultsDir, { recursive: true });
    const file = join(resultsDir, `${name}-${fileTimestamp(started)}.json`);
    await writeFile(file, `${JSON.stringify(report, null, 2)}\n`);
    options.log(`wrote ${file}`);
  }
  return report;
}

async function main(argv: readonly string[]): Promise<number> {
  const available = await availableBenchmarks();
  // Benchmarks may declare options of their own (e.g. fanout --devices N): accept them here.
  const extra: Record<string, { type: 'string' | 'boolean'; short?: string }> = {};
  for (const name of available) Object.assign(extra, (await loadBenchmark(name)).options ?? {});
  let parsed;
  try {
    parsed = parseArgs({
      args: [...argv],
      allowPositionals: true,
      strict: true,
      options: {
        ...extra,
        list: { type: 'boolean', default: false },
        quick: { type: 'boolean', default: false },
        rounds: { type: 'string' },
        'slice-ms': { type: 'string' },
        'no-write': { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
    });
  } catch (err) {
    throw new UsageError(err instanceof Error ? err.message : String(err));
  }
  const { values, positionals } = parsed;
  if (values.help) {
    process.stdout.write(`${usage}\n`);
    return 0;
  }
  if (values.list) {
    for (const name of available) {
      const benchmark = await loadBenchmark(name);
      process.stdout.write(`${name}\t${benchmark.description}\n`);
    }
    return 0;
  }
  const unknown = positionals.filter((p) => !available.includes(p));
  if (unknown.length > 0) {
    throw new UsageError(
      `unknown benchmark ${unknown.map((u) => `'${u}'`).join(', ')}; available: ${available.join(', ')}`,
    );
  }
  const rounds = positiveInteger('--rounds', values.rounds);
  const sliceMs = positiveInteger('--slice-ms', values['slice-ms']);
  const options: BenchOptions = {
    quick: values.quick,
    ...(rounds === undefined ? {} : { rounds }),
    ...(sliceMs === undefined ? {} : { sliceMs }),
    log: (message) => process.stderr.write(`${message}\n`),
  };
  const selected = positionals.length > 0 ? positionals : available;
  const reports: JsonObject[] = [];
  for (const name of selected) reports.push(await runOne(name, options, !values['no-write']));
  const output = reports.length === 1 ? reports[0] : reports;
  process.stdout.write(`${JSON.stringify(output, null, 2)}\n`);
  return 0;
}

try {
  process.exitCode = await main(process.argv.slice(2));
} catch (err) {
  if (err instanceof UsageError) {
    process.stderr.write(`bench: ${err.message}\n${usage}\n`);
    process.exitCode = 2;
  } else {
    process.stderr.write(
      `bench: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
    );
    process.exitCode = 1;
  }
}
