/**
 * The baseline of `bench/fanout.ts`: a raw QoS 1 publish loop through the same broker to the
 * same device control topics, of payloads protected before the clock starts. Each payload is a
 * real E4 SetTopicKey command (73 bytes: 8-byte timestamp, 16-byte SIV tag, 49-byte command) for
 * a topic other than the rotated one, protected under the device's key, so the devices do the
 * same work on it as on the C2's command (authenticate, decrypt, apply). Nothing is read from a
 * database, nothing is protected, nothing is recorded: what remains is the broker and the
 * devices.
 */
import { randomBytes } from 'node:crypto';
import mqtt, { type MqttClient } from 'mqtt';
import {
  clientIdFromName,
  controlTopic,
  encodeCommand,
  fromHex,
  protectCommand,
} from '../../e4/index.ts';
import { deviceKey, deviceName, epochMs } from './fanout-common.ts';

/** One message of the loop. */
export interface BaselineMessage {
  readonly topic: string;
  readonly payload: Buffer;
}

/** Size of a protected SetTopicKey command. */
export const SET_TOPIC_KEY_WIRE_BYTES = 73;

/**
 * Protects one SetTopicKey (a fresh random key for topic hash `topicHashHex`) per device, under
 * each device's identity key, with the current time as timestamp.
 */
export function prepareBaseline(
  fleet: { runId: string; seed: Uint8Array; count: number },
  topicHashHex: string,
): BaselineMessage[] {
  const clear = encodeCommand({
    type: 'SetTopicKey',
    key: new Uint8Array(randomBytes(32)),
    topicHash: fromHex(topicHashHex),
  });
  const messages: BaselineMessage[] = [];
  for (let i = 0; i < fleet.count; i++) {
    const name = deviceName(fleet.runId, i);
    const key = deviceKey(fleet.seed, i);
    const wire = protectCommand(clear, key, Date.now);
    key.fill(0);
    if (wire.length !== SET_TOPIC_KEY_WIRE_BYTES)
      throw new Error(`baseline payload is ${wire.length} bytes`);
    messages.push({ topic: controlTopic(clientIdFromName(name)), payload: Buffer.from(wire) });
  }
  clear.fill(0);
  return messages;
}

/** Connects the baseline's publisher: one connection, as the engine's publisher. */
export function connectBaselinePublisher(url: string, runId: string): Promise<MqttClient> {
  return mqtt.connectAsync(url, {
    clientId: `fanout-${runId}-baseline`,
    clean: true,
    reconnectPeriod: 0,
    connectTimeout: 10_000,
  });
}

/** How a publish loop went. Times are epoch milliseconds. */
export interface LoopOutcome {
  readonly startedAt: number;
  readonly lastPubackAt: number;
  readonly acked: number;
  readonly failed: number;
}

/**
 * Publishes every message QoS 1 with at most `window` awaiting their PUBACK at once.
 * @throws after `timeoutMs` if PUBACKs are still missing
 */
export function publishLoop(
  client: MqttClient,
  messages: readonly BaselineMessage[],
  window: number,
  timeoutMs: number,
): Promise<LoopOutcome> {
  return new Promise<LoopOutcome>((resolve, reject) => {
    const startedAt = epochMs();
    let next = 0;
    let inFlight = 0;
    let acked = 0;
    let failed = 0;
    let lastPubackAt = 0;
    const timer = setTimeout(() => {
      reject(
        new Error(`baseline: ${messages.length - acked - failed} PUBACKs missing after timeout`),
      );
    }, timeoutMs);
    const launch = (): void => {
      while (inFlight < window && next < messages.length) {
        const m = messages[next++];
        if (m === undefined) break;
        inFlight++;
        client.publish(m.topic, m.payload, { qos: 1 }, (err) => {
          inFlight--;
          // mqtt.js calls back with null on success, whatever its types say.
          if (!err) {
            acked++;
            lastPubackAt = epochMs();
          } else {
            failed++;
          }
          if (acked + failed === messages.length) {
            clearTimeout(timer);
            resolve({ startedAt, lastPubackAt, acked, failed });
          } else {
            launch();
          }
        });
      }
    };
    if (messages.length === 0) {
      clearTimeout(timer);
      resolve({ startedAt, lastPubackAt: startedAt, acked: 0, failed: 0 });
    } else {
      launch();
    }
  });
}
