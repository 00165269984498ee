/**
 * The proxy's own connection to the broker for C2 commands: a persistent session (clean: false)
 * subscribed at QoS 1 to every identity's control topic. A command is acknowledged to the broker
 * only after the identity applied it and its encrypted store saved it, so a key update survives
 * any crash: unsaved, it is redelivered. Commands never reach downstream clients.
 */
import mqtt, { type MqttClient } from 'mqtt';
import { E4Error } from '../e4/index.ts';
import { ProxyError, ProxyErrorCode } from './errors.ts';
import type { KeyRing } from './key-ring.ts';
import type { ProxyLogger } from './logger.ts';
import type { ProxyMetrics } from './metrics.ts';
import {
  brokerOptions,
  ClosedBeforeConnackError,
  withTransportHint,
  type BrokerSettings,
} from './upstream.ts';

/** Longest wait for the broker to close the control connection at a stop. */
export const CLOSE_TIMEOUT_MS = 5000;

/** The running control connection. */
export class ControlChannel {
  #closed = false;
  /**
   * The broker had no session of ours at start (first start, or a broker that lost it), or lost
   * it while we ran: commands the C2 sent before were dropped, not kept for us.
   */
  freshSession = false;

  private constructor(private readonly client: MqttClient) {}

  /**
   * Connects, subscribes, and resolves once the subscriptions are granted.
   * @throws ProxyError `PROXY_UPSTREAM` when the broker cannot be reached or refuses
   */
  static async start(options: {
    readonly broker: BrokerSettings;
    readonly clientId: string;
    readonly ring: KeyRing;
    readonly metrics: ProxyMetrics;
    readonly logger: ProxyLogger;
    /**
     * Runs when the connection comes back to a broker that lost our session, once the control
     * topics are subscribed again (commands the C2 sent meanwhile were dropped).
     */
    readonly onFreshSession?: () => void;
    /**
     * Runs once a SetTopicKey is applied and saved (before it is acknowledged): messages held
     * for that key are tried again (rotation-hold.ts).
     */
    readonly onTopicKey?: (identity: string, topicHash: Uint8Array) => void;
    /**
     * Runs once a SetPubKey is applied and saved (public-key mode): messages held for a sender's
     * public key are tried again.
     */
    readonly onPubKey?: (identity: string) => void;
    /** Abandons the connection attempt (a stop during start-up). */
    readonly signal?: AbortSignal;
  }): Promise<ControlChannel> {
    const { ring, metrics, logger } = options;
    const topics = ring.all().map((i) => i.client.receivingTopic);
    const client = mqtt.connect(options.broker.url, {
      ...brokerOptions(options.broker),
      clientId: options.clientId,
      clean: false,
      protocolVersion: 4,
      reconnectPeriod: 1000,
      // The channel subscribes again itself (below): mqtt.js's own re-subscription would make
      // ours a no-op (it skips filters it believes subscribed) and reports nothing if it fails.
      resubscribe: false,
    });
    const channel = new ControlChannel(client);
    client.handleMessage = (packet, callback) => {
      const identity = ring.byControlTopic(packet.topic);
      if (identity === undefined) {
        callback();
        return;
      }
      const payload =
        typeof packet.payload === 'string' ? Buffer.from(packet.payload) : packet.payload;
      identity.client.unprotect(payload, packet.topic).then(
        (result) => {
          metrics.commands.inc({ outcome: 'applied' });
          logger.info(
            {
              identity: identity.name,
              command: result.kind === 'command' ? result.command.type : '',
            },
            'C2 command applied',
          );
          const command = result.kind === 'command' ? result.command : undefined;
          if (command?.type === 'SetTopicKey' || command?.type === 'SetPubKey') {
            try {
              if (command.type === 'SetTopicKey') {
                options.onTopicKey?.(identity.name, command.topicHash);
              } else {
                options.onPubKey?.(identity.name);
              }
            } catch (err) {
              // Held messages are then dropped when their time runs out; the command stands.
              logger.error(
                { identity: identity.name, err: err instanceof Error ? err.message : String(err) },
                'retrying the messages held for a key failed',
              );
            }
          }
          callback();
        },
        (err: unknown) => {
          if (err instanceof E4Error) {
            // Stale, forged or not for us: acknowledged and forgotten, as a device would.
            metrics.commands.inc({ outcome: 'rejected' });
            logger.warn({ identity: identity.name, code: err.code }, 'C2 command rejected');
            callback();
            return;
          }
          // The store failed: not acknowledged; the broker redelivers after the reconnect.
          logger.error(
            { identity: identity.name, err: err instanceof Error ? err.message : String(err) },
            'C2 command not saved; reconnecting to have it redelivered',
          );
          client.stream.destroy();
        },
      );
    };
    client.on('error', (err) => {
      logger.warn({ err: err.message }, 'control connection error');
    });
    try {
      await new Promise<void>((resolve, reject) => {
        // A connection the broker closed without a word before its CONNACK (a plain client on
        // a TLS port, for many brokers) is tried again until the timeout: then it is the cause.
        let closedEarly = false;
        const onEarlyClose = (): void => {
          closedEarly = true;
        };
        client.on('close', onEarlyClose);
        const timeoutMs = options.broker.connectTimeoutMs ?? 10_000;
        const timer = setTimeout(() => {
          reject(
            closedEarly
              ? new ClosedBeforeConnackError()
              : new Error(`no answer within ${timeoutMs / 1000} s`),
          );
        }, timeoutMs);
        client.once('connect', () => {
          client.off('close', onEarlyClose);
        });
        client.once('connect', (connack) => {
          channel.freshSession = !connack.sessionPresent;
          client.subscribe(topics, { qos: 1 }, (err) => {
            clearTimeout(timer);
            if (err) reject(err);
            else resolve();
          });
        });
        client.once('error', (err) => {
          clearTimeout(timer);
          reject(err);
        });
        const abandon = (): void => {
          clearTimeout(timer);
          reject(new Error('start abandoned'));
        };
        if (options.signal?.aborted === true) abandon();
        options.signal?.addEventListener('abort', abandon, { once: true });
      });
    } catch (err) {
      await channel.close();
      // Abandoned, not a broker problem.
      if (options.signal?.aborted === true) throw err;
      const url = options.broker.url;
      throw new ProxyError(
        ProxyErrorCode.Upstream,
        `cannot reach the broker at ${url}: ${err instanceof Error ? withTransportHint(url, err).message : String(err)}`,
        { cause: err },
      );
    }
    // Set when a connection finds the session lost, cleared once subscribed again: a connection
    // that dies before the SUBACK leaves the broker a new session without our subscriptions,
    // which the next connection finds "present".
    let subscriptionOwed = false;
    client.on('connect', (connack) => {
      logger.info({ sessionPresent: connack.sessionPresent }, 'control connection up again');
      if (connack.sessionPresent && !subscriptionOwed) return;
      subscriptionOwed = true;
      client.subscribe(topics, { qos: 1 }, (err) => {
        if (err) {
          // Not subscribed (the connection went down again): a resync now would be lost too.
          // The next connection subscribes again.
          logger.error({ err: err.message }, 'control subscription failed');
          return;
        }
        subscriptionOwed = false;
        channel.freshSession = true;
        logger.warn({}, 'the broker lost the control session: commands sent meanwhile are lost');
        options.onFreshSession?.();
      });
    });
    return channel;
  }

  /** True while connected to the broker. */
  get connected(): boolean {
    return this.client.connected && !this.#closed;
  }

  /**
   * Disconnects (the session stays at the broker, so commands sent meanwhile are kept). A broker
   * that does not close the connection after DISCONNECT (or a partition that swallows it) would
   * hold the stop for ever: after {@link CLOSE_TIMEOUT_MS} the connection is cut.
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    let timer: NodeJS.Timeout | undefined;
    const cut = new Promise<'cut'>((resolve) => {
      timer = setTimeout(() => {
        resolve('cut');
      }, CLOSE_TIMEOUT_MS);
    });
    const ended = this.client.endAsync(false).then(
      () => 'ended' as const,
      () => 'ended' as const,
    );
    if ((await Promise.race([ended, cut])) === 'cut') {
      await this.client.endAsync(true).catch(() => undefined);
    }
    clearTimeout(timer);
  }
}
