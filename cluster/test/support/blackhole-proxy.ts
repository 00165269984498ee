/**
 * A TCP forwarder on loopback that can turn into a black hole: while it is one, bytes from
 * either side are accepted (the kernel acknowledges them) and dropped, so a client sees what a
 * server that vanished behind a partition or a failover looks like, a connection that stays
 * open and never answers. What clients sent meanwhile is kept for assertions.
 */
import net from 'node:net';

/** A forwarder to one target that can stop answering. */
export class BlackholeProxy {
  readonly #server: net.Server;
  readonly #sockets = new Set<net.Socket>();
  #blackholed = false;
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
      client.on('data', (chunk: Buffer) => {
        if (proxy.#blackholed) proxy.droppedFromClients.push(chunk);
        else upstream.write(chunk);
      });
      upstream.on('data', (chunk: Buffer) => {
        if (!proxy.#blackholed) client.write(chunk);
      });
      client.on('close', () => upstream.destroy());
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
