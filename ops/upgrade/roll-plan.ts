/**
 * The order of a practice roll: every node replaced by the new release one at a time (API nodes
 * first, as docs/deployment.md's loop does), then the first API node and the first worker rolled
 * back to the earlier release, so that both directions run beside the other release.
 */
import type { Release } from './roll-history.ts';

/** One replacement of the plan. */
export interface PlannedStep {
  readonly node: string;
  readonly role: 'api' | 'worker';
  readonly to: Release;
}

/**
 * The steps for a cluster of `apiNodes` and `workers` (names as `npm run cluster` gives them).
 * @throws RangeError when a role has no node (nothing to roll back)
 */
export function rollPlan(apiNodes: readonly string[], workers: readonly string[]): PlannedStep[] {
  const [firstApi] = apiNodes;
  const [firstWorker] = workers;
  if (firstApi === undefined || firstWorker === undefined)
    throw new RangeError('a practice roll needs at least one API node and one worker');
  return [
    ...apiNodes.map((node) => ({ node, role: 'api' as const, to: 'new' as const })),
    ...workers.map((node) => ({ node, role: 'worker' as const, to: 'new' as const })),
    { node: firstApi, role: 'api', to: 'old' },
    { node: firstWorker, role: 'worker', to: 'old' },
  ];
}

/** A replacement's own time besides the dwell (the stop, the start, the balancer's checks). */
export const STEP_ESTIMATE_MS = 2000;

/**
 * The interval between two re-flashes that spreads `reflashes` over the roll's expected length
 * (`steps` replacements, each followed by `dwellMs`, and `pausesMs` of workload before and after),
 * so that some go through a node of each release, the rolled-back one included. At least 2 s.
 */
export function reflashEveryMs(
  steps: number,
  dwellMs: number,
  pausesMs: number,
  reflashes: number,
): number {
  const rollMs = pausesMs + steps * (dwellMs + STEP_ESTIMATE_MS);
  return Math.max(2000, Math.floor(rollMs / Math.max(1, reflashes)));
}
