/**
 * A private Mosquitto for a chaos run, restartable with or without persistence: with it, the
 * sessions and queued QoS 1 messages of persistent clients survive a restart; without it they are
 * lost, as when a broker fails over to an empty one.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, type DrawRange } from '../../bin/free-ports.ts';
import { ServiceProcess, waitUntil } from './child.ts';

function accepts(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    const done = (ok: boolean): void => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(500, () => {
      done(false);
    });
    socket.once('connect', () => {
      done(true);
    });
    socket.once('error', () => {
      done(false);
    });
  });
}

/** A restartable broker. */
export class MosquittoService {
  #proc: ServiceProcess | undefined;

  private constructor(
    readonly host: string,
    readonly port: number,
    private readonly dir: string,
  ) {}

  static async start(host = '127.0.0.1', portRange?: DrawRange): Promise<MosquittoService> {
    const port = await freePort(host, portRange);
    const dir = await mkdtemp(join(tmpdir(), 'e4c2-chaos-mqtt-'));
    const service = new MosquittoService(host, port, dir);
    try {
      await service.startAgain(true);
    } catch (err) {
      // No one else knows the directory: a failed start removes it (and a half-started broker).
      await service.destroy().catch(() => undefined);
      throw err;
    }
    return service;
  }

  get url(): string {
    return `mqtt://${this.host}:${this.port}`;
  }

  get running(): boolean {
    return this.#proc?.running ?? false;
  }

  /** (Re)starts it; `persistent` keeps sessions and queued messages across restarts. */
  async startAgain(persistent: boolean): Promise<void> {
    if (this.running) return;
    const conf = join(this.dir, 'mosquitto.conf');
    await writeFile(
      conf,
      [
        `listener ${this.port} ${this.host}`,
        'allow_anonymous true',
        // As root, Mosquitto would switch to its own user, which cannot write the temp directory.
        'user root',
        `persistence ${persistent ? 'true' : 'false'}`,
        `persistence_location ${this.dir}/`,
        'autosave_interval 1',
        'max_inflight_messages 100',
        'max_queued_messages 10000',
        'log_dest none',
        '',
      ].join('\n'),
    );
    if (!persistent) await rm(join(this.dir, 'mosquitto.db'), { force: true });
    const proc = ServiceProcess.spawn('mosquitto', 'mosquitto', ['-c', conf]);
    this.#proc = proc;
    await waitUntil('mosquitto', proc, () => accepts(this.host, this.port));
  }

  /** SIGTERM: a clean restart saves the persistence file first. */
  async stop(): Promise<void> {
    await this.#proc?.stop('SIGTERM', 3000);
  }

  async destroy(): Promise<void> {
    await this.stop();
    await rm(this.dir, { recursive: true, force: true });
  }
}
