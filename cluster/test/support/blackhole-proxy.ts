/**
 * A TCP forwarder on loopback that can turn into a black hole: while it is one, bytes from
 * either side are accepted (the kernel acknowledges them) and dropped, so a client sees what a
 * server that vanished behind a partition or a failover looks like, a connection that stays
 * open and never answers. What clients sent meanwhile is kept for assertions. It can also
 * black-hole only the connections already open (a failover behind the same address).
 */
import net from 'node:net';

/** A forwarder to one target that can stop answering. */
export class BlackholeProxy {
  readonly #server: net.Server;
  readonly #sockets = new Set<net.Socket>();
  #blackholed = false;
  /** Each open connection's own black-hole flag (see {@link cutExisting}). */
  readonly #links = new Set<{ cut: boolean }>();
  /** Bytes clients sent while black-holed, in arrival order. */
  readonly droppedFromClients: Buffer[] = [];

  private constructor(server: net.Server) {
    this.#server = server;
  }

  /** Listens on a free loopback port and forwards each connection to `target`. */
  static async start(target: { host: string; port: number }): Promise<BlackholeProxy> {
    const server = net.createServer();
    const proxy = new BlackholeProxy(server);
    server.on('connection', (client) => {
      proxy.#track(client);
      const upstream = net.connect(target.port, target.host);
      proxy.#track(upstream);
      const link = { cut: false };
      proxy.#links.add(link);
      const silent = (): boolean => proxy.#blackholed || link.cut;
      client.on('data', (chunk: Buffer) => {
        if (silent()) proxy.droppedFromClients.push(chunk);
        else upstream.write(chunk);
      });
      upstream.on('data', (chunk: Buffer) => {
        if (!silent()) client.write(chunk);
      });
      client.on('close', () => {
        upstream.destroy();
        proxy.#links.delete(link);
      });
      upstream.on('close', () => client.destroy());
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return proxy;
  }

  #track(socket: net.Socket): void {
    this.#sockets.add(socket);
    socket.on('error', () => undefined);
    socket.on('close', () => this.#sockets.delete(socket));
  }

  /** The port clients connect to. */
  get port(): number {
    const address = this.#server.address();
    if (address === null || typeof address === 'string') throw new Error('proxy not listening');
    return address.port;
  }

  /** Drops everything from now on (`true`) or forwards again (`false`). */
  blackhole(on: boolean): void {
    this.#blackholed = on;
  }

  /**
   * Black-holes the connections open now, for good, while new ones are forwarded: what clients
   * see when their server fails over behind the same address (the old connections never get a
   * reset, new ones reach the new server).
   */
  cutExisting(): void {
    for (const link of this.#links) link.cut = true;
  }

  /** Closes the listener and destroys every connection. */
  async close(): Promise<void> {
    for (const socket of this.#sockets) socket.destroy();
    await new Promise<void>((resolve) =>
      this.#server.close(() => {
        resolve();
      }),
    );
  }
}
