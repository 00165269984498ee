/**
 * A broker that answers CONNECT, SUBSCRIBE and PINGREQ, and never closes a connection: DISCONNECT
 * is ignored and the connection stays half-open, as a broker cut off by a partition leaves it (the
 * client's FIN is never answered). A proxy's stop that waits for the broker to close waits for
 * ever on it.
 */
import { createServer, type AddressInfo, type Socket } from 'node:net';
import mqttPacket, { type Packet } from 'mqtt-packet';

/** A running sticky broker. */
export interface StickyBroker {
  readonly url: string;
  /** Connections accepted so far. */
  readonly connections: Socket[];
  /** DISCONNECT packets received (and ignored) so far. */
  readonly disconnects: number;
  close(): Promise<void>;
}

/** Starts one on a free loopback port. */
export async function startStickyBroker(): Promise<StickyBroker> {
  const connections: Socket[] = [];
  let disconnects = 0;
  const server = createServer({ allowHalfOpen: true }, (socket) => {
    connections.push(socket);
    socket.on('error', () => undefined);
    const parser = mqttPacket.parser({ protocolVersion: 4 });
    const send = (packet: Packet): void => {
      socket.write(mqttPacket.generate(packet));
    };
    parser.on('packet', (packet: Packet) => {
      if (packet.cmd === 'connect') {
        send({ cmd: 'connack', returnCode: 0, sessionPresent: false });
      } else if (packet.cmd === 'subscribe') {
        send({
          cmd: 'suback',
          messageId: packet.messageId ?? 0,
          granted: packet.subscriptions.map(() => 1),
        });
      } else if (packet.cmd === 'pingreq') {
        send({ cmd: 'pingresp' });
      } else if (packet.cmd === 'disconnect') {
        disconnects++;
      }
    });
    socket.on('data', (chunk: Buffer) => {
      parser.parse(chunk);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `mqtt://127.0.0.1:${port}`,
    connections,
    get disconnects() {
      return disconnects;
    },
    close: async () => {
      for (const socket of connections) socket.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}
