/**
 * A private PostgreSQL for a chaos run: `initdb` into a temporary directory, then `postgres` on a
 * free loopback port, so the suite can stop it the way a crash does (`pg_ctl -m immediate stop`
 * is SIGQUIT to the postmaster) and start it again on the same data. As root it runs as the
 * `postgres` OS user, since PostgreSQL refuses root.
 */
import { execFile } from 'node:child_process';
import { chown, mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { freePort, type DrawRange } from '../../bin/free-ports.ts';
import { ServiceProcess, waitUntil } from './child.ts';

const run = promisify(execFile);

async function binDir(): Promise<string> {
  const root = '/usr/lib/postgresql';
  const versions = (await readdir(root)).sort((a, b) => Number(b) - Number(a));
  const newest = versions[0];
  if (newest === undefined) throw new Error(`no PostgreSQL under ${root}`);
  return join(root, newest, 'bin');
}

async function runAs(): Promise<{ uid: number; gid: number } | undefined> {
  if (process.getuid?.() !== 0) return undefined;
  const [uid, gid] = await Promise.all([
    run('id', ['-u', 'postgres']).then((r) => Number(r.stdout.trim())),
    run('id', ['-g', 'postgres']).then((r) => Number(r.stdout.trim())),
  ]);
  return { uid, gid };
}

/** A restartable PostgreSQL of its own. */
export class PostgresService {
  #proc: ServiceProcess | undefined;

  private constructor(
    readonly host: string,
    readonly port: number,
    private readonly dir: string,
    private readonly bin: string,
    private readonly user: { uid: number; gid: number } | undefined,
  ) {}

  /** `initdb` (trust, user postgres) and start. */
  static async start(host = '127.0.0.1', portRange?: DrawRange): Promise<PostgresService> {
    const bin = await binDir();
    const user = await runAs();
    const dir = await mkdtemp(join(tmpdir(), 'e4c2-chaos-pg-'));
    let service: PostgresService | undefined;
    try {
      if (user !== undefined) await chown(dir, user.uid, user.gid);
      await run(
        join(bin, 'initdb'),
        ['-D', join(dir, 'data'), '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--no-sync'],
        { ...(user === undefined ? {} : { uid: user.uid, gid: user.gid }), timeout: 60_000 },
      );
      service = new PostgresService(host, await freePort(host, portRange), dir, bin, user);
      await service.startAgain();
      return service;
    } catch (err) {
      // An initdb killed by a Ctrl-C (it shares the terminal's process group) or a server that
      // would not start: no one else knows the directory (tens of MB), so it goes here.
      await (service?.destroy() ?? rm(dir, { recursive: true, force: true })).catch(
        () => undefined,
      );
      throw err;
    }
  }

  get url(): string {
    return `postgres://postgres@${this.host}:${this.port}/postgres`;
  }

  get running(): boolean {
    return this.#proc?.running ?? false;
  }

  /** Starts the server (again; crash recovery replays the WAL) and waits until it answers. */
  async startAgain(): Promise<void> {
    if (this.running) return;
    const proc = ServiceProcess.spawn(
      'postgres',
      join(this.bin, 'postgres'),
      [
        ...['-D', join(this.dir, 'data'), '-p', String(this.port), '-k', this.dir],
        ...['-c', `listen_addresses=${this.host}`, '-c', 'max_connections=200'],
        // No fsync: a process crash loses nothing written, and the suite never crashes the OS.
        ...['-c', 'fsync=off', '-c', 'full_page_writes=off'],
      ],
      this.user === undefined ? {} : { uid: this.user.uid, gid: this.user.gid },
    );
    this.#proc = proc;
    await waitUntil('postgres', proc, () => this.#answers(), 30_000);
  }

  async #answers(): Promise<boolean> {
    const client = new pg.Client({ connectionString: this.url, connectionTimeoutMillis: 1000 });
    client.on('error', () => undefined);
    try {
      await client.connect();
      await client.query('SELECT 1');
      return true;
    } catch {
      return false;
    } finally {
      await client.end().catch(() => undefined);
    }
  }

  /** `pg_ctl -m immediate stop`: SIGQUIT, no checkpoint, every session cut. */
  async stopImmediate(): Promise<void> {
    await this.#proc?.stop('SIGQUIT', 5000);
  }

  /** Fast shutdown, then the data directory is removed. */
  async destroy(): Promise<void> {
    await this.#proc?.stop('SIGINT', 5000);
    await rm(this.dir, { recursive: true, force: true });
  }
}
