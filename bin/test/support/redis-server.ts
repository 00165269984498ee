/**
 * A private `redis-server` for one test file (DESIGN §7): on a free loopback port, no
 * persistence, stopped by the test. Isolates the BullMQ queue of a cluster test from every other
 * user of the machine's Redis.
 */
import { spawn } from 'node:child_process';
import { pingRedis } from '../../ping-redis.ts';
import { freePort } from '../../free-ports.ts';

/** A running private Redis. */
export interface PrivateRedis {
  readonly url: string;
  readonly pid: number | undefined;
  /** SIGTERM, SIGKILL after 5 s; resolves once it exited. Idempotent. */
  stop(): Promise<void>;
}

/**
 * Starts `redis-server` on `port` (default: a free one) and waits until it answers PING (10 s at
 * most).
 */
export async function startPrivateRedis(host = '127.0.0.1', port?: number): Promise<PrivateRedis> {
  port ??= await freePort(host);
  const child = spawn(
    'redis-server',
    ['--port', String(port), '--bind', host, '--save', '', '--appendonly', 'no'],
    { stdio: 'ignore' },
  );
  const state = { exited: false };
  const gone = new Promise<void>((resolve) => {
    child.once('exit', () => {
      state.exited = true;
      resolve();
    });
    child.once('error', () => {
      state.exited = true;
      resolve();
    });
  });
  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      if (!state.exited) child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await gone;
      clearTimeout(timer);
    })();
    return stopping;
  };
  const deadline = Date.now() + 10_000;
  while (!(await pingRedis(host, port))) {
    if (state.exited || Date.now() > deadline) {
      await stop();
      throw new Error(`redis-server on port ${port} did not start`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return { url: `redis://${host}:${port}`, pid: child.pid, stop };
}
