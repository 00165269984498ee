/**
 * {@link TrafficFeed} over MQTT: its own connection (own client id), QoS 0 subscriptions (the
 * monitor samples; it must never make the broker hold messages for it), through a shared
 * subscription group so that in a cluster each message reaches one monitor.
 */
import mqtt, { type MqttClient } from 'mqtt';
import type { TrafficFeed } from './traffic-monitor.ts';

/** Options of {@link MqttTrafficFeed.connect}. */
export interface MqttTrafficFeedOptions {
  readonly url: string;
  readonly clientId: string;
  readonly username?: string;
  readonly password?: string;
  /** Shared subscription group (`$share/<group>/<topic>`); none: plain subscriptions. */
  readonly shareGroup?: string;
  /** How long the first connection may take. Default 10 s. */
  readonly connectTimeoutMs?: number;
}

/** The monitor's MQTT connection. */
export class MqttTrafficFeed implements TrafficFeed {
  private constructor(
    private readonly client: MqttClient,
    private readonly shareGroup: string | undefined,
  ) {}

  /** Connects (and keeps reconnecting in the background, resubscribing as mqtt.js does). */
  static async connect(options: MqttTrafficFeedOptions): Promise<MqttTrafficFeed> {
    const client = mqtt.connect(options.url, {
      clientId: options.clientId,
      clean: true,
      reconnectPeriod: 1000,
      connectTimeout: options.connectTimeoutMs ?? 10_000,
      ...(options.username === undefined ? {} : { username: options.username }),
      ...(options.password === undefined ? {} : { password: options.password }),
    });
    await new Promise<void>((resolve, reject) => {
      const onError = (err: Error): void => {
        client.end(true);
        reject(err);
      };
      client.once('connect', () => {
        client.off('error', onError);
        resolve();
      });
      client.once('error', onError);
    });
    return new MqttTrafficFeed(client, options.shareGroup);
  }

  #filter(topic: string): string {
    return this.shareGroup === undefined ? topic : `$share/${this.shareGroup}/${topic}`;
  }

  async subscribe(topics: readonly string[]): Promise<void> {
    if (topics.length === 0) return;
    await this.client.subscribeAsync(
      topics.map((t) => this.#filter(t)),
      { qos: 0 },
    );
  }

  async unsubscribe(topics: readonly string[]): Promise<void> {
    if (topics.length === 0) return;
    await this.client.unsubscribeAsync(topics.map((t) => this.#filter(t)));
  }

  /**
   * Passes on live traffic only. A message the broker sends with the retain flag set is a retained
   * message replayed because a subscription was made (MQTT 3.1.1 §3.3.1.3: a message matching an
   * established subscription always comes with the flag clear), and the monitor subscribes anew
   * at every start, reconnection and new topic: counting it would count the same message again
   * each time (on every worker of the group), and record its old key version as the one its
   * sender uses now, making a device that moved on look behind (and resynced by
   * `resync-lagging`).
   */
  onMessage(handler: (topic: string, payload: Uint8Array) => void): void {
    this.client.on('message', (topic, payload, packet) => {
      if (packet.retain) return;
      handler(topic, payload);
    });
  }

  async close(): Promise<void> {
    await this.client.endAsync();
  }
}
