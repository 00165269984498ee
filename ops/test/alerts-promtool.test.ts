// ops/prometheus/alerts.test.yml: promtool's unit tests of the alert rules pass, and every alert
// of alerts.yml has a case where it fires and one where it stays silent (a new alert without
// tests fails here). promtool comes with Debian's prometheus package; without it the promtool
// runs are skipped and say so, the coverage checks still run.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { describe, it, type TestContext } from 'node:test';
import { list, parseYaml, readRepoFile, record, ROOT, scalar } from './support/ops-files.ts';

const RULES = 'ops/prometheus/alerts.yml';
const TESTS = 'ops/prometheus/alerts.test.yml';

/** Alert names of alerts.yml, in file order. */
function alertNames(): string[] {
  const root = record(parseYaml(readRepoFile(RULES), RULES), RULES);
  return list(root['groups'], 'groups').flatMap((g) => {
    const group = record(g, 'group');
    return list(group['rules'], 'rules')
      .map((r) => record(r, 'rule')['alert'])
      .filter((name) => name !== undefined)
      .map((name) => scalar(name, 'alert'));
  });
}

/** One `alert_rule_test` case: the alert it evaluates and whether it expects it to fire. */
interface AlertCase {
  readonly test: string;
  readonly alertname: string;
  readonly fires: boolean;
}

function alertCases(): AlertCase[] {
  const root = record(parseYaml(readRepoFile(TESTS), TESTS), TESTS);
  assert.deepEqual(root['rule_files'], ['alerts.yml'], `${TESTS} must test ${RULES}`);
  return list(root['tests'], 'tests').flatMap((t, i) => {
    const test = record(t, `tests[${i}]`);
    const name = test['name'] === undefined ? `tests[${i}]` : scalar(test['name'], 'name');
    const cases = test['alert_rule_test'] === undefined ? [] : test['alert_rule_test'];
    return list(cases, `${name}.alert_rule_test`).map((c) => {
      const entry = record(c, `${name}.alert_rule_test`);
      const expected = entry['exp_alerts'] === undefined ? [] : entry['exp_alerts'];
      return {
        test: name,
        alertname: scalar(entry['alertname'], `${name}: alertname`),
        fires: list(expected, `${name}.exp_alerts`).length > 0,
      };
    });
  });
}

/** Runs promtool, or skips the test when it is not installed. */
function promtool(t: TestContext, args: readonly string[]): void {
  const version = spawnSync('promtool', ['--version'], { encoding: 'utf8' });
  if (version.error !== undefined) {
    t.skip('promtool is not installed (apt-get install prometheus)');
    return;
  }
  const run = spawnSync('promtool', args, { cwd: ROOT, encoding: 'utf8' });
  assert.equal(run.status, 0, `promtool ${args.join(' ')}\n${run.stdout}${run.stderr}`);
}

void describe('ops/prometheus/alerts.test.yml', () => {
  const alerts = alertNames();
  const cases = alertCases();

  void it('has a case where each alert fires', () => {
    assert.ok(alerts.length >= 25, `${RULES} holds ${alerts.length} alerts`);
    const firing = new Set(cases.filter((c) => c.fires).map((c) => c.alertname));
    const untested = alerts.filter((a) => !firing.has(a));
    assert.deepEqual(untested, [], `alerts with no exp_alerts in ${TESTS}`);
  });

  void it('has a case where each alert stays silent', () => {
    const silent = new Set(cases.filter((c) => !c.fires).map((c) => c.alertname));
    const untested = alerts.filter((a) => !silent.has(a));
    assert.deepEqual(untested, [], `alerts never expected silent in ${TESTS}`);
  });

  void it('tests only alerts that exist', () => {
    const unknown = cases.filter((c) => !alerts.includes(c.alertname));
    assert.deepEqual(unknown, [], `${TESTS} names alerts that ${RULES} does not have`);
  });

  void it('passes `promtool check rules` when promtool is installed', (t) => {
    promtool(t, ['check', 'rules', RULES]);
  });

  void it('passes `promtool test rules` when promtool is installed', (t) => {
    promtool(t, ['test', 'rules', TESTS]);
  });
});
