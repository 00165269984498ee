/**
 * A simulated E4 device on the real broker: an `E4Client` of the protocol library that
 * subscribes to its control topic and records every command it applies (key fingerprints, never
 * keys). Tests and the chaos suite observe devices through it.
 */
import mqtt, { type MqttClient } from 'mqtt';
import type { E4Client } from '../../../e4/index.ts';
import { E4Error, toHex, type Command } from '../../../e4/index.ts';
import { keyFingerprint } from '../../keyvault/index.ts';

/** One applied (or rejected) command. */
export interface AppliedCommand {
  readonly type: Command['type'] | 'rejected';
  readonly topicHash?: string;
  readonly keyFingerprint?: string;
  readonly error?: string;
  readonly at: number;
}

/** A device connected to a broker. */
export class SimDevice {
  readonly applied: AppliedCommand[] = [];
  #waiters: Array<() => void> = [];

  private constructor(
    readonly client: E4Client,
    private readonly mqttClient: MqttClient,
  ) {}

  /** Connects `client` to the broker at `url` and subscribes to its control topic (QoS 1). */
  static async connect(client: E4Client, url = 'mqtt://127.0.0.1:1883'): Promise<SimDevice> {
    const connection = await mqtt.connectAsync(url, {
      clientId: `sim-${toHex(client.id)}-${process.pid}`,
      clean: true,
      reconnectPeriod: 200,
    });
    const device = new SimDevice(client, connection);
    connection.on('message', (topic, payload) => {
      void device.#onMessage(topic, new Uint8Array(payload));
    });
    await connection.subscribeAsync(client.receivingTopic, { qos: 1 });
    return device;
  }

  async #onMessage(topic: string, payload: Uint8Array): Promise<void> {
    try {
      const result = await this.client.unprotect(payload, topic);
      if (result.kind === 'command') {
        const c = result.command;
        this.applied.push({
          type: c.type,
          ...('topicHash' in c ? { topicHash: toHex(c.topicHash) } : {}),
          ...('key' in c ? { keyFingerprint: keyFingerprint(c.key) } : {}),
          at: Date.now(),
        });
      }
    } catch (err) {
      this.applied.push({
        type: 'rejected',
        error: E4Error.is(err) ? err.code : String(err),
        at: Date.now(),
      });
    }
    for (const wake of this.#waiters.splice(0)) wake();
  }

  /** Fingerprint of the key the device holds for `topicHashHex`, if any. */
  topicKeyFingerprint(topicHashHex: string): string | undefined {
    const key = this.client.state.topicKeys.get(topicHashHex);
    return key?.length === 32 ? keyFingerprint(key) : undefined;
  }

  /** Waits until `predicate` holds (checked after every message), or fails after `timeoutMs`. */
  async waitFor(predicate: () => boolean, timeoutMs = 10_000, what = 'condition'): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!predicate()) {
      const left = deadline - Date.now();
      if (left <= 0)
        throw new Error(`device ${toHex(this.client.id)}: timed out waiting for ${what}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.min(left, 200));
        this.#waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  /** Disconnects from the broker. */
  async close(): Promise<void> {
    await this.mqttClient.endAsync();
  }
}
