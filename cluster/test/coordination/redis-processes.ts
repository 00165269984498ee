/**
 * Independent `redis-server` processes on free loopback ports for the lock tests, plus ioredis
 * clients tuned for them. Every process is stopped by {@link RedisGroup.stop} (call it in
 * `after`), and killed on process exit as a last resort, so no test leaves a server behind.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { Redis } from 'ioredis';
import { freePort } from '../../../bin/free-ports.ts';

/** One redis-server process. */
export class RedisProcess {
  #child: ChildProcess | undefined;
  #paused = false;

  private constructor(readonly port: number) {}

  /** Starts a server on a free port and waits until it accepts connections (bounded). */
  static async start(): Promise<RedisProcess> {
    let lastError: unknown;
    // A free port can be taken between probing and binding: a few bounded tries.
    for (let attempt = 0; attempt < 3; attempt += 1) {
      const server = new RedisProcess(await freePort());
      try {
        await server.#spawn();
        return server;
      } catch (err) {
        lastError = err;
        await server.stop();
      }
    }
    throw lastError;
  }

  /** Freezes the process (SIGSTOP): connections stay open, nothing answers. */
  pause(): void {
    if (this.#child?.pid === undefined || this.#paused) return;
    process.kill(this.#child.pid, 'SIGSTOP');
    this.#paused = true;
  }

  /** Thaws a paused process (SIGCONT). */
  resume(): void {
    if (this.#child?.pid === undefined || !this.#paused) return;
    process.kill(this.#child.pid, 'SIGCONT');
    this.#paused = false;
  }

  /** Stops the process (SIGTERM, then SIGKILL after 2 s). Idempotent. */
  async stop(): Promise<void> {
    const child = this.#child;
    this.#child = undefined;
    if (child === undefined || child.exitCode !== null || child.signalCode !== null) return;
    this.#resumeChild(child);
    const exited = once(child, 'exit');
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 2000);
    await exited;
    clearTimeout(timer);
  }

  #resumeChild(child: ChildProcess): void {
    if (this.#paused && child.pid !== undefined) process.kill(child.pid, 'SIGCONT');
    this.#paused = false;
  }

  async #spawn(): Promise<void> {
    const child = spawn(
      'redis-server',
      [
        '--port',
        String(this.port),
        '--bind',
        '127.0.0.1',
        '--save',
        '',
        '--appendonly',
        'no',
        '--daemonize',
        'no',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    this.#child = child;
    const kill = (): void => {
      child.kill('SIGKILL');
    };
    process.once('exit', kill);
    child.once('exit', () => process.off('exit', kill));
    let output = '';
    const ready = new Promise<void>((resolve, reject) => {
      const onData = (chunk: Buffer): void => {
        output += chunk.toString();
        if (output.includes('Ready to accept connections')) resolve();
      };
      child.stdout.on('data', onData);
      child.stderr.on('data', (chunk: Buffer) => {
        output += chunk.toString();
      });
      child.once('error', reject);
      child.once('exit', (code) => {
        reject(new Error(`redis-server exited (${code}) on port ${this.port}: ${output}`));
      });
    });
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        reject(new Error(`redis-server not ready: ${output}`));
      }, 5000);
    });
    try {
      await Promise.race([ready, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }
}

/** A set of independent servers and the clients connected to them. */
export class RedisGroup {
  readonly #clients: Redis[] = [];

  private constructor(readonly servers: readonly RedisProcess[]) {}

  /** Starts `count` servers in parallel; stops the ones that started if another failed. */
  static async start(count: number): Promise<RedisGroup> {
    const results = await Promise.allSettled(
      Array.from({ length: count }, () => RedisProcess.start()),
    );
    const started = results.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
    const failed = results.find((r) => r.status === 'rejected');
    if (failed !== undefined) {
      await Promise.all(started.map((s) => s.stop()));
      throw failed.reason;
    }
    return new RedisGroup(started);
  }

  /**
   * One new client per server (a fresh "node" of the cluster). Tuned for fast failure: one retry
   * per command and quick reconnects. The lock service bounds every command itself anyway.
   */
  async connect(): Promise<Redis[]> {
    const clients = this.servers.map((s) => {
      const client = new Redis({
        host: '127.0.0.1',
        port: s.port,
        maxRetriesPerRequest: 1,
        connectTimeout: 1000,
        retryStrategy: () => 50,
      });
      // Connection errors are expected while a server is paused or killed.
      client.on('error', () => undefined);
      return client;
    });
    this.#clients.push(...clients);
    await Promise.all(clients.map((c) => c.ping()));
    return clients;
  }

  /** A client for inspecting server `index` directly. */
  async admin(index: number): Promise<Redis> {
    const server = this.servers[index];
    if (server === undefined) throw new Error(`no server ${index}`);
    const client = new Redis({ host: '127.0.0.1', port: server.port, maxRetriesPerRequest: 1 });
    client.on('error', () => undefined);
    this.#clients.push(client);
    await client.ping();
    return client;
  }

  /** Resumes paused servers. */
  resumeAll(): void {
    for (const s of this.servers) s.resume();
  }

  /** Disconnects every client and stops every server. */
  async stop(): Promise<void> {
    for (const c of this.#clients.splice(0)) c.disconnect();
    await Promise.all(this.servers.map((s) => s.stop()));
  }
}
