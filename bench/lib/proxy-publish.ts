/**
 * Timed QoS 1 publishing for the proxy benchmark: a fixed number of messages with a bounded
 * number awaiting their PUBACK, timed on the wall clock and on process CPU time.
 */
import { performance } from 'node:perf_hooks';
import type { MqttClient } from 'mqtt';

/** One timed round. */
export interface PublishRound {
  readonly messages: number;
  readonly wallMs: number;
  readonly cpuMs: number;
}

/**
 * Publishes `count` messages at QoS 1 with at most `window` unacknowledged, and resolves when
 * the last PUBACK arrived.
 * @throws the first publish error
 */
export async function publishRound(
  client: MqttClient,
  topic: string,
  payload: Buffer,
  count: number,
  window: number,
): Promise<PublishRound> {
  const cpuStart = process.cpuUsage();
  const start = performance.now();
  await new Promise<void>((resolve, reject) => {
    let sent = 0;
    let acked = 0;
    let failed = false;
    const pump = (): void => {
      while (!failed && sent < count && sent - acked < window) {
        sent++;
        client.publish(topic, payload, { qos: 1 }, (err) => {
          if (err) {
            failed = true;
            reject(err);
            return;
          }
          acked++;
          if (acked === count) resolve();
          else pump();
        });
      }
    };
    pump();
  });
  const wallMs = performance.now() - start;
  const cpu = process.cpuUsage(cpuStart);
  return { messages: count, wallMs, cpuMs: (cpu.user + cpu.system) / 1000 };
}
