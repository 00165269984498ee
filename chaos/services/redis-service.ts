/** A private `redis-server` (the BullMQ queue of a chaos run) that can be restarted. */
import { pingRedis } from '../../bin/ping-redis.ts';
import { freePort, type DrawRange } from '../../bin/free-ports.ts';
import { ServiceProcess, waitUntil } from './child.ts';

/** A restartable Redis on a fixed loopback port, without persistence. */
export class RedisService {
  #proc: ServiceProcess | undefined;

  private constructor(
    readonly host: string,
    readonly port: number,
  ) {}

  /** Starts it on a free port. */
  static async start(host = '127.0.0.1', portRange?: DrawRange): Promise<RedisService> {
    const service = new RedisService(host, await freePort(host, portRange));
    await service.startAgain();
    return service;
  }

  get url(): string {
    return `redis://${this.host}:${this.port}`;
  }

  get running(): boolean {
    return this.#proc?.running ?? false;
  }

  /** Starts the server (again) and waits for PONG. */
  async startAgain(): Promise<void> {
    if (this.running) return;
    const proc = ServiceProcess.spawn('redis', 'redis-server', [
      ...['--port', String(this.port), '--bind', this.host],
      ...['--save', '', '--appendonly', 'no', '--loglevel', 'warning'],
    ]);
    this.#proc = proc;
    await waitUntil('redis-server', proc, () => pingRedis(this.host, this.port));
  }

  /** SIGKILL: every queued job is lost, as in a failover to an empty replica. */
  async crash(): Promise<void> {
    await this.#proc?.stop('SIGKILL', 1000);
  }

  async stop(): Promise<void> {
    await this.#proc?.stop('SIGTERM', 3000);
  }
}
