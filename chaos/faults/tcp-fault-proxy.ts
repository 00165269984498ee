/**
 * A TCP fault proxy with run-time control, after toxiproxy's toxics (ha-notes §4.1): latency with
 * jitter, bandwidth, stall (no data passes), reset (every connection cut with RST), slicing,
 * close after N bytes, each per direction; refusing new connections (the service is "down"); and
 * a partition (see {@link TcpFaultProxy.partition}). It sits on loopback between the C2 nodes and
 * PostgreSQL, Redis or the broker. Bounded: at most `maxConnections`, at most 64 MiB queued per
 * direction; `close()` ends everything.
 */
import { createServer, connect, type Server, type Socket } from 'node:net';
import { listenOnFreePort, type DrawRange } from '../../bin/free-ports.ts';

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
  /** Where its port comes from (`--ports`); default: the kernel's choice. */
  readonly portRange?: DrawRange | undefined;
}

const MAX_QUEUED = 64 * 1024 * 1024;

const sleep = (ms: number): Promise<void> =>
  ms <= 0 ? Promise.resolve() : new Promise((r) => setTimeout(r, ms));

/**
 * Cuts `socket` with RST, or closes it when it can no longer send one. libuv refuses to reset a
 * socket whose sending side is shut down (`uv_tcp_close_reset`: EINVAL), as a socket is once it
 * ended (its peer's FIN ends it, `allowHalfOpen` being off), and Node then drops the handle
 * without closing it: the socket says it is destroyed while its handle keeps the event loop, and
 * the process, alive. Such a socket already sent its FIN, so closing it is all that is left.
 */
function resetSocket(socket: Socket): void {
  if (socket.destroyed) return;
  if (socket.writableEnded) socket.destroy();
  else socket.resetAndDestroy();
}

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

/** One proxied connection. */
interface Link {
  readonly client: Socket;
  readonly upstream: Socket;
  pipes: Pipe[];
  /** One side went away during a partition; the other learns of it when the partition ends. */
  broken: boolean;
}

/** A running proxy. */
export class TcpFaultProxy {
  readonly #connections = new Set<Link>();
  #toxics: Record<Direction, Toxics> = { upstream: {}, downstream: {} };
  #refusing = false;
  #partitioned = false;
  /** Connections accepted during a partition: connected onward when it ends. */
  readonly #held = new Set<Socket>();
  /** Connections accepted and cut, for the report. */
  readonly counts = { accepted: 0, refused: 0, reset: 0 };
  /** The port it listens on, kept while it does not ({@link TcpFaultProxy.listening}). */
  #port = 0;

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
    await listenOnFreePort(server, options.host ?? '127.0.0.1', options.portRange);
    const address = server.address();
    proxy.#port = typeof address === 'object' && address !== null ? address.port : 0;
    // An accept error (EMFILE under load) loses that one connection; it must not end the suite.
    server.on('error', () => undefined);
    return proxy;
  }

  get name(): string {
    return this.options.name;
  }

  /** The proxy's own port (also while it does not listen). */
  get port(): number {
    return this.#port;
  }

  /**
   * Stops listening (`false`), as the service behind it does when it dies: a connect is then
   * refused (ECONNREFUSED), where a proxy still listening would accept it and close it at once.
   * A client tells the two apart: the load balancer fails over to another node, at once, on a
   * refused connect only; a connection it could open is its caller's, and one cut is a failed
   * call. `true` listens again, on the same port, before the service starts again. Connections
   * already open are left alone either way.
   * @throws Error when the port cannot be bound again within about 10 s (EADDRINUSE: an
   *   outgoing connection took it meanwhile, possible only with `--ports` in the ephemeral range)
   */
  async listening(on: boolean): Promise<void> {
    if (on === this.server.listening) return;
    if (!on) {
      this.server.close();
      return;
    }
    for (let attempt = 1; ; attempt++) {
      try {
        await new Promise<void>((resolve, reject) => {
          this.server.once('error', reject);
          this.server.listen(this.#port, this.host, () => {
            this.server.off('error', reject);
            resolve();
          });
        });
        return;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EADDRINUSE' || attempt >= 100) throw err;
        await sleep(100);
      }
    }
  }

  get host(): string {
    return this.options.host ?? '127.0.0.1';
  }

  /** Sets the toxics of one direction (replacing the previous ones). */
  set(direction: Direction, toxics: Toxics): void {
    this.#toxics = { ...this.#toxics, [direction]: toxics };
    for (const c of this.#connections) for (const p of c.pipes) p.poke();
  }

  /** Removes every toxic, ends a partition and accepts connections again. */
  heal(): void {
    this.#refusing = false;
    this.partition(false);
    this.set('upstream', {});
    this.set('downstream', {});
  }

  /**
   * Cuts the link the way a network partition does, unlike a stall or a reset: nothing passes
   * either way, and neither side learns anything. A side that closes meanwhile (a server dropping
   * a silent client) is not reported to the other, and new connections are accepted but not
   * connected onward, so the client waits as for a SYN that gets no answer. Ending it delivers
   * what was held (TCP retransmits after a short partition), cuts with RST the connections whose
   * other side went away meanwhile (what a peer that forgot the connection answers), and connects
   * the held new ones.
   */
  partition(on: boolean): void {
    if (on === this.#partitioned) return;
    this.#partitioned = on;
    if (on) return;
    for (const c of this.#connections) {
      if (!c.broken) continue;
      this.counts.reset += 1;
      this.#reset(c);
    }
    for (const client of this.#held) this.#link(client);
    this.#held.clear();
    for (const c of this.#connections) for (const p of c.pipes) p.poke();
  }

  /** Cuts every open connection with RST (toxiproxy `reset_peer`). */
  resetAll(): void {
    for (const c of this.#connections) {
      this.counts.reset += 1;
      this.#reset(c);
    }
    for (const client of this.#held) resetSocket(client);
    this.#held.clear();
  }

  #reset(c: Link): void {
    for (const s of [c.client, c.upstream]) resetSocket(s);
    this.#connections.delete(c);
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
      resetSocket(client);
      return;
    }
    this.counts.accepted += 1;
    if (this.#partitioned) {
      this.#held.add(client);
      const forget = (): void => {
        client.destroy();
        this.#held.delete(client);
      };
      client.once('error', forget);
      client.once('close', forget);
      return;
    }
    this.#link(client);
  }

  /** Connects an accepted client to the target and starts passing data. */
  #link(client: Socket): void {
    client.removeAllListeners('error');
    client.removeAllListeners('close');
    const upstream = connect({ host: this.options.targetHost, port: this.options.targetPort });
    const random = this.options.random ?? Math.random;
    const entry: Link = { client, upstream, pipes: [], broken: false };
    const cut = (): void => {
      client.destroy();
      upstream.destroy();
      this.#connections.delete(entry);
    };
    // During a partition a closed side stays unknown to the other (see partition()).
    const gone = (side: Socket) => (): void => {
      if (!this.#partitioned || !this.#connections.has(entry)) {
        cut();
        return;
      }
      side.destroy();
      entry.broken = true;
    };
    // A partition stalls both directions on top of the toxics set.
    const toxics = (direction: Direction) => (): Toxics =>
      this.#partitioned ? { ...this.#toxics[direction], stall: true } : this.#toxics[direction];
    entry.pipes = [
      new Pipe(client, upstream, toxics('upstream'), random, cut),
      new Pipe(upstream, client, toxics('downstream'), random, cut),
    ];
    this.#connections.add(entry);
    upstream.once('connect', () => client.resume());
    for (const s of [client, upstream]) {
      s.on('error', gone(s));
      s.on('close', gone(s));
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
