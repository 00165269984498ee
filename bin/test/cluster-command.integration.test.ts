/**
 * `npm run cluster` as an operator runs it: its arguments, the shared KEK passphrase file, and
 * the command itself as a process (2 API nodes, 1 worker, 3 Redlock Redis, the load balancer) on
 * the machine's PostgreSQL (private schema), a private queue Redis and Mosquitto: it prints every
 * address, serves through the balancer, reports a child that dies and keeps the rest running,
 * and on SIGTERM stops every process it started.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmod, mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { after, describe, it } from 'node:test';
import { TEST_MQTT_URL } from '../../cluster/test/support/c2-harness.ts';
import {
  createTestSchema,
  TEST_DATABASE_URL,
  type TestSchema,
} from '../../cluster/test/support/postgres.ts';
import { parseClusterArgs } from '../cluster-args.ts';
import { loadOrCreatePassphrase } from '../cluster-kek.ts';
import { UsageError } from '../usage-args.ts';
import { httpJson } from './support/http-json.ts';
import { alive, descendants, killIfAlive } from './support/process-tree.ts';
import { startPrivateRedis, type PrivateRedis } from './support/redis-server.ts';

void describe('npm run cluster', () => {
  const dirs: string[] = [];
  after(async () => {
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  });

  void it('parses its arguments, with defaults and clear errors', () => {
    const env = { DATABASE_URL: 'postgres://db/x', REDIS_URL: '', MQTT_URL: undefined };
    assert.deepEqual(parseClusterArgs([], env), {
      apiNodes: 2,
      workers: 2,
      redlock: 1,
      basePort: 7000,
      schema: 'e4c2_cluster',
      dataDir: './data/cluster',
      databaseUrl: 'postgres://db/x',
      redisUrl: 'redis://127.0.0.1:6379',
      mqttUrl: 'mqtt://127.0.0.1:1883',
      restartNodes: false,
    });
    assert.equal(parseClusterArgs(['--restart'], env)?.restartNodes, true);
    const parsed = parseClusterArgs(
      ['--api', '3', '--workers', '0', '--redlock', '3', '--base-port', '0', '--schema', 's_1'],
      {},
    );
    assert.ok(parsed !== undefined);
    assert.equal(parsed.apiNodes, 3);
    assert.equal(parsed.workers, 0);
    assert.equal(parsed.redlock, 3);
    assert.equal(parsed.basePort, 0);
    assert.equal(parseClusterArgs(['--help'], {}), undefined);
    for (const [args, message] of [
      [['--api', '0'], /--api must be between 1 and 16/],
      [['--api', '-1'], /--api must be a whole number from 1 to 16, not "-1"/],
      [['--workers', '-2'], /--workers must be a whole number from 0 to/],
      [['--base-port', '-5'], /--base-port must be 0 or between 1024/],
      [['--api', 'two'], /--api must be a whole number/],
      [['--redlock', '2'], /--redlock must be 1 or 3/],
      [['--redlock', '5'], /--redlock must be 1 or 3/],
      [['--base-port', '80'], /--base-port must be 0 or between 1024/],
      [['--base-port', '70000'], /--base-port must be 0 or between 1024/],
      [['--schema', 'Robert"; DROP'], /--schema must be a plain identifier/],
      [['--nodes', '3'], /Unknown option '--nodes'/],
    ] as const) {
      assert.throws(
        () => parseClusterArgs(args, {}),
        (err: unknown) => err instanceof UsageError && message.test(err.message),
      );
    }
  });

  void it('keeps one KEK passphrase, mode 0600, and refuses a file others can read', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'e4c2-kek-'));
    dirs.push(dir);
    const first = await loadOrCreatePassphrase(join(dir, 'cluster'));
    assert.match(first, /^[0-9a-f]{64}$/);
    const file = join(dir, 'cluster', 'kek-passphrase');
    assert.equal((await stat(file)).mode & 0o777, 0o600);
    assert.equal(await loadOrCreatePassphrase(join(dir, 'cluster')), first, 'reused, not replaced');
    await chmod(file, 0o644);
    await assert.rejects(loadOrCreatePassphrase(join(dir, 'cluster')), /readable by others/);
    assert.equal((await readFile(file, 'utf8')).trim(), first, 'left as it was');
  });

  void it(
    'runs, reports a dead child and keeps serving, and stops every process on SIGTERM',
    { timeout: 120_000 },
    async (t) => {
      let schema: TestSchema | undefined;
      let queue: PrivateRedis | undefined;
      const pids: number[] = [];
      const lines: string[] = [];
      let child: ReturnType<typeof spawn> | undefined;
      try {
        schema = await createTestSchema();
        queue = await startPrivateRedis();
        const dataDir = await mkdtemp(join(tmpdir(), 'e4c2-cluster-cmd-'));
        dirs.push(dataDir);
        const env: NodeJS.ProcessEnv = {};
        for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('E4C2_')) env[k] = v;
        child = spawn(
          process.execPath,
          [
            ...['--import', 'tsx', 'bin/cluster.ts', '--api', '2', '--workers', '1'],
            ...['--redlock', '3', '--base-port', '0', '--schema', schema.schema],
            ...['--data-dir', dataDir],
          ],
          {
            env: {
              ...env,
              DATABASE_URL: TEST_DATABASE_URL,
              REDIS_URL: queue.url,
              MQTT_URL: TEST_MQTT_URL,
              E4C2_LOG_LEVEL: 'warn',
              E4C2_SHUTDOWN_TIMEOUT_MS: '3000',
            },
            stdio: ['ignore', 'pipe', 'inherit'],
          },
        );
        const waiters: Array<() => void> = [];
        createInterface({ input: child.stdout as NodeJS.ReadableStream }).on('line', (line) => {
          lines.push(line);
          for (const w of waiters.splice(0)) w();
        });
        const exited = new Promise<number | null>((resolve) => {
          child?.once('exit', (code) => {
            resolve(code);
          });
        });
        const waitLine = async (pattern: RegExp, timeoutMs: number): Promise<string> => {
          const deadline = Date.now() + timeoutMs;
          for (;;) {
            const found = lines.find((l) => pattern.test(l));
            if (found !== undefined) return found;
            if (Date.now() > deadline)
              throw new Error(`no line ${String(pattern)}:\n${lines.join('\n')}`);
            await new Promise<void>((resolve) => {
              const timer = setTimeout(resolve, 200);
              waiters.push(() => {
                clearTimeout(timer);
                resolve();
              });
            });
          }
        };

        await waitLine(/^ {2}stop with Ctrl-C$/, 90_000);
        const block = lines.slice(lines.findIndex((l) => l.startsWith('E4 C2 local cluster')));
        t.diagnostic(block.join('\n'));
        assert.match(block[1] ?? '', /^ {2}load balancer gRPC: 127\.0\.0\.1:\d+$/, 'LB gRPC first');
        assert.match(block[2] ?? '', /^ {2}load balancer HTTP: http:\/\/127\.0\.0\.1:\d+$/);
        assert.ok(lines.some((l) => /^cluster: \[\d+\/7\] api-1 ready \(pid \d+\)$/.test(l)));
        for (const name of ['api-1', 'api-2', 'worker-1', 'redlock-1', 'redlock-2', 'redlock-3']) {
          const line = block.find((l) => l.trimStart().startsWith(`${name} `));
          const pid = Number(/pid (\d+)/.exec(line ?? '')?.[1]);
          assert.ok(pid > 0 && alive(pid), `${name} runs: ${line ?? '(missing)'}`);
          pids.push(pid);
        }
        assert.ok(block.some((l) => /KEK: passphrase in .*kek-passphrase$/.test(l)));
        const lbHttp = /(http:\/\/\S+)$/.exec(block[2] ?? '')?.[1] ?? '';

        const topic = `cmd/${randomBytes(4).toString('hex')}`;
        assert.equal((await httpJson(lbHttp, 'POST', `/e4/topic/${topic}`)).status, 200);
        // A child dies: said so, the rest keeps running, the balancer keeps serving.
        const api1 = pids[0] ?? 0;
        process.kill(api1, 'SIGKILL');
        await waitLine(
          /^cluster: api-1 \(pid \d+\) exited unexpectedly \(signal SIGKILL\)/,
          10_000,
        );
        for (let i = 0; i < 6; i++) {
          const res = await httpJson(lbHttp, 'GET', `/v1/topics/${encodeURIComponent(topic)}`);
          assert.equal(res.status, 200, 'served by api-2 through the balancer');
        }

        child.kill('SIGTERM');
        assert.equal(await exited, 0, 'a clean exit');
        assert.ok(lines.includes('cluster: stopped'), lines.slice(-10).join('\n'));
        const order = ['load balancer', 'worker-1', 'api-2', 'redlock-1'].map((what) =>
          lines.findIndex((l) => l.startsWith('cluster: stopping') && l.includes(what)),
        );
        assert.ok(
          order.every((at, i) => at >= 0 && (i === 0 || at > (order[i - 1] ?? 0))),
          'stopped in reverse start order',
        );
        for (const pid of pids) assert.equal(alive(pid), false, `pid ${pid} is gone`);
      } finally {
        if (child?.exitCode === null) {
          child.kill('SIGTERM');
          await new Promise((r) => setTimeout(r, 5000));
        }
        if (child?.exitCode === null) child.kill('SIGKILL');
        // Whatever the launcher announced and left behind (its children have their own group).
        for (const line of lines) {
          const pid = Number(/pid (\d+)/.exec(line)?.[1] ?? 0);
          if (pid > 0 && !pids.includes(pid)) pids.push(pid);
        }
        for (const pid of pids) if (alive(pid)) process.kill(pid, 'SIGKILL');
        await queue?.stop();
        await schema?.drop();
      }
    },
  );

  /**
   * The launcher with one API node on private ports and `signal` sent once `when` is printed;
   * `dropOutput` closes its stdout first (a `| head` that ended); `twice` sends it again 50 ms
   * later (a terminal's Ctrl-C reaches the launcher both from the terminal and through npm).
   * Resolves with its exit and whether every process below it is gone.
   */
  async function interrupt(
    when: RegExp,
    signal: NodeJS.Signals,
    dropOutput: boolean,
    twice = false,
  ): Promise<{
    code: number | null;
    signal: NodeJS.Signals | null;
    left: number[];
    lines: string[];
  }> {
    const schema = await createTestSchema();
    const dataDir = await mkdtemp(join(tmpdir(), 'e4c2-cluster-sig-'));
    dirs.push(dataDir);
    const env: NodeJS.ProcessEnv = {};
    for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('E4C2_')) env[k] = v;
    const child = spawn(
      process.execPath,
      [
        ...['--import', 'tsx', 'bin/cluster.ts', '--api', '1', '--workers', '0'],
        ...['--base-port', '0', '--schema', schema.schema, '--data-dir', dataDir],
      ],
      {
        env: {
          ...env,
          DATABASE_URL: TEST_DATABASE_URL,
          MQTT_URL: TEST_MQTT_URL,
          E4C2_LOG_LEVEL: 'warn',
          E4C2_SHUTDOWN_TIMEOUT_MS: '3000',
        },
        stdio: ['ignore', 'pipe', 'ignore'],
      },
    );
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>(
      (resolve) => {
        child.once('exit', (code, sig) => {
          resolve({ code, signal: sig });
        });
      },
    );
    let processes: number[] = [];
    const lines: string[] = [];
    try {
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => {
          reject(new Error(`no line ${String(when)} within 60 s`));
        }, 60_000);
        createInterface({ input: child.stdout as NodeJS.ReadableStream }).on('line', (line) => {
          lines.push(line);
          if (!when.test(line)) return;
          clearTimeout(timer);
          resolve();
        });
      });
      processes = descendants(child.pid ?? 0);
      if (dropOutput) child.stdout.destroy();
      child.kill(signal);
      if (twice) {
        await new Promise((r) => setTimeout(r, 50));
        child.kill(signal);
      }
      const status = await Promise.race([
        exited,
        new Promise<never>((_, reject) =>
          setTimeout(() => {
            reject(new Error('the launcher did not exit within 30 s'));
          }, 30_000),
        ),
      ]);
      await new Promise((r) => setTimeout(r, 500)); // the last SIGKILLs land
      return { ...status, left: processes.filter(alive), lines };
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
      for (const pid of processes) killIfAlive(pid);
      await schema.drop();
    }
  }

  void it('a closed terminal (SIGHUP) with its output gone stops every process', async () => {
    const result = await interrupt(/^ {2}stop with Ctrl-C$/, 'SIGHUP', true);
    assert.deepEqual(result.left, [], 'processes left running');
    assert.equal(result.signal, null, 'killed by the signal instead of stopping');
    assert.equal(result.code, 0);
  });

  void it('one Ctrl-C through npm (the signal twice at once) stops in order, not by killing', async () => {
    const result = await interrupt(/^ {2}stop with Ctrl-C$/, 'SIGINT', false, true);
    assert.deepEqual(result.left, [], 'processes left running');
    assert.equal(result.code, 0, 'an orderly stop (130: the second copy killed everything)');
  });

  void it('Ctrl-C during start-up stops what was started, with exit status 0', async () => {
    const result = await interrupt(/^cluster: starting /, 'SIGINT', false);
    assert.deepEqual(result.left, [], 'processes left running');
    assert.equal(result.code, 0);
    const said = result.lines.join('\n');
    assert.equal(result.lines.filter((l) => l === 'cluster: stopped').length, 1, said);
    assert.ok(!said.includes('start-up failed'), `an interruption is no failure:\n${said}`);
  });
});
