/**
 * The checker catches a real bug: the cluster runs with the test-only broken variant
 * `no-idempotency` (request ids forgotten, so a retried or replayed rotation rotates again) for a
 * short concurrent-rotations run, and the checker must report I4 naming the operations that
 * share a request id. The same switch is refused without E4C2_ALLOW_TEST_FAULTS. The same
 * environment shows that a partition cuts one node off alone (`ChaosEnvironment.partitionNode`),
 * the load balancer's links to an API node included; and that it listens on as many ports as
 * `--ports` is checked against (chaos/port-plan.ts), counted by the kernel.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { probeReadiness } from '../../bin/lb/index.ts';
import { httpJson } from '../../bin/test/support/http-json.ts';
import { loadConfig, ConfigError } from '../../cluster/config/index.ts';
import { eventually } from '../../cluster/test/support/eventually.ts';
import { ChaosEnvironment } from '../environment.ts';
import { portsNeeded } from '../port-plan.ts';
import { Rng } from '../rng.ts';
import { runScenario } from '../run-scenario.ts';
import { scenarioNamed } from '../scenarios.ts';
import { listeningPortsOf } from './support/listening-ports.ts';

void describe('the chaos checker against a broken C2', () => {
  let env: ChaosEnvironment | undefined;
  const output: string[] = [];

  before(
    async () => {
      const rng = new Rng(7);
      env = await ChaosEnvironment.start({
        apiNodes: 2,
        workers: 2,
        nodeEnv: { E4C2_TEST_FAULTS: 'no-idempotency', E4C2_ALLOW_TEST_FAULTS: 'true' },
        random: () => rng.next(),
        log: (line) => {
          process.stderr.write(`# ${line}\n`);
        },
        nodeOutput: (name, line) => {
          output.push(`${name} | ${line}`);
        },
      });
    },
    { timeout: 90_000 },
  );

  after(async () => {
    await env?.stop();
  });

  void it('listens on as many ports as --ports LOW-HIGH is checked to hold', () => {
    // Counted by the kernel: services, proxies, nodes, Redlock and the balancer, as they run.
    assert.equal(listeningPortsOf().size, portsNeeded(2, 2));
  });

  void it('refuses the switch unless explicitly allowed', () => {
    assert.throws(
      () => loadConfig({ E4C2_TEST_FAULTS: 'no-idempotency' }),
      (err: unknown) => err instanceof ConfigError && /E4C2_ALLOW_TEST_FAULTS/.test(err.message),
    );
    assert.throws(
      () => loadConfig({ E4C2_TEST_FAULTS: 'no-such-bug', E4C2_ALLOW_TEST_FAULTS: 'true' }),
      (err: unknown) => err instanceof ConfigError && /unknown test fault/.test(err.message),
    );
    const config = loadConfig({
      E4C2_TEST_FAULTS: 'no-idempotency',
      E4C2_ALLOW_TEST_FAULTS: 'true',
    });
    assert.deepEqual(config.testing?.faults, ['no-idempotency']);
    assert.equal(loadConfig({}).testing, undefined);
  });

  void it(
    'cuts one node off the network: it turns unready, the others stay ready, it comes back',
    { timeout: 60_000 },
    async () => {
      assert.ok(env !== undefined);
      const running = env;
      const readyz = (name: string): string => `${running.cluster.node(name).health}/readyz`;
      const ready = async (name: string): Promise<boolean> =>
        (await probeReadiness(readyz(name), 1000)) === undefined;
      await eventually(async () => {
        assert.ok(await ready('worker-1'), 'worker-1 ready');
      }, 20_000);
      running.partitionNode('worker-1', true);
      try {
        // Readiness reads PostgreSQL, Redis and the broker; every one of them is out of reach.
        await eventually(async () => {
          assert.equal(await ready('worker-1'), false);
        }, 20_000);
        assert.equal(running.cluster.node('worker-1').running, true, 'the process runs on');
        for (const other of ['api-1', 'api-2', 'worker-2']) assert.ok(await ready(other), other);
      } finally {
        running.partitionNode('worker-1', false);
      }
      await eventually(async () => {
        assert.ok(await ready('worker-1'), 'worker-1 ready');
      }, 30_000);
      assert.throws(() => {
        running.partitionNode('no-such-node', true);
      }, RangeError);
    },
  );

  void it(
    'cuts an API node off the load balancer too: taken out of rotation, calls go to the other',
    { timeout: 60_000 },
    async () => {
      assert.ok(env !== undefined);
      const running = env;
      const { balancer, http } = running.cluster.lb;
      const stateOf = (name: string): string | undefined =>
        balancer.backends().find((b) => b.name === name)?.state;
      const forwardedTo = (name: string): number => balancer.stats()['http']?.forwarded[name] ?? 0;
      await eventually(() => {
        assert.equal(stateOf('api-2'), 'up', 'api-2 in rotation');
        assert.equal(stateOf('api-1'), 'up', 'api-1 in rotation');
      }, 20_000);
      // Where the balancer sends api-2's HTTP connections: a link of api-2's own.
      const route = balancer.candidates('http').find((target) => target.name === 'api-2');
      assert.ok(route !== undefined, 'the balancer has a route to api-2');
      const viaBalancer = `http://${route.host}:${route.port}`;
      const direct = running.cluster.node('api-2').http ?? '';
      assert.notEqual(viaBalancer, direct, 'not the node itself');
      const liveness = (base: string): Promise<number> =>
        httpJson(base, 'GET', '/healthz', { timeoutMs: 2000 }).then(
          (answer) => answer.status,
          () => 0,
        );
      assert.equal(await liveness(viaBalancer), 200, 'the route leads to api-2');
      running.partitionNode('api-2', true);
      try {
        // The node runs on and answers where it listens; the balancer's link to it is cut.
        assert.equal(await liveness(direct), 200, 'api-2 answers on its own port');
        assert.equal(await liveness(viaBalancer), 0, 'no answer through the cut link');
        // The balancer's probes reach the node through the cut links: unanswered, not refused.
        await eventually(() => {
          assert.equal(stateOf('api-2'), 'down', 'api-2 out of rotation');
        }, 20_000);
        assert.equal(stateOf('api-1'), 'up');
        const before = { api1: forwardedTo('api-1'), api2: forwardedTo('api-2') };
        for (let i = 0; i < 4; i++) {
          const answer = await httpJson(http, 'GET', '/e4/topics', { timeoutMs: 5000 });
          assert.equal(answer.status, 200, `call ${i} through the balancer`);
        }
        assert.equal(forwardedTo('api-1'), before.api1 + 4, 'every call went to api-1');
        assert.equal(forwardedTo('api-2'), before.api2, 'none to the cut node');
      } finally {
        running.partitionNode('api-2', false);
      }
      await eventually(() => {
        assert.equal(stateOf('api-2'), 'up', 'api-2 back in rotation');
      }, 30_000);
    },
  );

  void it(
    'reports I4 with the operations that share a request id',
    { timeout: 90_000 },
    async (t) => {
      assert.ok(env !== undefined);
      const scenario = scenarioNamed('concurrent-rotations');
      assert.ok(scenario !== undefined);
      const result = await runScenario(env, scenario, {
        seed: 7,
        durationMs: 6000,
        convergenceDeadlineMs: 20_000,
        devices: 3,
        topics: 1,
        processes: 4,
        progress: (line) => {
          t.diagnostic(line);
        },
        nodeOutput: () => ({ lines: output, dropped: 0 }),
      });
      const i4 = result.violations.filter((v) => v.invariant === 'I4');
      t.diagnostic(`${result.record.operations.length} operations; ${i4.length} I4 violation(s)`);
      for (const v of i4.slice(0, 3))
        t.diagnostic(`${v.message} (operations ${v.operations.join(',')})`);
      assert.ok(i4.length > 0, 'the checker reports the double rotations');
      const ops = new Map(result.record.operations.map((o) => [o.id, o]));
      // Past 20, the list ends with one line saying how many more there were (no operations).
      const listed = i4.filter((v) => !/more violation\(s\) of I4 not listed/.test(v.message));
      assert.ok(listed.length > 0 && listed.length <= 20, `${listed.length} listed`);
      assert.ok(i4.length - listed.length <= 1, 'at most one line for the ones not listed');
      for (const v of listed) {
        assert.ok(v.operations.length >= 2, 'names every call that used the request id');
        const ids = new Set(v.operations.map((id) => ops.get(id)?.requestId));
        assert.equal(ids.size, 1, 'the operations named share one request id');
      }
    },
  );
});
