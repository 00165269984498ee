/** Reading `EXPLAIN (FORMAT JSON)` plans in tests that pin a statement's plan shape. */

/** Every node of a plan, depth first. */
export function planNodes(node: Record<string, unknown>): Record<string, unknown>[] {
  const children = (node['Plans'] as Record<string, unknown>[] | undefined) ?? [];
  return [node, ...children.flatMap(planNodes)];
}
