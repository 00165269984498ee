/**
 * Which node, of which release, a call sent straight to one API node reached (pure): a failure of
 * a re-flash or of a device's own key rotation is then the earlier release's or this one's. Every
 * API node runs the earlier release until its first step, and each step's release from the moment
 * its process was stopped (a call made before that reached the stopping process, one made after
 * it the replacement, or nothing while it was not yet up).
 */
import type { Release, RollStep } from './roll-history.ts';

/** The node a call reached, and the release it ran then. */
export interface ServedBy {
  readonly node: string;
  readonly release: Release;
}

/**
 * The node and release `call` reached, or `undefined` for a call through the balancer (or to an
 * address no step names).
 */
export function servedBy(
  call: { readonly via?: string | undefined; readonly invokedAt: number },
  steps: readonly RollStep[],
): ServedBy | undefined {
  if (call.via === undefined) return undefined;
  const of = steps.filter((s) => s.role === 'api' && s.http === call.via);
  const [first] = of;
  if (first === undefined) return undefined;
  let release: Release = 'old';
  for (const s of of) if (s.stoppedAt <= call.invokedAt) release = s.to;
  return { node: first.node, release };
}

/** `api-2, new release`, or `undefined` as {@link servedBy}. */
export function describeServer(
  call: { readonly via?: string | undefined; readonly invokedAt: number },
  steps: readonly RollStep[],
): string | undefined {
  const by = servedBy(call, steps);
  return by === undefined ? undefined : `${by.node}, ${by.release} release`;
}

/**
 * `served by the old release 4, the new 6`: how many of the ok `calls` each release served
 * (calls through the balancer are not counted); empty when none was sent to a node.
 */
export function servedByReleases(
  calls: ReadonlyArray<{
    readonly via?: string | undefined;
    readonly invokedAt: number;
    readonly outcome: string;
  }>,
  steps: readonly RollStep[],
): string {
  const counts: Record<Release, number> = { old: 0, new: 0 };
  let any = false;
  for (const c of calls) {
    const by = c.outcome === 'ok' ? servedBy(c, steps) : undefined;
    if (by === undefined) continue;
    counts[by.release] += 1;
    any = true;
  }
  return any ? `served by the old release ${counts.old}, the new ${counts.new}` : '';
}
