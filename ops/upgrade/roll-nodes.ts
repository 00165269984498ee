/**
 * One replacement of a practice roll, as docs/deployment.md's loop does it with containers: stop
 * the node (SIGTERM: it drains), start it again on the other release with the same settings and
 * ports, wait for its readiness, and for an API node wait until the load balancer lists it UP
 * again, before the next node is touched.
 */
import type { LocalCluster } from '../../bin/cluster.ts';
import type { RollStep } from './roll-history.ts';
import type { PlannedStep } from './roll-plan.ts';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** What a replacement needs. */
export interface ReplaceOptions {
  readonly cluster: LocalCluster;
  /** The checkout of each release (`undefined`: this one). */
  readonly dirs: { readonly old: string; readonly new: string | undefined };
  /** The node's grace to drain before SIGKILL. */
  readonly graceMs: number;
  /** Longest wait for the replacement's readiness, and then for the balancer. */
  readonly readyWithinMs: number;
  readonly elapsed: () => number;
  /** Called once the replacement process started, so its output is told apart. */
  readonly started: (node: string, to: PlannedStep['to']) => void;
}

/**
 * Replaces one node. @throws Error when it is not ready, or not UP at the balancer, in time
 */
export async function replaceNode(step: PlannedStep, o: ReplaceOptions): Promise<RollStep> {
  const { cluster, elapsed } = o;
  const http = cluster.node(step.node).http;
  const stoppingAt = elapsed();
  await cluster.stopNode(step.node, o.graceMs);
  const stoppedAt = elapsed();
  cluster.useRelease(step.node, o.dirs[step.to]);
  o.started(step.node, step.to);
  await cluster.restart(step.node, o.readyWithinMs);
  if (step.role === 'api') {
    const deadline = Date.now() + o.readyWithinMs;
    const up = (): boolean =>
      cluster.lb.balancer.backends().some((b) => b.name === step.node && b.state === 'up');
    while (!up()) {
      if (Date.now() > deadline)
        throw new Error(`${step.node} is ready but the balancer has not listed it UP`);
      await sleep(200);
    }
  }
  return {
    ...step,
    ...(http === undefined ? {} : { http }),
    stoppingAt,
    stoppedAt,
    readyAt: elapsed(),
  };
}
