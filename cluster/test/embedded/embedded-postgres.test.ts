// The embedded PostgreSQL, with the real binaries: one cluster in a temp data directory, created on
// the first start and reused by every later one (data survives a clean stop and a crash), a
// postmaster.pid left by a crash or naming a reused pid does not block a start, a server still
// running on the directory is a clear error, and a taken port falls back.
// One test on purpose: initdb takes about a second, each later start a fraction of it.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmod, mkdir, readFile, readdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { C2Error } from '../../errors.ts';
import { isPortFree, startEmbeddedPostgres, type RunningPostgres } from '../../embedded/index.ts';
import { isProcessAlive } from '../../../runtime/process-info.ts';
import { closeServer, holdPort, makeTempDir, recordingLogger, removeTempDir } from './support.ts';

async function query(url: string, sql: string): Promise<Record<string, unknown>[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query<Record<string, unknown>>(sql)).rows;
  } finally {
    await client.end();
  }
}

/** Pids whose parent is `pid` (Linux /proc). */
async function childrenOf(pid: number): Promise<number[]> {
  const found: number[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const raw = await readFile(`/proc/${entry}/stat`, 'utf8').catch(() => '');
    const ppid = Number(raw.slice(raw.lastIndexOf(')') + 2).split(' ')[1]);
    if (ppid === pid) found.push(Number(entry));
  }
  return found;
}

async function postmasterPid(clusterDir: string): Promise<number> {
  return Number((await readFile(join(clusterDir, 'postmaster.pid'), 'utf8')).split('\n')[0]);
}

void describe('startEmbeddedPostgres', () => {
  const tempDirs: string[] = [];
  const started: RunningPostgres[] = [];
  const holders: Awaited<ReturnType<typeof holdPort>>[] = [];
  after(async () => {
    for (const server of started) await server.stop();
    for (const holder of holders) await closeServer(holder.server);
    for (const dir of tempDirs) await removeTempDir(dir);
  });

  void it('keeps its data across restarts and crashes, and refuses a second server', async () => {
    const { log, entries } = recordingLogger();
    // A 0700 root-owned temp dir, as prepareDataDir makes it: the start must open it to the
    // postgres OS user by itself when we are root.
    const dataDir = await makeTempDir('pg');
    tempDirs.push(dataDir);
    const start = async (port = 0): Promise<RunningPostgres> => {
      const server = await startEmbeddedPostgres({ dataDir, port, log });
      started.push(server);
      return server;
    };
    const timings: Record<string, number> = {};
    const timed = async (name: string, port?: number): Promise<RunningPostgres> => {
      const t0 = performance.now();
      const server = await start(port);
      timings[name] = Math.round(performance.now() - t0);
      return server;
    };

    // What a C2 killed during initdb leaves behind: the next first start must clear it.
    await mkdir(join(dataDir, 'postgres.initdb'));
    await writeFile(join(dataDir, 'postgres.initdb', 'PG_VERSION'), '18\n');

    // 1. First start: initdb, database e4c2, loopback only.
    const first = await timed('first start (initdb)');
    assert.equal(first.initialised, true);
    assert.equal(first.clusterDir, join(dataDir, 'postgres'));
    assert.match(
      first.url,
      new RegExp(`^postgres://postgres:[^@]+@127\\.0\\.0\\.1:${first.port}/e4c2$`),
    );
    assert.equal(first.displayUrl, `postgres://postgres@127.0.0.1:${first.port}/e4c2`);
    assert.equal((await stat(join(dataDir, 'postgres-password'))).mode & 0o777, 0o600);
    await assert.rejects(stat(join(dataDir, 'postgres.initdb')), { code: 'ENOENT' });
    if (process.getuid?.() === 0) {
      const owner = (await stat(first.clusterDir)).uid;
      assert.notEqual(owner, 0, 'the cluster belongs to the postgres OS user');
    }
    await query(first.url, 'CREATE TABLE kept (v int); INSERT INTO kept VALUES (42)');
    assert.deepEqual(await query(first.url, 'SELECT current_database() AS db'), [{ db: 'e4c2' }]);
    assert.deepEqual(await query(first.url, 'SHOW server_encoding'), [{ server_encoding: 'UTF8' }]);
    const noPassword = first.url.replace(/:[^:@/]+@/, '@');
    await assert.rejects(query(noPassword, 'SELECT 1'), 'a password is required');

    // 2. A second server on the same directory while the first runs: a clear error.
    await assert.rejects(start(), (err: unknown) => {
      assert.ok(C2Error.is(err, 'C2_FAILED_PRECONDITION'));
      assert.match(err.message, /a server \(pid \d+\) is still running on .*postgres/);
      return true;
    });

    // 3. Clean stop, restart: same cluster, same data; the port is free again after stop.
    await first.stop();
    assert.equal(await isPortFree('127.0.0.1', first.port), true);
    await first.stop(); // idempotent
    const second = await timed('restart');
    assert.equal(second.initialised, false);
    assert.deepEqual(await query(second.url, 'SELECT v FROM kept'), [{ v: 42 }]);
    assert.equal(second.url.split('@')[0], first.url.split('@')[0], 'same password');

    // 4. Crash: SIGKILL the server. Its postmaster.pid stays; the next start must not mind.
    const pid = await postmasterPid(second.clusterDir);
    const children = await childrenOf(pid);
    process.kill(pid, 'SIGKILL');
    assert.deepEqual(await second.exited, { code: null, signal: 'SIGKILL' });
    // Its backends notice the postmaster's death and leave; shared memory is free after that.
    for (
      let i = 0;
      i < 200 && (await Promise.all(children.map(isProcessAlive))).some(Boolean);
      i++
    ) {
      await sleep(25);
    }
    await second.stop(); // after a crash: returns at once
    const third = await timed('start after a crash (stale postmaster.pid)');
    assert.deepEqual(await query(third.url, 'SELECT v FROM kept'), [{ v: 42 }]);
    await third.stop();

    // 5. A postmaster.pid naming a live process that is not PostgreSQL (pid reuse after a
    // reboot), and a taken port: both handled, and reported.
    const sleeper = spawn('sleep', ['30'], { stdio: 'ignore' });
    try {
      assert.ok(sleeper.pid !== undefined);
      await writeFile(
        join(third.clusterDir, 'postmaster.pid'),
        `${sleeper.pid}\n${third.clusterDir}\n`,
      );
      const held = await holdPort();
      holders.push(held);
      const fourth = await timed('start with reused pid and taken port', held.port);
      assert.equal(fourth.fallbackFrom, held.port);
      assert.notEqual(fourth.port, held.port);
      assert.deepEqual(await query(fourth.url, 'SELECT v FROM kept'), [{ v: 42 }]);
      await fourth.stop();
      assert.ok(await isProcessAlive(sleeper.pid), 'the unrelated process was left alone');
    } finally {
      sleeper.kill();
    }
    const warnings = entries.filter((e) => e['level'] === 40).map((e) => e['msg']);
    assert.ok(warnings.includes('embedded PostgreSQL: removed a stale postmaster.pid (crash?)'));
    assert.ok(warnings.includes('embedded PostgreSQL: port taken'));
    console.log(`embedded PostgreSQL timings (ms): ${JSON.stringify(timings)}`);
  });

  void it('refuses a cluster directory that holds something else', async () => {
    const dataDir = await makeTempDir('pg-foreign');
    tempDirs.push(dataDir);
    await mkdir(join(dataDir, 'postgres'));
    await writeFile(join(dataDir, 'postgres', 'notes.txt'), 'not a cluster');
    await assert.rejects(
      startEmbeddedPostgres({ dataDir, port: 0, log: recordingLogger().log }),
      (err: unknown) => {
        assert.ok(C2Error.is(err, 'C2_CONFIG'));
        assert.equal(
          err.message,
          `embedded PostgreSQL: ${join(dataDir, 'postgres')} is neither empty nor a PostgreSQL ` +
            `cluster (no PG_VERSION); move it away`,
        );
        return true;
      },
    );
  });

  void it('names the directory the postgres OS user cannot reach (root only)', async (t) => {
    if (process.getuid?.() !== 0) {
      t.skip('PostgreSQL runs as us when we are not root');
      return;
    }
    const { log } = recordingLogger();
    const root = await makeTempDir('pg-blocked');
    tempDirs.push(root);
    // Opened to everyone, so that the blocking directory is the inner one.
    await chmod(root, 0o755);
    const blocker = join(root, 'private');
    await mkdir(blocker, { mode: 0o700 });
    await assert.rejects(
      startEmbeddedPostgres({ dataDir: join(blocker, 'data'), port: 0, log }),
      (err: unknown) => {
        assert.ok(C2Error.is(err, 'C2_CONFIG'));
        assert.match(
          err.message,
          new RegExp(`cannot reach .*: ${blocker} has mode 700 and owner 0:0; choose a data `),
        );
        return true;
      },
    );
  });
});
