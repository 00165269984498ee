/**
 * Same-run comparison of operations on a noisy machine: each contender is warmed up, then timed in
 * alternating slices (A, B, A, B, ...) so that a burst of load from a neighbour hits all of them
 * alike, and each is summarised by the median of its slices.
 *
 * Every slice is timed twice: on the wall clock (the usual ops/s) and on the process's CPU time
 * (`process.cpuUsage`, microsecond accounting on Linux), which leaves out the time the process
 * spent descheduled by neighbours. The CPU figure includes V8's helper threads (concurrent GC), so
 * it charges allocation-heavy code for work that an idle box would hide on another core.
 */
import { performance } from 'node:perf_hooks';

/** One contender of a comparison. */
export interface Contender {
  readonly name: string;
  /** Performs one operation (one message). */
  readonly op: () => unknown;
}

/** How a comparison is timed. */
export interface MeasureSettings {
  /** Warm-up per contender (JIT, caches), also used to size the slices. */
  readonly warmupMs: number;
  /** Alternating rounds; every contender is timed once per round. */
  readonly rounds: number;
  /** Target duration of one timed slice. */
  readonly sliceMs: number;
}

/** The slices of one contender. */
export type ContenderStats = {
  readonly name: string;
  /** Operations per slice: fixed for the whole comparison, sized from the warm-up rate. */
  readonly opsPerSlice: number;
  /** Median over the slices of operations per wall-clock second. */
  readonly medianOpsPerSec: number;
  readonly minOpsPerSec: number;
  readonly maxOpsPerSec: number;
  /** Median over the slices of operations per second of process CPU time. */
  readonly medianOpsPerCpuSec: number;
  /** Median share of the wall time the process was on a CPU (well below 1: a busy box). */
  readonly medianCpuShare: number;
  /** Every slice's wall-clock rate, in round order. */
  readonly samplesOpsPerSec: readonly number[];
};

/** One timed slice. */
type Slice = {
  readonly opsPerSec: number;
  readonly opsPerCpuSec: number;
  readonly cpuShare: number;
};

/**
 * Holds the last result so the engine cannot drop an operation as dead code (node:crypto calls
 * have side effects anyway; this keeps pure-JS contenders honest too).
 */
let sink: unknown;

/** The last operation's result (exists so that the sink is observable). */
export function lastResult(): unknown {
  return sink;
}

/** Runs `op` for at least `ms` and returns its rate in operations per second. */
function warmUp(op: () => unknown, ms: number): number {
  const start = performance.now();
  let ops = 0;
  let elapsed = 0;
  // Check the clock every few operations only: reading it costs about as much as a short op.
  do {
    for (let i = 0; i < 8; i++) sink = op();
    ops += 8;
    elapsed = performance.now() - start;
  } while (elapsed < ms);
  return (ops / elapsed) * 1000;
}

/** Times `count` operations on the wall clock and in CPU time. */
function timeSlice(op: () => unknown, count: number): Slice {
  const cpuStart = process.cpuUsage();
  const start = performance.now();
  for (let i = 0; i < count; i++) sink = op();
  const wallMs = Math.max(performance.now() - start, 1e-3);
  const cpu = process.cpuUsage(cpuStart);
  const cpuMs = Math.max((cpu.user + cpu.system) / 1000, 1e-3);
  return {
    opsPerSec: (count / wallMs) * 1000,
    opsPerCpuSec: (count / cpuMs) * 1000,
    cpuShare: cpuMs / wallMs,
  };
}

/** The median of a non-empty list. */
export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  const upper = sorted[mid] ?? Number.NaN;
  return sorted.length % 2 === 1 ? upper : ((sorted[mid - 1] ?? Number.NaN) + upper) / 2;
}

/**
 * Warms every contender up, then times them in `rounds` alternating rounds of fixed operation
 * counts (about `sliceMs` each). Returns the statistics in the contenders' order.
 */
export function compareAlternating(
  contenders: readonly Contender[],
  settings: MeasureSettings,
): ContenderStats[] {
  const counts = contenders.map((c) =>
    Math.max(1, Math.round((warmUp(c.op, settings.warmupMs) * settings.sliceMs) / 1000)),
  );
  const slices = contenders.map((): Slice[] => []);
  for (let round = 0; round < settings.rounds; round++) {
    contenders.forEach((c, i) => {
      slices[i]?.push(timeSlice(c.op, counts[i] ?? 1));
    });
  }
  return contenders.map((c, i) => {
    const own = slices[i] ?? [];
    const wall = own.map((s) => s.opsPerSec);
    return {
      name: c.name,
      opsPerSlice: counts[i] ?? 1,
      medianOpsPerSec: Math.round(median(wall)),
      minOpsPerSec: Math.round(Math.min(...wall)),
      maxOpsPerSec: Math.round(Math.max(...wall)),
      medianOpsPerCpuSec: Math.round(median(own.map((s) => s.opsPerCpuSec))),
      medianCpuShare: Math.round(median(own.map((s) => s.cpuShare)) * 100) / 100,
      samplesOpsPerSec: wall.map((s) => Math.round(s)),
    };
  });
}
