/**
 * A TCP relay in front of a node whose upstream side can stop reading: the node then sees a
 * client whose whole connection has stopped reading (its TCP window closes), as a client
 * process that is stopped, or a peer that takes no more, looks to it.
 */
import { once } from 'node:events';
import type { ClientHttp2Session, ClientHttp2Stream } from 'node:http2';
import { connect as netConnect, createServer, type Socket } from 'node:net';

/** The relay of {@link stallableRelay}; it relays one connection at a time. */
export interface StallableRelay {
  /** Where clients connect instead of the node. */
  readonly port: number;
  /** Stops reading from the node (what is already read is not passed on). */
  stall(): void;
  /** Passes on what the node sends again. */
  resume(): void;
  /** Closes the relay and both ends of its connection. */
  close(): void;
}

/** Starts a relay on a free loopback port to the node on `port`. */
export async function stallableRelay(port: number): Promise<StallableRelay> {
  const sockets = new Set<Socket>();
  let relayed: { up: Socket; down: Socket } | undefined;
  const relay = createServer((down) => {
    const up = netConnect(port, '127.0.0.1');
    relayed = { up, down };
    for (const socket of [down, up]) {
      sockets.add(socket);
      socket.on('error', () => {
        // Either end torn down by the test or the node.
      });
    }
    down.pipe(up);
    up.pipe(down);
  });
  relay.listen(0, '127.0.0.1');
  await new Promise((resolve) => relay.once('listening', resolve));
  const connection = (): { up: Socket; down: Socket } => {
    if (relayed === undefined) throw new Error('no connection is relayed');
    return relayed;
  };
  return {
    port: (relay.address() as { port: number }).port,
    stall: () => {
      const { up } = connection();
      up.unpipe();
      up.pause();
    },
    resume: () => {
      const { up, down } = connection();
      up.pipe(down);
    },
    close: () => {
      relay.close();
      for (const socket of sockets) socket.destroy();
    },
  };
}

/**
 * The flow-control windows {@link stalledStream} grants: far more than loopback's TCP buffers
 * hold (a browser grants megabytes), so the TCP connection, not HTTP/2, stops the node's writes.
 */
export const STALLED_WINDOW_BYTES = 64 * 1024 * 1024;

/**
 * Opens `GET path` on `session` (connected through `relay`) with windows of
 * {@link STALLED_WINDOW_BYTES}, waits for the answer's headers, then stalls the relay: the stream
 * reads, but nothing more reaches it. Its errors (a reset, a cut connection) are left to the
 * caller's checks.
 */
export async function stalledStream(
  session: ClientHttp2Session,
  relay: StallableRelay,
  path: string,
): Promise<ClientHttp2Stream> {
  session.setLocalWindowSize(STALLED_WINDOW_BYTES);
  session.settings({ initialWindowSize: STALLED_WINDOW_BYTES - 1 });
  const stream = session.request({ ':path': path }, { endStream: true });
  stream.on('error', () => {
    // Asserted by the caller (rstCode, a closed connection).
  });
  await once(stream, 'response');
  relay.stall();
  stream.resume();
  return stream;
}
