/**
 * The embedded MQTT broker of a single-node C2: aedes (MQTT 3.1.1, QoS 0 to 2) over a plain TCP
 * listener, with in-memory persistence. It has no authentication, which is why it listens on
 * loopback by default; devices on other machines need a real broker (set `MQTT_URL`).
 */
import { createServer, type Socket } from 'node:net';
import { Aedes } from 'aedes';
import { C2Error } from '../errors.ts';
import type { EmbeddedLogger } from './logger.ts';
import { listenOrFallback, type PortTakenPolicy } from './ports.ts';

/** Options of {@link startEmbeddedBroker}. */
export interface EmbeddedBrokerOptions {
  /** Interface to listen on. Default `127.0.0.1`. */
  readonly host?: string;
  /** Wanted port; 0 = any free port. Default 1883. */
  readonly port?: number;
  /** When the port is taken: use a free one (default) or fail. */
  readonly onPortTaken?: PortTakenPolicy;
  readonly log: EmbeddedLogger;
}

/** A running embedded broker. */
export interface RunningBroker {
  /** `mqtt://host:port`, for the C2's MQTT client and for the start-up banner. */
  readonly url: string;
  readonly host: string;
  readonly port: number;
  /** The wanted port, when it was taken and `port` is a free one used instead. */
  readonly fallbackFrom?: number;
  /**
   * Disconnects every client, stops listening and frees the port. Idempotent; never throws
   * (failures are logged).
   */
  close(): Promise<void>;
}

/** Default port of MQTT over TCP. */
export const DEFAULT_MQTT_PORT = 1883;

/**
 * Starts an aedes broker on `host:port` (falling back to a free port when `port` is taken and
 * `onPortTaken` is `'fallback'`).
 * @throws C2Error `C2_CONFIG` when the port is taken and `onPortTaken` is `'fail'`, or the host
 *   cannot be listened on
 * @throws C2Error `C2_UNAVAILABLE` when the broker itself fails to start
 */
export async function startEmbeddedBroker(options: EmbeddedBrokerOptions): Promise<RunningBroker> {
  const { log } = options;
  const host = options.host ?? '127.0.0.1';
  const wanted = options.port ?? DEFAULT_MQTT_PORT;

  let broker: Aedes;
  try {
    broker = await Aedes.createBroker({
      // A subscriber that stops reading must not stall delivery to everyone else for the default
      // 60 s (aedes' own recommendation for production is 10 to 60 s).
      drainTimeout: 30_000,
    });
  } catch (cause) {
    throw new C2Error('C2_UNAVAILABLE', 'embedded MQTT broker: aedes failed to start', { cause });
  }
  broker.on('clientError', (client, err) => {
    log.debug({ clientId: client.id, err: err.message }, 'embedded MQTT broker: client error');
  });
  broker.on('connectionError', (_client, err) => {
    log.debug({ err: err.message }, 'embedded MQTT broker: connection error');
  });

  // Tracked so that close() can end connections that never sent CONNECT (aedes only knows
  // clients after CONNECT, and server.close() waits for every socket).
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    broker.handle(socket);
  });

  let port: number;
  let fallbackFrom: number | undefined;
  try {
    ({ port, fallbackFrom } = await listenOrFallback(server, {
      host,
      port: wanted,
      onTaken: options.onPortTaken ?? 'fallback',
      what: 'embedded MQTT broker',
    }));
  } catch (err) {
    await new Promise<void>((resolve) => {
      broker.close(() => {
        resolve();
      });
    });
    throw err;
  }
  server.on('error', (err) => {
    log.error({ err: err.message }, 'embedded MQTT broker: listener error');
  });
  if (fallbackFrom !== undefined) {
    log.warn({ host, port, fallbackFrom }, `embedded MQTT broker: port ${fallbackFrom} taken`);
  }
  const url = `mqtt://${host.includes(':') ? `[${host}]` : host}:${port}`;
  log.info({ url }, 'embedded MQTT broker listening');

  let closing: Promise<void> | undefined;
  const close = (): Promise<void> =>
    (closing ??= (async () => {
      const serverClosed = new Promise<void>((resolve) =>
        server.close(() => {
          resolve();
        }),
      );
      await new Promise<void>((resolve) => {
        broker.close(() => {
          resolve();
        });
      });
      for (const socket of sockets) socket.destroy();
      await serverClosed;
      log.info({ url }, 'embedded MQTT broker stopped');
    })());

  return fallbackFrom === undefined
    ? { url, host, port, close }
    : { url, host, port, fallbackFrom, close };
}
