/**
 * The contract between the dispatcher (`bench/run.ts`) and the benchmarks: every `bench/<name>.ts`
 * module exports `benchmark: Benchmark`, and the dispatcher finds it by its file name.
 */

/** A JSON value: what a benchmark may put in its report. */
export type Json =
  null | boolean | number | string | readonly Json[] | { readonly [key: string]: Json };

/** A JSON object. */
export type JsonObject = { readonly [key: string]: Json };

/** Measurement settings common to every benchmark; each benchmark chooses its own defaults. */
export interface BenchOptions {
  /** Short run for smoke tests (fewer, shorter rounds): figures are indicative only. */
  readonly quick: boolean;
  /** Alternating rounds per comparison (`--rounds`), overriding the benchmark's default. */
  readonly rounds?: number;
  /** Length of one timed slice in milliseconds (`--slice-ms`), overriding the default. */
  readonly sliceMs?: number;
  /** Progress messages (the dispatcher sends them to stderr, keeping stdout pure JSON). */
  readonly log: (message: string) => void;
}

/** What a benchmark hands back to the dispatcher. */
export interface BenchOutcome {
  /** The measurement settings actually used. */
  readonly settings: JsonObject;
  /** The figures, written as is into the report. */
  readonly results: JsonObject;
  /** A human-readable summary (a Markdown table), printed on stderr after the run. */
  readonly summary: readonly string[];
}

/** A benchmark module's export. */
export interface Benchmark {
  /** Must equal the module's file name (`bench/<name>.ts`). */
  readonly name: string;
  /** One line, shown by `npm run bench -- --list` and in the report. */
  readonly description: string;
  /** Runs the benchmark; it must stay within about a minute with the default settings. */
  run(options: BenchOptions): Promise<BenchOutcome>;
  /**
   * Extra command-line options the benchmark reads itself (node:util parseArgs shape); the
   * dispatcher accepts them instead of rejecting them as unknown.
   */
  readonly options?: Readonly<
    Record<string, { readonly type: 'string' | 'boolean'; readonly short?: string }>
  >;
}

/** Runtime check of a dynamically imported module's `benchmark` export. */
export function isBenchmark(value: unknown): value is Benchmark {
  if (typeof value !== 'object' || value === null) return false;
  const candidate = value as Partial<Record<keyof Benchmark, unknown>>;
  return (
    typeof candidate.name === 'string' &&
    typeof candidate.description === 'string' &&
    typeof candidate.run === 'function'
  );
}
