/**
 * One listener of the load balancer: a layer-4 (TCP) proxy. Each accepted connection is paused
 * until a backend accepted a connection of its own, so not a byte is read from the client before
 * then; a connect that fails (refused, reset, timed out) is therefore retried on the next
 * candidate without any risk of replaying data. Once connected, bytes are piped both ways with
 * back-pressure, so gRPC (HTTP/2) and HTTP/1.1 pass unchanged (a gRPC channel, one long-lived
 * connection, stays on the backend it was given; a new connection is balanced again).
 *
 * Everything is bounded: connections (`maxConnections`), connect time and attempts, idle time,
 * the time a half-closed connection may linger, and the grace period of {@link TcpProxy.close}.
 */
import { connect, createServer, type Server, type Socket } from 'node:net';

/** Where a connection can go. */
export interface ProxyTarget {
  readonly name: string;
  readonly host: string;
  readonly port: number;
}

/** Options of {@link TcpProxy.listen}. */
export interface TcpProxyOptions {
  /** Name of the listener, for events (`grpc`, `http`). */
  readonly name: string;
  readonly host: string;
  /** 0 picks a free port. */
  readonly port: number;
  /** Backends to try for a new connection, in order (the balancing policy lives there). */
  readonly candidates: () => readonly ProxyTarget[];
  /** Most backends tried for one connection. Default 4. */
  readonly maxConnectAttempts?: number;
  /** Deadline of one connect to a backend. Default 1000 ms. */
  readonly connectTimeoutMs?: number;
  /** Most client connections open at once; more are closed as soon as accepted. Default 1024. */
  readonly maxConnections?: number;
  /** A connection with no traffic either way for this long is closed. Default one hour. */
  readonly idleTimeoutMs?: number;
  /** A connection one side of which closed is destroyed after this long. Default 5000 ms. */
  readonly lingerMs?: number;
  /** A connect to `target` failed with `code` (the next candidate is tried). */
  readonly onConnectError?: (target: ProxyTarget, code: string) => void;
  /** No candidate accepted the connection: the client connection is closed. */
  readonly onNoBackend?: (tried: number) => void;
}

/** Counters of a listener. */
export interface ProxyStats {
  readonly accepted: number;
  /** Connections forwarded, by backend name. */
  readonly forwarded: Readonly<Record<string, number>>;
  /** Connects to a backend that failed and were retried on the next one. */
  readonly connectFailures: number;
  /** Client connections closed because no backend accepted them. */
  readonly noBackend: number;
  readonly active: number;
}

interface Pair {
  readonly client: Socket;
  upstream: Socket | undefined;
  dialing: Socket | undefined;
  /** The client connection closed. */
  closed: boolean;
  upstreamClosed: boolean;
}

/** A running listener. */
export class TcpProxy {
  readonly #pairs = new Set<Pair>();
  readonly #forwarded = new Map<string, number>();
  #accepted = 0;
  #connectFailures = 0;
  #noBackend = 0;
  #closing: Promise<void> | undefined;

  private constructor(
    private readonly server: Server,
    private readonly options: TcpProxyOptions,
    readonly address: { readonly host: string; readonly port: number },
  ) {}

  /** Starts listening. @throws Error (EADDRINUSE, ...) when the address cannot be bound */
  static async listen(options: TcpProxyOptions): Promise<TcpProxy> {
    const holder: { self?: TcpProxy } = {};
    // Half-open: a client that shuts down its sending side still gets the whole answer (each
    // direction ends on its own, as the peers decide).
    const server = createServer(
      { pauseOnConnect: true, noDelay: true, allowHalfOpen: true },
      (socket) => {
        if (holder.self === undefined) socket.destroy();
        else holder.self.#onConnection(socket);
      },
    );
    server.maxConnections = options.maxConnections ?? 1024;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(options.port, options.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    server.on('error', () => undefined); // after listen: per-connection errors are handled there
    const bound = server.address();
    const port = typeof bound === 'object' && bound !== null ? bound.port : options.port;
    holder.self = new TcpProxy(server, options, { host: options.host, port });
    return holder.self;
  }

  #onConnection(client: Socket): void {
    this.#accepted += 1;
    if (this.#closing !== undefined) {
      client.destroy();
      return;
    }
    const pair: Pair = {
      client,
      upstream: undefined,
      dialing: undefined,
      closed: false,
      upstreamClosed: false,
    };
    this.#pairs.add(pair);
    client.on('error', () => undefined); // 'close' follows
    client.once('close', () => {
      pair.closed = true;
      pair.dialing?.destroy();
      if (pair.upstream === undefined || pair.upstreamClosed) this.#pairs.delete(pair);
    });
    void this.#route(pair);
  }

  async #route(pair: Pair): Promise<void> {
    const max = Math.max(1, this.options.maxConnectAttempts ?? 4);
    const candidates = this.options.candidates().slice(0, max);
    for (const target of candidates) {
      if (this.#abandoned(pair)) return;
      const result = await this.#dial(pair, target);
      if (typeof result !== 'string') {
        this.#splice(pair, result, target);
        return;
      }
      if (this.#abandoned(pair)) return;
      this.#connectFailures += 1;
      this.options.onConnectError?.(target, result);
    }
    if (pair.closed) return;
    this.#noBackend += 1;
    this.options.onNoBackend?.(candidates.length);
    pair.client.destroy();
  }

  /** The client left, or the listener is closing (read through a method: state changes across awaits). */
  #abandoned(pair: Pair): boolean {
    return pair.closed || this.#closing !== undefined;
  }

  /** Connects to `target`: the socket, or the error code. */
  #dial(pair: Pair, target: ProxyTarget): Promise<Socket | string> {
    return new Promise((resolve) => {
      const socket = connect({
        host: target.host,
        port: target.port,
        noDelay: true,
        allowHalfOpen: true,
      });
      pair.dialing = socket;
      const timer = setTimeout(() => {
        done('ETIMEDOUT');
      }, this.options.connectTimeoutMs ?? 1000);
      const onError = (err: NodeJS.ErrnoException): void => {
        done(err.code ?? err.message);
      };
      const onClose = (): void => {
        done('ECONNABORTED'); // destroyed while connecting (client gone, or closing)
      };
      function done(outcome: Socket | string): void {
        clearTimeout(timer);
        socket.off('error', onError);
        socket.off('close', onClose);
        socket.off('connect', onConnect);
        pair.dialing = undefined;
        if (typeof outcome === 'string') socket.destroy();
        resolve(outcome);
      }
      function onConnect(): void {
        done(socket);
      }
      socket.once('connect', onConnect);
      socket.once('error', onError);
      socket.once('close', onClose);
    });
  }

  #splice(pair: Pair, upstream: Socket, target: ProxyTarget): void {
    const { client } = pair;
    if (pair.closed) {
      upstream.destroy();
      return;
    }
    pair.upstream = upstream;
    this.#forwarded.set(target.name, (this.#forwarded.get(target.name) ?? 0) + 1);
    upstream.on('error', () => undefined); // 'close' follows
    upstream.once('close', () => {
      pair.upstreamClosed = true;
      if (pair.closed) this.#pairs.delete(pair);
    });
    const idle = this.options.idleTimeoutMs ?? 3_600_000;
    const linger = this.options.lingerMs ?? 5000;
    for (const [from, to] of [
      [client, upstream],
      [upstream, client],
    ] as const) {
      from.setTimeout(idle, () => {
        from.destroy();
      });
      from.pipe(to);
      from.once('close', (hadError: boolean) => {
        // An error or reset is passed on as such; an orderly close lets `to` flush, then ends.
        if (hadError) {
          to.destroy();
          return;
        }
        to.end();
        setTimeout(() => {
          to.destroy();
        }, linger).unref();
      });
    }
    client.resume();
  }

  /** Counters since start. */
  stats(): ProxyStats {
    return {
      accepted: this.#accepted,
      forwarded: Object.fromEntries(this.#forwarded),
      connectFailures: this.#connectFailures,
      noBackend: this.#noBackend,
      active: this.#pairs.size,
    };
  }

  /**
   * Stops accepting, lets open connections finish for up to `graceMs`, then destroys the rest.
   * Idempotent.
   */
  close(graceMs = 1000): Promise<void> {
    this.#closing ??= (async () => {
      const serverClosed = new Promise<void>((resolve) => {
        this.server.close(() => {
          resolve();
        });
      });
      for (const pair of this.#pairs) if (pair.upstream === undefined) pair.client.destroy();
      const deadline = Date.now() + graceMs;
      while (this.#pairs.size > 0 && Date.now() < deadline)
        await new Promise((r) => setTimeout(r, 20));
      for (const pair of this.#pairs) {
        pair.client.destroy();
        pair.upstream?.destroy();
      }
      await serverClosed;
    })();
    return this.#closing;
  }
}
