/** Reading `EXPLAIN (FORMAT JSON)` plans in tests that pin a statement's plan shape. */
import assert from 'node:assert/strict';
import type { Queryable } from '../../storage/index.ts';

/** Every node of a plan, depth first. */
export function planNodes(node: Record<string, unknown>): Record<string, unknown>[] {
  const children = (node['Plans'] as Record<string, unknown>[] | undefined) ?? [];
  return [node, ...children.flatMap(planNodes)];
}

/**
 * Plans `sql` (not run: plain EXPLAIN) and asserts that it reads `relation` at least `minScans`
 * times and never by a sequential scan.
 */
export async function assertNoSeqScan(
  db: Queryable,
  sql: string,
  params: readonly unknown[],
  relation: string,
  minScans = 1,
): Promise<void> {
  const explained = await db.query<{ 'QUERY PLAN': [{ Plan: Record<string, unknown> }] }>(
    `EXPLAIN (FORMAT JSON) ${sql}`,
    [...params],
  );
  const nodes = planNodes(explained.rows[0]?.['QUERY PLAN'][0].Plan ?? {});
  const scans = nodes.filter((n) => n['Relation Name'] === relation);
  assert.ok(scans.length >= minScans, `the statement reads ${relation}`);
  for (const scan of scans) {
    assert.notEqual(scan['Node Type'], 'Seq Scan', JSON.stringify(scan).slice(0, 300));
  }
}
