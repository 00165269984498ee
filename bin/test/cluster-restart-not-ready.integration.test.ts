// `npm run cluster -- --restart`: a restarted node that never gets ready is not left running (it
// would hold the node's ports, stay out of the balancer and never be tried again); the try is
// stopped and the next one scheduled by the restart policy.
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { eventually } from '../../cluster/test/support/eventually.ts';
import { createTestSchema, type TestSchema } from '../../cluster/test/support/postgres.ts';
import { startCluster, type LocalCluster } from '../cluster.ts';
import { smallClusterOptions } from './support/test-cluster.ts';

const ROOT = resolve(fileURLToPath(import.meta.url), '../../..');

/** A "release" whose node starts and never answers `/readyz` (a hung start-up). */
async function neverReadyRelease(dir: string): Promise<void> {
  await mkdir(join(dir, 'bin'));
  await writeFile(join(dir, 'bin', 'start.ts'), 'setInterval(() => undefined, 1000);\n');
  await symlink(join(ROOT, 'node_modules'), join(dir, 'node_modules'));
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

void describe('npm run cluster --restart, a restart that is never ready', () => {
  let schema: TestSchema;
  let dataDir: string;
  let releaseDir: string;
  let cluster: LocalCluster;
  const lines: string[] = [];

  before(
    async () => {
      schema = await createTestSchema();
      dataDir = await mkdtemp(join(tmpdir(), 'e4c2-cluster-not-ready-'));
      releaseDir = await mkdtemp(join(tmpdir(), 'e4c2-never-ready-release-'));
      await neverReadyRelease(releaseDir);
      cluster = await startCluster({
        ...smallClusterOptions({
          schema: schema.schema,
          dataDir,
          lines,
          nodeEnv: { E4C2_SHUTDOWN_TIMEOUT_MS: '1000' },
        }),
        restartReadyWithinMs: 1500,
        restartNodes: true,
      });
    },
    { timeout: 90_000 },
  );

  after(async () => {
    await cluster.stop();
    await schema.drop();
    await rm(dataDir, { recursive: true, force: true });
    await rm(releaseDir, { recursive: true, force: true });
  });

  void it('stops the try that was not ready in time and starts another', async () => {
    const crashed = cluster.node('worker-1').pid;
    assert.ok(crashed !== undefined);
    cluster.useRelease('worker-1', releaseDir);
    process.kill(crashed, 'SIGKILL'); // not through the launcher: a crash

    const stopLine = /^cluster: stopping worker-1's try \(pid (\d+)\) to start it again$/;
    const firstTry = await eventually(() => {
      const match = lines.map((l) => stopLine.exec(l) ?? undefined).find((m) => m !== undefined);
      assert.ok(match !== undefined, 'the launcher stopped the try that was not ready');
      return Number(match[1]);
    }, 30_000);
    assert.notEqual(firstTry, crashed);
    assert.ok(
      lines.includes('cluster: restarting worker-1 failed: worker-1 was not ready within 2 s'),
    );
    await eventually(() => {
      assert.equal(isAlive(firstTry), false, 'the try that was not ready is gone');
    }, 10_000);
    // Counted as a start that failed: the policy's second delay, then a new process.
    await eventually(() => {
      assert.ok(lines.includes('cluster: restarting worker-1 in 2000 ms'), lines.join('\n'));
      const node = cluster.node('worker-1');
      assert.ok(
        node.running && node.pid !== undefined && node.pid !== firstTry,
        'another try runs',
      );
    }, 30_000);
  });
});
