/**
 * When the workload of a scenario stops. I9 judges every call invoked from the first fault to
 * the heal, and a fault's heal can end well after the scenario's duration (a killed node's
 * restart takes its start-up time, 10-15 s on a loaded machine): a workload stopped at the
 * duration left that tail of the window without calls, and I9 judged a few dozen calls at most.
 * So the workload runs until every fault of the schedule is healed, and never longer than the
 * duration plus {@link WORKLOAD_OVERRUN_MS} (a heal is bounded by its own deadline, 60 s for a
 * node's restart; this bound keeps a heal that never returns from running calls for ever).
 */
import { RESTART_DEADLINE_MS } from './node-restart.ts';

/** Longest the workload runs past the duration while faults are still healing. */
export const WORKLOAD_OVERRUN_MS = RESTART_DEADLINE_MS;

/** What {@link workloadStop} reads. */
export interface WorkloadWindow {
  /** Milliseconds since the run started. */
  readonly elapsed: () => number;
  /** When the duration ends (on `elapsed`'s clock). */
  readonly stopAt: number;
  /** Whether every fault of the schedule has healed (or was skipped, or failed to start). */
  readonly faultsHealed: () => boolean;
  /** The bound past `stopAt`; {@link WORKLOAD_OVERRUN_MS} by default. */
  readonly overrunMs?: number;
}

/**
 * The workload's stop condition: the duration is over and every fault healed, or the bound past
 * the duration is reached.
 */
export function workloadStop(window: WorkloadWindow): () => boolean {
  const bound = window.stopAt + (window.overrunMs ?? WORKLOAD_OVERRUN_MS);
  return () => {
    const now = window.elapsed();
    return now >= bound || (now >= window.stopAt && window.faultsHealed());
  };
}
