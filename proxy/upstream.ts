/**
 * The broker side of a downstream session. {@link UpstreamConnector} is the port the downstream
 * connection uses (unit tests give it an in-memory fake); {@link MqttUpstreamConnector} is the
 * real one, one mqtt.js connection per downstream session, so that client ids, sessions, wills
 * and the broker's access control work as if the device were connected directly.
 */
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import type { IPublishPacket, QoS } from 'mqtt-packet';

/** MQTT 5 publish properties passed through the proxy. */
export interface PassedProperties {
  readonly userProperties?: Record<string, string | string[]>;
  readonly contentType?: string;
  readonly responseTopic?: string;
  readonly correlationData?: Buffer;
  readonly messageExpiryInterval?: number;
}

/** A message to publish upstream. */
export interface OutboundMessage {
  readonly topic: string;
  readonly payload: Buffer;
  readonly qos: QoS;
  readonly retain: boolean;
  readonly properties?: PassedProperties;
}

/** A message the broker delivered. */
export interface InboundMessage {
  readonly topic: string;
  readonly payload: Buffer;
  readonly qos: QoS;
  readonly retain: boolean;
  readonly properties?: PassedProperties;
}

/** One subscription request. */
export interface SubscriptionRequest {
  readonly topic: string;
  readonly qos: QoS;
  readonly nl?: boolean;
  readonly rap?: boolean;
  readonly rh?: number;
}

/** An open upstream session. */
export interface UpstreamLink {
  /** Publishes; `done` runs when the broker acknowledged (at once for QoS 0). */
  publish(message: OutboundMessage, done: (err?: Error) => void): void;
  /** Subscribes; `done` gets one granted QoS (or 0x80) per request, in order. */
  subscribe(requests: readonly SubscriptionRequest[], done: (granted: number[]) => void): void;
  unsubscribe(topics: readonly string[], done: () => void): void;
  /** Closes; `graceful` sends DISCONNECT (no will), otherwise the socket is cut (will fires). */
  close(graceful: boolean): void;
}

/** What the downstream session hands its upstream. */
export interface UpstreamHandlers {
  /**
   * A message arrived. The broker's acknowledgement waits for `done`, and so does the next
   * message: order is preserved and nothing is acknowledged before the device has it.
   */
  onMessage(message: InboundMessage, done: () => void): void;
  /** The broker connection ended (not after {@link UpstreamLink.close}). */
  onClose(): void;
}

/** Options of one upstream session, mostly taken from the device's CONNECT. */
export interface UpstreamSessionOptions {
  readonly clientId: string;
  readonly protocolVersion: 4 | 5;
  readonly clean: boolean;
  readonly keepalive: number;
  readonly sessionExpiryInterval?: number;
  readonly will?: OutboundMessage;
}

/** Opens upstream sessions. */
export interface UpstreamConnector {
  /** Connects; resolves with the link and whether the broker had a session. */
  connect(
    options: UpstreamSessionOptions,
    handlers: UpstreamHandlers,
  ): Promise<{ link: UpstreamLink; sessionPresent: boolean }>;
}

/** Broker address and credentials of the proxy. */
export interface BrokerSettings {
  readonly url: string;
  readonly username?: string | undefined;
  readonly password?: string | undefined;
  /** The CA to trust for `mqtts://` (`upstream.caFile`, read and checked at start). */
  readonly ca?: Buffer | undefined;
  /** Longest wait for CONNACK. */
  readonly connectTimeoutMs?: number;
}

/** The broker closed the connection before it answered CONNECT, without an error. */
export class ClosedBeforeConnackError extends Error {
  constructor() {
    super('the broker closed the connection before answering CONNECT');
  }
}

/**
 * True when `err` ended a connection before the broker's CONNACK the way a plain/TLS mismatch
 * does: a TLS client on a plain port sees the broker reset (or close) the handshake, a plain
 * client on a TLS port sees it reset (Mosquitto) or close (others) the connection.
 */
function looksLikeTransportMismatch(err: Error): boolean {
  if (err instanceof ClosedBeforeConnackError) return true;
  const code = (err as NodeJS.ErrnoException).code;
  return (
    code === 'ECONNRESET' ||
    code === 'EPIPE' ||
    (typeof code === 'string' && code.startsWith('ERR_SSL_')) ||
    err.message.includes('before secure TLS connection was established')
  );
}

/**
 * `err`, a failure to connect to the broker at `url`, with a hint when it looks like plain MQTT
 * and TLS mixed up (alone, `read ECONNRESET` says nothing of the cause); other errors as they
 * are. The hint names the scheme to try.
 */
export function withTransportHint(url: string, err: Error): Error {
  if (!looksLikeTransportMismatch(err)) return err;
  const tls = /^(mqtts|wss):/i.test(url);
  const hint = tls
    ? "the broker ended the TLS handshake: does this port speak plain MQTT? Use mqtt://, or the broker's TLS port"
    : "the broker ended the connection before answering CONNECT: does this port expect TLS? Use mqtts:// (with upstream.caFile for a private CA), or the broker's plain port";
  return new Error(`${err.message} (${hint})`, { cause: err });
}

/** mqtt.js options common to every proxy connection to the broker. */
export function brokerOptions(settings: BrokerSettings): IClientOptions {
  return {
    connectTimeout: settings.connectTimeoutMs ?? 10_000,
    ...(settings.username === undefined ? {} : { username: settings.username }),
    ...(settings.password === undefined ? {} : { password: settings.password }),
    ...(settings.ca === undefined ? {} : { ca: settings.ca }),
  };
}

/** The MQTT 5 properties of a PUBLISH that the proxy passes on (no alias, no format flag). */
export function publishProperties(packet: IPublishPacket): PassedProperties | undefined {
  const p = packet.properties;
  if (p === undefined) return undefined;
  const out: {
    -readonly [K in keyof PassedProperties]: PassedProperties[K];
  } = {};
  if (p.userProperties !== undefined) out.userProperties = p.userProperties;
  if (p.contentType !== undefined) out.contentType = p.contentType;
  if (p.responseTopic !== undefined) out.responseTopic = p.responseTopic;
  if (p.correlationData !== undefined) out.correlationData = p.correlationData;
  if (p.messageExpiryInterval !== undefined) out.messageExpiryInterval = p.messageExpiryInterval;
  return Object.keys(out).length === 0 ? undefined : out;
}

/** The inbound message of an mqtt.js PUBLISH packet. */
export function inboundFromPacket(packet: IPublishPacket): InboundMessage {
  const properties = publishProperties(packet);
  return {
    topic: packet.topic,
    payload: typeof packet.payload === 'string' ? Buffer.from(packet.payload) : packet.payload,
    qos: packet.qos,
    retain: packet.retain,
    ...(properties === undefined ? {} : { properties }),
  };
}

class MqttUpstreamLink implements UpstreamLink {
  #closed = false;
  #corked = false;
  constructor(
    private readonly client: MqttClient,
    private readonly v5: boolean,
  ) {}

  get closed(): boolean {
    return this.#closed;
  }

  publish(message: OutboundMessage, done: (err?: Error) => void): void {
    // A burst from the device leaves for the broker in one write, not one system call each.
    if (!this.#corked) {
      this.#corked = true;
      const stream = this.client.stream;
      stream.cork();
      setImmediate(() => {
        this.#corked = false;
        stream.uncork();
      });
    }
    this.client.publish(
      message.topic,
      message.payload,
      {
        qos: message.qos,
        retain: message.retain,
        ...(this.v5 && message.properties !== undefined ? { properties: message.properties } : {}),
      },
      (err) => {
        done(err ?? undefined);
      },
    );
  }

  subscribe(requests: readonly SubscriptionRequest[], done: (granted: number[]) => void): void {
    const map: Record<string, { qos: QoS; nl?: boolean; rap?: boolean; rh?: number }> = {};
    for (const r of requests) {
      map[r.topic] = {
        qos: r.qos,
        ...(this.v5 && r.nl !== undefined ? { nl: r.nl } : {}),
        ...(this.v5 && r.rap !== undefined ? { rap: r.rap } : {}),
        ...(this.v5 && r.rh !== undefined ? { rh: r.rh } : {}),
      };
    }
    // resubscribe: mqtt.js would otherwise skip filters it believes already subscribed.
    this.client.subscribe(
      { ...map, resubscribe: true } as unknown as Record<string, { qos: QoS }>,
      (err, granted) => {
        if (err) {
          done(requests.map(() => 0x80));
          return;
        }
        const byTopic = new Map((granted ?? []).map((g) => [g.topic, g.qos]));
        done(requests.map((r) => byTopic.get(r.topic) ?? r.qos));
      },
    );
  }

  unsubscribe(topics: readonly string[], done: () => void): void {
    this.client.unsubscribe([...topics], () => {
      done();
    });
  }

  close(graceful: boolean): void {
    if (this.#closed) return;
    this.#closed = true;
    if (!graceful) this.client.stream.destroy();
    this.client.end(!graceful);
  }
}

/** Real upstream sessions with mqtt.js. */
export class MqttUpstreamConnector implements UpstreamConnector {
  constructor(private readonly settings: BrokerSettings) {}

  /** @inheritDoc */
  connect(
    options: UpstreamSessionOptions,
    handlers: UpstreamHandlers,
  ): Promise<{ link: UpstreamLink; sessionPresent: boolean }> {
    const v5 = options.protocolVersion === 5;
    const will = options.will;
    const client = mqtt.connect(this.settings.url, {
      ...brokerOptions(this.settings),
      clientId: options.clientId,
      protocolVersion: options.protocolVersion,
      clean: options.clean,
      keepalive: options.keepalive,
      reconnectPeriod: 0,
      ...(v5 && options.sessionExpiryInterval !== undefined
        ? { properties: { sessionExpiryInterval: options.sessionExpiryInterval } }
        : {}),
      ...(will === undefined
        ? {}
        : {
            will: {
              topic: will.topic,
              payload: will.payload,
              qos: will.qos,
              retain: will.retain,
            },
          }),
    });
    const link = new MqttUpstreamLink(client, v5);
    client.handleMessage = (packet, callback) => {
      handlers.onMessage(inboundFromPacket(packet), () => {
        callback();
      });
    };
    return new Promise((resolve, reject) => {
      let settled = false;
      client.once('connect', (connack) => {
        settled = true;
        client.on('close', () => {
          if (!link.closed) {
            link.close(false);
            handlers.onClose();
          }
        });
        resolve({ link, sessionPresent: connack.sessionPresent });
      });
      const fail = (err?: Error): void => {
        if (settled) return;
        settled = true;
        client.end(true);
        reject(withTransportHint(this.settings.url, err ?? new ClosedBeforeConnackError()));
      };
      client.on('error', (err) => {
        fail(err);
      });
      client.once('close', () => {
        fail();
      });
    });
  }
}
