/**
 * A TCP fault proxy with run-time control, after toxiproxy's toxics (ha-notes §4.1): latency with
 * jitter, bandwidth, stall (no data passes), reset (every connection cut with RST), slicing,
 * close after N bytes, each per direction; and refusing new connections (the service is "down").
 * It sits on loopback between the C2 nodes and PostgreSQL, Redis or the broker. Bounded: at most
 * `maxConnections`, at most 64 MiB queued per direction; `close()` ends everything.
 */
import { createServer, connect, type Server, type Socket } from 'node:net';

/** The toxics of one direction. Everything optional; `{}` passes data untouched. */
export interface Toxics {
  /** Delay added to every chunk, in ms. */
  readonly latencyMs?: number;
  /** Uniform extra delay in [0, jitterMs]; order within a connection is kept. */
  readonly jitterMs?: number;
  /** Bytes per second. */
  readonly bytesPerSecond?: number;
  /** Holds every byte until unset (the connection stays open, nothing passes). */
  readonly stall?: boolean;
  /** Splits chunks into pieces of this many bytes... */
  readonly sliceBytes?: number;
  /** ...with this delay between pieces. */
  readonly sliceDelayMs?: number;
  /** Closes the connection once this many bytes passed in this direction. */
  readonly limitBytes?: number;
}

/** `upstream`: client to service; `downstream`: service to client. */
export type Direction = 'upstream' | 'downstream';

/** Options of {@link TcpFaultProxy.start}. */
export interface TcpFaultProxyOptions {
  readonly name: string;
  readonly targetHost: string;
  readonly targetPort: number;
  readonly host?: string;
  readonly maxConnections?: number;
  /** Pseudo-random source for jitter (seeded by the scenario); default Math.random. */
  readonly random?: () => number;
}

const MAX_QUEUED = 64 * 1024 * 1024;

const sleep = (ms: number): Promise<void> =>
  ms <= 0 ? Promise.resolve() : new Promise((r) => setTimeout(r, ms));

/** One direction of one connection: an ordered queue of chunks, released under the toxics. */
class Pipe {
  readonly #queue: Buffer[] = [];
  #queued = 0;
  #passed = 0;
  #draining = false;
  #wake: (() => void) | undefined;

  constructor(
    private readonly from: Socket,
    private readonly to: Socket,
    private readonly toxics: () => Toxics,
    private readonly random: () => number,
    private readonly cut: () => void,
  ) {
    from.on('data', (chunk: Buffer) => {
      this.#queue.push(chunk);
      this.#queued += chunk.length;
      if (this.#queued > MAX_QUEUED) from.pause();
      void this.#drain();
    });
  }

  /** Re-evaluates the toxics now (a stall was lifted). */
  poke(): void {
    this.#wake?.();
  }

  async #hold(ms: number): Promise<void> {
    await new Promise<void>((resolve) => {
      const timer = setTimeout(finish, ms);
      function finish(): void {
        clearTimeout(timer);
        resolve();
      }
      this.#wake = finish;
    });
    this.#wake = undefined;
  }

  /** Re-read after every await: the other side may close meanwhile. */
  #open(): boolean {
    return !this.to.destroyed;
  }

  async #drain(): Promise<void> {
    if (this.#draining) return;
    this.#draining = true;
    try {
      while (this.#queue.length > 0 && this.#open()) {
        let t = this.toxics();
        while (t.stall === true && this.#open()) {
          await this.#hold(100);
          t = this.toxics();
        }
        const chunk = this.#queue.shift();
        if (chunk === undefined) break;
        this.#queued -= chunk.length;
        if (this.#queued <= MAX_QUEUED) this.from.resume();
        const delay = (t.latencyMs ?? 0) + (t.jitterMs ?? 0) * this.random();
        if (delay > 0) await sleep(delay);
        const size = t.sliceBytes !== undefined && t.sliceBytes > 0 ? t.sliceBytes : chunk.length;
        for (let at = 0; at < chunk.length && this.#open(); at += size) {
          let piece = chunk.subarray(at, at + size);
          if (t.limitBytes !== undefined && this.#passed + piece.length >= t.limitBytes) {
            piece = piece.subarray(0, Math.max(0, t.limitBytes - this.#passed));
            this.to.write(piece);
            this.#passed += piece.length;
            this.cut();
            return;
          }
          this.to.write(piece);
          this.#passed += piece.length;
          if (t.bytesPerSecond !== undefined && t.bytesPerSecond > 0)
            await sleep((piece.length / t.bytesPerSecond) * 1000);
          if (size < chunk.length && t.sliceDelayMs !== undefined) await sleep(t.sliceDelayMs);
        }
      }
    } finally {
      this.#draining = false;
    }
  }
}

/** A running proxy. */
export class TcpFaultProxy {
  readonly #connections = new Set<{ client: Socket; upstream: Socket; pipes: Pipe[] }>();
  #toxics: Record<Direction, Toxics> = { upstream: {}, downstream: {} };
  #refusing = false;
  /** Connections accepted and cut, for the report. */
  readonly counts = { accepted: 0, refused: 0, reset: 0 };

  private constructor(
    private readonly server: Server,
    private readonly options: TcpFaultProxyOptions,
  ) {}

  /** Listens on a free loopback port in front of `targetHost:targetPort`. */
  static async start(options: TcpFaultProxyOptions): Promise<TcpFaultProxy> {
    const server = createServer({ pauseOnConnect: true });
    const proxy = new TcpFaultProxy(server, options);
    server.maxConnections = options.maxConnections ?? 512;
    server.on('connection', (socket) => {
      proxy.#accept(socket);
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, options.host ?? '127.0.0.1', () => {
        resolve();
      });
    });
    return proxy;
  }

  get name(): string {
    return this.options.name;
  }

  /** The proxy's own port. */
  get port(): number {
    const address = this.server.address();
    return typeof address === 'object' && address !== null ? address.port : 0;
  }

  get host(): string {
    return this.options.host ?? '127.0.0.1';
  }

  /** Sets the toxics of one direction (replacing the previous ones). */
  set(direction: Direction, toxics: Toxics): void {
    this.#toxics = { ...this.#toxics, [direction]: toxics };
    for (const c of this.#connections) for (const p of c.pipes) p.poke();
  }

  /** Removes every toxic and accepts connections again. */
  heal(): void {
    this.#refusing = false;
    this.set('upstream', {});
    this.set('downstream', {});
  }

  /** Cuts every open connection with RST (toxiproxy `reset_peer`). */
  resetAll(): void {
    for (const c of this.#connections) {
      this.counts.reset += 1;
      c.client.resetAndDestroy();
      c.upstream.resetAndDestroy();
    }
    this.#connections.clear();
  }

  /** While set, new connections are reset at once (the service is unreachable). */
  refuse(on: boolean): void {
    this.#refusing = on;
  }

  /** Connections open now. */
  get open(): number {
    return this.#connections.size;
  }

  #accept(client: Socket): void {
    if (this.#refusing) {
      this.counts.refused += 1;
      client.resetAndDestroy();
      return;
    }
    this.counts.accepted += 1;
    const upstream = connect({ host: this.options.targetHost, port: this.options.targetPort });
    const random = this.options.random ?? Math.random;
    const entry = { client, upstream, pipes: [] as Pipe[] };
    const cut = (): void => {
      client.destroy();
      upstream.destroy();
      this.#connections.delete(entry);
    };
    entry.pipes = [
      new Pipe(client, upstream, () => this.#toxics.upstream, random, cut),
      new Pipe(upstream, client, () => this.#toxics.downstream, random, cut),
    ];
    this.#connections.add(entry);
    upstream.once('connect', () => client.resume());
    for (const s of [client, upstream]) {
      s.on('error', cut);
      s.on('close', cut);
    }
  }

  /** Stops listening and cuts every connection. */
  async close(): Promise<void> {
    this.resetAll();
    await new Promise<void>((resolve) => {
      this.server.close(() => {
        resolve();
      });
    });
  }
}
