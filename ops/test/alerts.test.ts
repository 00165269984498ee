// ops/prometheus/alerts.yml: parses, every rule is complete, and every C2 metric it uses is part
// of the metric contract documented in docs/deployment.md or docs/observability.md (every metric).
// cluster/test/telemetry/ops-metrics.test.ts checks the same names against the code's registry.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { list, parseYaml, readRepoFile, record, scalar } from './support/ops-files.ts';

const SEVERITIES = ['info', 'warning', 'critical'];

interface Rule {
  readonly group: string;
  readonly alert: string;
  readonly expr: string;
  readonly for: string;
  readonly labels: Record<string, unknown>;
  readonly annotations: Record<string, unknown>;
}

function loadRules(): Rule[] {
  const root = record(parseYaml(readRepoFile('ops/prometheus/alerts.yml'), 'alerts.yml'), 'root');
  const rules: Rule[] = [];
  for (const g of list(root['groups'], 'groups')) {
    const group = record(g, 'group');
    const name = scalar(group['name'], 'group.name');
    for (const r of list(group['rules'], `${name}.rules`)) {
      const rule = record(r, `${name} rule`);
      const alert = scalar(rule['alert'], `${name}: rule without alert name`);
      rules.push({
        group: name,
        alert,
        expr: scalar(rule['expr'], `${alert}.expr`),
        for: scalar(rule['for'], `${alert}.for`),
        labels: record(rule['labels'], `${alert}.labels`),
        annotations: record(rule['annotations'], `${alert}.annotations`),
      });
    }
  }
  return rules;
}

/**
 * The metric contract: `| \`c2_name\` | type | labels | meaning |` rows of docs/deployment.md
 * and docs/observability.md.
 */
function documentedMetrics(): Map<string, string> {
  const doc = readRepoFile('docs/deployment.md') + readRepoFile('docs/observability.md');
  const rows = doc.matchAll(/^\|\s*`(c2_[a-z0-9_]+)`\s*\|\s*(\w+)\s*\|/gm);
  return new Map([...rows].map((m) => [m[1] ?? '', m[2] ?? '']));
}

/** The documented metric a series name belongs to (a histogram's `_bucket`, `_sum`, `_count`). */
function baseMetric(name: string, contract: ReadonlyMap<string, string>): string {
  const base = name.replace(/_(bucket|sum|count)$/, '');
  return base !== name && contract.get(base) === 'histogram' ? base : name;
}

/** GitHub's anchor of a Markdown heading: lower case, punctuation dropped, spaces as hyphens. */
function headingSlug(heading: string): string {
  return heading
    .toLowerCase()
    .replace(/[^\p{L}\p{N}\s_-]/gu, '')
    .trim()
    .replace(/\s/g, '-');
}

/**
 * The text of the section of `file` (repository path) whose heading's anchor is `slug`, up to the
 * next heading of the same or a higher level; undefined when no heading has that anchor.
 */
function docSection(file: string, slug: string): string | undefined {
  const lines = readRepoFile(file).split('\n');
  const start = lines.findIndex(
    (l) => /^#+ /.test(l) && headingSlug(l.replace(/^#+ /, '')) === slug,
  );
  if (start < 0) return undefined;
  const level = /^#+/.exec(lines[start] ?? '')?.[0].length ?? 1;
  const end = lines.findIndex((l, i) => i > start && (/^#+ /.exec(l)?.[0].length ?? 99) <= level);
  return lines.slice(start, end < 0 ? undefined : end).join('\n');
}

/** Metric names an expression reads (identifiers followed by a selector, range or space). */
function metricsIn(expr: string): string[] {
  const withoutStrings = expr.replace(/"[^"]*"/g, '""');
  const names = withoutStrings.match(/\b(?:c2|haproxy)_[a-z0-9_]+\b|\bup\b/g) ?? [];
  return [...new Set(names)];
}

const rules = loadRules();

void describe('ops/prometheus/alerts.yml', () => {
  void it('parses and holds the rules the runbook names', () => {
    const names = rules.map((r) => r.alert);
    assert.equal(new Set(names).size, names.length, 'duplicate alert names');
    for (const needed of [
      'C2NodeDown',
      'C2DeliveryFailures',
      'C2ConvergenceLagHigh',
      'C2OutboxStuck',
      'C2LockContention',
      'C2QueueBacklog',
    ]) {
      assert.ok(names.includes(needed), `no ${needed} rule`);
    }
  });

  void it('gives every rule an expr, a for, a severity and a summary', () => {
    for (const r of rules) {
      assert.notEqual(r.expr.trim(), '', `${r.alert}: empty expr`);
      assert.match(r.for, /^\d+[smh]$/, `${r.alert}: for`);
      const severity = scalar(r.labels['severity'], `${r.alert}.labels.severity`);
      assert.ok(SEVERITIES.includes(severity), `${r.alert}: severity ${severity}`);
      const summary = scalar(r.annotations['summary'], `${r.alert}.annotations.summary`);
      assert.notEqual(summary.trim(), '', `${r.alert}: empty summary`);
    }
  });

  void it('writes balanced expressions and templates', () => {
    for (const r of rules) {
      for (const [open, close] of [
        ['(', ')'],
        ['{', '}'],
        ['[', ']'],
      ] as const) {
        assert.equal(
          r.expr.split(open).length,
          r.expr.split(close).length,
          `${r.alert}: unbalanced ${open}${close} in expr`,
        );
      }
      for (const value of Object.values(r.annotations)) {
        const text = scalar(value, `${r.alert} annotation`);
        assert.equal(text.split('{{').length, text.split('}}').length, `${r.alert}: template`);
      }
    }
  });

  void it('uses only C2 metrics of the documented contract', () => {
    const contract = documentedMetrics();
    assert.ok(contract.size >= 7, `docs/deployment.md documents ${contract.size} c2_ metrics`);
    const used = new Set(
      rules.flatMap((r) => metricsIn(r.expr)).map((n) => baseMetric(n, contract)),
    );
    for (const name of used) {
      if (!name.startsWith('c2_')) continue;
      assert.ok(contract.has(name), `${name} is used by an alert but not in docs/deployment.md`);
    }
    for (const needed of [
      'c2_deliveries_total',
      'c2_outbox_depth',
      'c2_outbox_oldest_age_seconds',
      'c2_convergence_lag_seconds',
      'c2_lock_acquire_failures_total',
      'c2_queue_jobs',
    ]) {
      assert.ok(contract.has(needed), `${needed} is not documented`);
      assert.ok(used.has(needed), `no alert watches ${needed}`);
    }
  });

  void it('counts as internal errors what is internal, never a probe or a dependency down', () => {
    const rule = rules.find((r) => r.alert === 'C2ApiErrorRatioHigh');
    assert.ok(rule !== undefined);
    const status = /status=~"([^"]+)"/.exec(rule.expr)?.[1] ?? '';
    const internal = new RegExp(`^(?:${status})$`);
    for (const s of ['INTERNAL', 'UNKNOWN', 'DATA_LOSS', '500']) assert.match(s, internal);
    // A node not ready answers its probes 503 every few seconds; C2_UNAVAILABLE is 503 too.
    for (const s of ['503', 'UNAVAILABLE', '499', '400']) assert.doesNotMatch(s, internal);
    const selectors = [...rule.expr.matchAll(/c2_rpc_requests_total\{([^}]*)\}/g)];
    assert.equal(selectors.length, 2, 'numerator and denominator');
    for (const [, matchers] of selectors) {
      const probes = new RegExp(`^(?:${/method!~"([^"]+)"/.exec(matchers ?? '')?.[1] ?? '$^'})$`);
      for (const m of ['/healthz', '/readyz', 'grpc.health.v1.Health/Check'])
        assert.match(m, probes);
      assert.doesNotMatch('pb.C2/NewTopic', probes);
    }
  });

  void it('names for every alert a runbook section of the docs that says what to do about it', () => {
    for (const r of rules) {
      const runbook = scalar(r.annotations['runbook'], `${r.alert}.annotations.runbook`);
      const [file = '', slug = ''] = runbook.split('#');
      assert.match(file, /^docs\/[a-z-]+\.md$/, `${r.alert}: runbook ${runbook}`);
      const section = docSection(file, slug);
      assert.ok(section !== undefined, `${r.alert}: no section #${slug} in ${file}`);
      // Its full name, as an operator paged by it searches for it.
      assert.ok(section.includes(`\`${r.alert}\``), `${r.alert} is not named in ${runbook}`);
    }
  });

  void it('documents counters as *_total and gauges without it', () => {
    for (const [name, type] of documentedMetrics()) {
      assert.ok(['counter', 'gauge', 'histogram'].includes(type), `${name}: type ${type}`);
      assert.equal(name.endsWith('_total'), type === 'counter', `${name} is a ${type}`);
    }
  });
});
