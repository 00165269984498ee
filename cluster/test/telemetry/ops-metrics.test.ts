// The operator files agree with the code: every metric the alert rules (ops/prometheus/alerts.yml)
// and the Grafana dashboard (ops/grafana/dashboards/*.json) use is one C2Metrics really registers,
// with labels it really has; their PromQL is well formed; every registered metric is documented
// (docs/observability.md) with its type and labels; the contract of docs/deployment.md is real.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { parse } from 'yaml';
import { C2Metrics, RPC_PREINITIALISED_STATUSES } from '../../telemetry/index.ts';
import { checkPromql, type Selector } from './promql.ts';

const repoFile = (path: string): string =>
  readFileSync(new URL(`../../../${path}`, import.meta.url), 'utf8');

/** What the code registers: name -> type and label names. */
const registered = new Map<string, { type: string; labels: readonly string[] }>();
{
  const metrics = new C2Metrics({ node: 'n1', role: 'all', version: '0.0.0' });
  for (const { name, type } of await metrics.registry.getMetricsAsJSON()) {
    const metric = metrics.registry.getSingleMetric(name) as unknown as {
      labelNames: readonly string[];
    };
    registered.set(name, { type: String(type), labels: metric.labelNames });
  }
}

/** Labels Prometheus adds to every C2 series (target labels of ops/prometheus/prometheus.yml). */
const TARGET_LABELS = ['job', 'instance', 'site', 'role'];

/** Metrics of other exporters the operator files may use. */
const isExternal = (name: string): boolean =>
  name === 'up' ||
  name.startsWith('haproxy_') ||
  name.startsWith('process_') ||
  name.startsWith('nodejs_');

interface Expression {
  readonly where: string;
  readonly expr: string;
}

function alertExpressions(): Expression[] {
  const root = parse(repoFile('ops/prometheus/alerts.yml')) as {
    groups: Array<{ name: string; rules: Array<{ alert: string; expr: string }> }>;
  };
  return root.groups.flatMap((g) =>
    g.rules.map((r) => ({ where: `alert ${r.alert}`, expr: r.expr })),
  );
}

interface Panel {
  readonly id?: number;
  readonly type: string;
  readonly title: string;
  readonly gridPos?: { x: number; y: number; w: number; h: number };
  readonly datasource?: { uid?: string };
  readonly targets?: Array<{ refId?: string; expr?: string }>;
}

interface Dashboard {
  readonly file: string;
  readonly uid: string;
  readonly title: string;
  readonly panels: readonly Panel[];
  readonly templating: { list: Array<{ name: string; type: string }> };
}

function dashboards(): Dashboard[] {
  const dir = 'ops/grafana/dashboards';
  return readdirSync(new URL(`../../../${dir}`, import.meta.url))
    .filter((f) => f.endsWith('.json'))
    .map((f) => ({ ...(JSON.parse(repoFile(`${dir}/${f}`)) as Dashboard), file: f }));
}

function dashboardExpressions(): Expression[] {
  return dashboards().flatMap((d) =>
    d.panels.flatMap((p) =>
      (p.targets ?? []).map((t) => ({ where: `${d.file}: ${p.title}`, expr: t.expr ?? '' })),
    ),
  );
}

/** The registered metric a selector reads (a histogram's series have suffixes). */
function registeredMetric(name: string): string | undefined {
  if (registered.has(name)) return name;
  const base = name.replace(/_(bucket|sum|count)$/, '');
  return registered.get(base)?.type === 'histogram' ? base : undefined;
}

function checkSelectors(where: string, selectors: readonly Selector[]): void {
  for (const s of selectors) {
    if (isExternal(s.metric)) continue;
    assert.ok(s.metric.startsWith('c2_'), `${where}: ${s.metric} is not a known metric`);
    const metric = registeredMetric(s.metric);
    assert.ok(metric !== undefined, `${where}: ${s.metric} is not registered by C2Metrics`);
    const spec = registered.get(metric);
    const allowed = [...(spec?.labels ?? []), ...TARGET_LABELS];
    if (s.metric.endsWith('_bucket')) allowed.push('le');
    for (const m of s.matchers)
      assert.ok(allowed.includes(m.label), `${where}: ${s.metric} has no label ${m.label}`);
  }
}

/** `| \`c2_x\` | type | labels | meaning |` rows of a document. */
function documented(path: string): Map<string, { type: string; labels: string }> {
  const rows = repoFile(path).matchAll(/^\|\s*`(c2_[a-z0-9_]+)`\s*\|\s*(\w+)\s*\|([^|]*)\|/gm);
  return new Map([...rows].map((m) => [m[1] ?? '', { type: m[2] ?? '', labels: m[3] ?? '' }]));
}

void describe('alert rules and dashboards against the registered metrics', () => {
  const alerts = alertExpressions();
  const panels = dashboardExpressions();

  void it('finds the rules and panels', () => {
    assert.ok(alerts.length >= 15, `${alerts.length} alert expressions`);
    assert.ok(panels.length >= 20, `${panels.length} dashboard expressions`);
  });

  void it('registers the metrics the issue asks for, with Prometheus naming', () => {
    for (const name of [
      'c2_rpc_requests_total',
      'c2_rpc_duration_seconds',
      'c2_rotations_total',
      'c2_outbox_depth',
      'c2_outbox_oldest_age_seconds',
      'c2_queue_jobs',
      'c2_deliveries_total',
      'c2_delivery_attempts_total',
      'c2_delivery_retransmissions_total',
      'c2_convergence_lag_seconds',
      'c2_lock_acquire_duration_seconds',
      'c2_lock_contended_total',
      'c2_devices',
      'c2_db_pool_connections',
      'c2_mqtt_connected',
    ])
      assert.ok(registered.has(name), `${name} is not registered`);
    for (const [name, spec] of registered) {
      if (!name.startsWith('c2_')) continue;
      assert.match(name, /^c2_[a-z][a-z0-9_]*$/, name);
      assert.equal(name.endsWith('_total'), spec.type === 'counter', `${name} is a ${spec.type}`);
      for (const label of spec.labels) {
        assert.ok(
          !/device|client_?id|topic|resource|name$/.test(label),
          `${name}: label ${label} would be unbounded`,
        );
      }
    }
  });

  void it('writes well-formed PromQL over registered metrics and labels (alerts)', () => {
    for (const { where, expr } of alerts) {
      let selectors: Selector[] = [];
      assert.doesNotThrow(() => (selectors = checkPromql(expr)), `${where}: ${expr}`);
      checkSelectors(where, selectors);
    }
  });

  void it('writes well-formed PromQL over registered metrics and labels (dashboards)', () => {
    for (const { where, expr } of panels) {
      let selectors: Selector[] = [];
      assert.doesNotThrow(() => (selectors = checkPromql(expr)), `${where}: ${expr}`);
      assert.ok(selectors.length > 0, `${where}: no metric`);
      checkSelectors(where, selectors);
    }
  });

  void it('starts at 0 the API call series whose rate an alert takes by status', () => {
    // A series born at its first call has no earlier sample: rate() does not count that call,
    // so C2ApiErrorRatioHigh missed the first internal error of each method after each restart.
    const preinitialised = new Set(Object.values(RPC_PREINITIALISED_STATUSES).flat());
    const statuses = alerts
      .flatMap((e) => checkPromql(e.expr))
      .filter((s) => s.metric === 'c2_rpc_requests_total')
      .flatMap((s) => s.matchers.filter((m) => m.label === 'status'))
      .flatMap((m) => m.value.split('|'));
    assert.ok(statuses.length > 0, 'an alert selects API calls by status');
    for (const status of statuses)
      assert.ok(preinitialised.has(status), `status ${status} is not pre-initialised at 0`);
  });

  void it('rejects what a typo would produce (the checker can fail)', () => {
    assert.throws(() => {
      checkPromql('sum(rate(c2_deliveries_total[5m])');
    }, /unclosed/);
    assert.throws(() => {
      checkPromql('summ(c2_devices)');
    }, /unknown function/);
    assert.throws(() => {
      checkPromql('c2_devices{state=idle}');
    }, /bad label matcher/);
    assert.throws(() => {
      checkSelectors('t', checkPromql('c2_delivery_total'));
    }, /not registered/);
    assert.throws(() => {
      checkSelectors('t', checkPromql('c2_queue_jobs{status="waiting"}'));
    }, /no label status/);
    assert.throws(() => {
      checkSelectors('t', checkPromql('c2_devices_bucket'));
    }, /not registered/);
  });

  void it('shows or alerts on every registered C2 metric', () => {
    const used = new Set(
      [...alerts, ...panels]
        .flatMap((e) => checkPromql(e.expr))
        .map((s) => registeredMetric(s.metric))
        .filter((m) => m !== undefined),
    );
    for (const name of registered.keys()) {
      if (name.startsWith('c2_')) assert.ok(used.has(name), `${name} is in no panel or alert`);
    }
  });

  void it('builds a loadable dashboard: unique ids, grid within 24 columns, a data source', () => {
    for (const d of dashboards()) {
      assert.ok(d.uid !== '' && d.title !== '', `${d.file}: uid and title`);
      assert.ok(d.templating.list.some((v) => v.name === 'datasource' && v.type === 'datasource'));
      const ids = d.panels.map((p) => p.id);
      assert.equal(new Set(ids).size, ids.length, `${d.file}: duplicate panel ids`);
      for (const p of d.panels) {
        const g = p.gridPos;
        assert.ok(g !== undefined && g.x >= 0 && g.w > 0 && g.x + g.w <= 24, `${p.title}: grid`);
        if (p.type === 'row') continue;
        assert.equal(p.datasource?.uid, '${datasource}', `${p.title}: data source`);
        const refs = (p.targets ?? []).map((t) => t.refId);
        assert.ok(refs.length > 0, `${p.title}: no query`);
        assert.equal(new Set(refs).size, refs.length, `${p.title}: duplicate refId`);
      }
    }
  });
});

void describe('metric documentation against the registry', () => {
  void it('documents every registered C2 metric with its type and labels, and nothing else', () => {
    const docs = documented('docs/observability.md');
    for (const [name, spec] of registered) {
      if (!name.startsWith('c2_')) continue;
      const doc = docs.get(name);
      assert.ok(doc !== undefined, `${name} is missing from docs/observability.md`);
      assert.equal(doc.type, spec.type, `${name}: documented as ${doc.type}`);
      for (const label of spec.labels)
        assert.ok(doc.labels.includes(`\`${label}\``), `${name}: label ${label} undocumented`);
      if (spec.labels.length === 0) assert.match(doc.labels, /none/, `${name}: labels`);
    }
    for (const name of docs.keys()) assert.ok(registered.has(name), `${name} is documented only`);
  });

  void it('keeps the contract of docs/deployment.md real', () => {
    const contract = documented('docs/deployment.md');
    assert.ok(contract.size >= 7);
    for (const [name, doc] of contract) {
      const spec = registered.get(name);
      assert.ok(spec !== undefined, `${name} (docs/deployment.md) is not registered`);
      assert.equal(doc.type, spec.type, `${name}: type`);
    }
  });
});
