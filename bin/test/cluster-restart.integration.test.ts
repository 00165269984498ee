// `npm run cluster -- --restart`: a node that dies on its own is started again (same ports, same
// settings, the same service links of its own) and serves again; a node stopped on purpose is
// not; nothing restarts once the cluster stops.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { eventually } from '../../cluster/test/support/eventually.ts';
import { createTestSchema, type TestSchema } from '../../cluster/test/support/postgres.ts';
import { TcpFaultProxy } from '../../chaos/faults/tcp-fault-proxy.ts';
import { clusterRestartAttempt, restartWithin } from '../../chaos/node-restart.ts';
import { startCluster, type LocalCluster, type NodeLinks } from '../cluster.ts';
import { probeReadiness } from '../lb/index.ts';
import { smallClusterOptions } from './support/test-cluster.ts';

void describe('npm run cluster --restart', () => {
  let schema: TestSchema;
  let dataDir: string;
  let cluster: LocalCluster;
  const lines: string[] = [];
  /** worker-1 reaches PostgreSQL through a proxy of its own (ClusterOptions.routeNode). */
  let workerDb: TcpFaultProxy | undefined;
  const routed: string[] = [];

  before(
    async () => {
      schema = await createTestSchema();
      dataDir = await mkdtemp(join(tmpdir(), 'e4c2-cluster-restart-'));
      cluster = await startCluster({
        ...smallClusterOptions({ schema: schema.schema, dataDir, lines }),
        restartNodes: true,
        routeNode: async (node: string, links: NodeLinks): Promise<NodeLinks> => {
          routed.push(node);
          if (node !== 'worker-1') return links;
          const target = new URL(links.databaseUrl);
          workerDb = await TcpFaultProxy.start({
            name: 'worker-1-postgres',
            targetHost: target.hostname,
            targetPort: Number(target.port),
          });
          target.port = String(workerDb.port);
          return { ...links, databaseUrl: target.toString() };
        },
      });
    },
    { timeout: 90_000 },
  );

  after(async () => {
    await cluster.stop();
    await workerDb?.close();
    await schema.drop();
    await rm(dataDir, { recursive: true, force: true });
  });

  void it('starts a worker that was SIGKILLed from outside again, on its health port', async () => {
    const before = cluster.node('worker-1');
    assert.ok(before.pid !== undefined);
    process.kill(before.pid, 'SIGKILL'); // not through the launcher: a crash
    const after = await eventually(() => {
      const node = cluster.node('worker-1');
      assert.ok(
        node.running && node.pid !== undefined && node.pid !== before.pid,
        'worker-1 runs again as a new process',
      );
      return node;
    }, 60_000);
    await eventually(async () => {
      assert.equal(await probeReadiness(`${after.health}/readyz`, 1000), undefined);
    }, 60_000);
    assert.ok(
      lines.some((l) => /worker-1 \(pid \d+\) exited unexpectedly \(signal SIGKILL\)/.test(l)),
    );
    assert.ok(lines.includes('cluster: restarting worker-1 in 1000 ms'));
    // Logged once the launcher itself saw it ready (it may poll after this test did).
    await eventually(() => {
      assert.ok(
        lines.includes(`cluster: worker-1 restarted (pid ${after.pid ?? '?'})`),
        'the launcher logged the restart',
      );
    }, 10_000);
  });

  void it('keeps a node on the links routeNode gave it, across the restart', async () => {
    assert.deepEqual([...routed].sort(), ['api-1', 'worker-1'], 'asked once per node');
    assert.ok(workerDb !== undefined);
    const health = `${cluster.node('worker-1').health}/readyz`;
    await eventually(async () => {
      assert.equal(await probeReadiness(health, 1000), undefined);
    }, 30_000);
    // Readiness reads PostgreSQL: cut off from it, the restarted worker turns unready, and says
    // so within its check bound (2 s) rather than leaving the prober waiting...
    workerDb.partition(true);
    await eventually(async () => {
      assert.equal(await probeReadiness(health, 5000), 'HTTP 503');
    }, 30_000);
    // ...while api-1, on the shared link, stays ready.
    assert.equal(await probeReadiness(`${cluster.node('api-1').health}/readyz`, 1000), undefined);
    workerDb.partition(false);
    await eventually(async () => {
      assert.equal(await probeReadiness(health, 1000), undefined);
    }, 30_000);
  });

  void it('leaves a node the launcher was told to kill down', async () => {
    const pid = cluster.node('api-1').pid;
    assert.ok(cluster.kill('api-1', 'SIGKILL'));
    await eventually(() => {
      assert.equal(cluster.node('api-1').running, false);
    }, 10_000);
    await new Promise((r) => setTimeout(r, 1500)); // past the first restart delay
    assert.equal(cluster.node('api-1').running, false);
    assert.equal(cluster.node('api-1').pid, pid);
    assert.ok(!lines.some((l) => l.includes('restarting api-1')));
  });

  void it('stops a restart try that was not ready in time, so the next try can start', async () => {
    const killed = cluster.node('worker-1').pid;
    const seen = lines.length;
    assert.ok(cluster.kill('worker-1', 'SIGKILL'));
    await eventually(() => {
      assert.equal(cluster.node('worker-1').running, false);
    }, 10_000);
    // The chaos suite's restart, given no time to be ready: the try starts a process and fails.
    const attempt = clusterRestartAttempt(cluster, 'worker-1', 2000);
    let tried: number | undefined;
    await assert.rejects(
      restartWithin(
        'worker-1',
        {
          start: (readyWithinMs) =>
            attempt.start(readyWithinMs).finally(() => {
              tried = cluster.node('worker-1').pid;
            }),
          abandon: attempt.abandon,
        },
        { deadlineMs: 300, retryMs: 10, maxAttempts: 1 },
      ),
      /worker-1 was not ready within/,
    );
    assert.ok(tried !== undefined && tried !== killed, 'the try started a process of its own');
    // Stopped, and its exit seen (it was left running, holding the node's ports).
    assert.equal(cluster.node('worker-1').running, false);
    assert.throws(() => process.kill(tried ?? 0, 0), { code: 'ESRCH' }, 'the process is gone');
    assert.ok(
      !lines.slice(seen).some((l) => l.includes('restarting worker-1 in')),
      'its stop is not taken for a crash (nothing restarts it)',
    );
    // Another try starts (it found the node "still running") and gets ready on the same ports.
    const again = await cluster.restart('worker-1');
    assert.equal(await probeReadiness(`${again.health}/readyz`, 5000), undefined);
  });
});
