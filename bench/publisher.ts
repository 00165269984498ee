/**
 * `npm run bench -- publisher`: the C2's MQTT command publisher (`MqttCommandPublisher`, a
 * promise per publish with a PUBACK timeout) against mqtt.js's own QoS 1 publish loop (callbacks,
 * no timeout), in the same run, to the machine's Mosquitto (MQTT_URL, default
 * mqtt://127.0.0.1:1883).
 *
 * Both publish the same 73-byte payloads (a protected SetTopicKey's size) to 10,000 control
 * topics nobody subscribes to, with the same window of unacknowledged messages as one delivery
 * engine (1,024), from their own connection. Measured per round: publishes per second and this
 * process's CPU time per publish. Rounds alternate (loop first in odd rounds) and each contender
 * is summarised by its median round. The figure of interest is the CPU ratio (loop / publisher):
 * what the publisher adds to the client library on the delivery path, per device.
 */
import { randomBytes } from 'node:crypto';
import mqtt, { type MqttClient } from 'mqtt';
import { MqttCommandPublisher } from '../cluster/delivery/index.ts';
import { median } from './lib/measure.ts';
import type { Benchmark, BenchOptions, BenchOutcome } from './lib/types.ts';

interface Settings {
  readonly rounds: number;
  readonly publishes: number;
  readonly window: number;
}
const DEFAULT_SETTINGS: Settings = { rounds: 6, publishes: 20_000, window: 1024 };
const QUICK_SETTINGS: Settings = { rounds: 2, publishes: 2_000, window: 1024 };
const PAYLOAD_BYTES = 73;
const TOPICS = 10_000;

interface Round {
  readonly rate: number;
  readonly cpuMicrosPerPublish: number;
}

function brokerUrl(): string {
  return process.env['MQTT_URL'] ?? 'mqtt://127.0.0.1:1883';
}

/** Runs `publish` for every message with at most `window` awaiting their PUBACK. */
async function timed(
  settings: Settings,
  publish: (topic: string, payload: Uint8Array) => Promise<void>,
): Promise<Round> {
  const prefix = `e4/bench-pub-${randomBytes(4).toString('hex')}-`;
  const topics = Array.from({ length: TOPICS }, (_, i) => `${prefix}${i}`);
  const payloads = Array.from(
    { length: settings.publishes },
    () => new Uint8Array(randomBytes(PAYLOAD_BYTES)),
  );
  let next = 0;
  const cpu = process.cpuUsage();
  const start = performance.now();
  await Promise.all(
    Array.from({ length: settings.window }, async () => {
      while (next < payloads.length) {
        const i = next++;
        await publish(topics[i % TOPICS] as string, payloads[i] as Uint8Array);
      }
    }),
  );
  const seconds = (performance.now() - start) / 1000;
  const used = process.cpuUsage(cpu);
  return {
    rate: Math.round(settings.publishes / seconds),
    cpuMicrosPerPublish: Math.round(((used.user + used.system) / settings.publishes) * 10) / 10,
  };
}

/** mqtt.js's publish loop: its callback API, wrapped only to be awaited. */
function loopPublish(client: MqttClient): (topic: string, payload: Uint8Array) => Promise<void> {
  return (topic, payload) =>
    new Promise<void>((resolve, reject) => {
      client.publish(
        topic,
        Buffer.from(payload.buffer, payload.byteOffset, payload.length),
        { qos: 1 },
        (err) => {
          if (err) reject(err);
          else resolve();
        },
      );
    });
}

async function run(options: BenchOptions): Promise<BenchOutcome> {
  const base = options.quick ? QUICK_SETTINGS : DEFAULT_SETTINGS;
  const settings: Settings = { ...base, rounds: options.rounds ?? base.rounds };
  const url = brokerUrl();
  const id = randomBytes(4).toString('hex');
  const loopClient = await mqtt.connectAsync(url, {
    clientId: `bench-pub-loop-${id}`,
    clean: true,
    reconnectPeriod: 0,
  });
  const publisher = await MqttCommandPublisher.connect({
    url,
    clientId: `bench-pub-c2-${id}`,
    pubackTimeoutMs: 5000,
  });
  const loop: Round[] = [];
  const ours: Round[] = [];
  try {
    for (let r = 1; r <= settings.rounds; r++) {
      const order = r % 2 === 1 ? ['loop', 'publisher'] : ['publisher', 'loop'];
      for (const which of order) {
        const round =
          which === 'loop'
            ? await timed(settings, loopPublish(loopClient))
            : await timed(settings, (topic, payload) => publisher.publish(topic, payload));
        (which === 'loop' ? loop : ours).push(round);
        options.log(
          `round ${r}/${settings.rounds} ${which}: ${round.rate} publishes/s, ${round.cpuMicrosPerPublish} µs CPU each`,
        );
      }
    }
  } finally {
    await publisher.close();
    await loopClient.endAsync();
  }
  const summarise = (rounds: readonly Round[]) => ({
    rateMedian: Math.round(median(rounds.map((x) => x.rate))),
    cpuMicrosPerPublishMedian: median(rounds.map((x) => x.cpuMicrosPerPublish)),
  });
  const l = summarise(loop);
  const p = summarise(ours);
  const cpuRatio =
    Math.round((l.cpuMicrosPerPublishMedian / p.cpuMicrosPerPublishMedian) * 1000) / 1000;
  const rateRatio = Math.round((p.rateMedian / l.rateMedian) * 1000) / 1000;
  return {
    settings: { ...settings, payloadBytes: PAYLOAD_BYTES, topics: TOPICS, broker: url },
    results: {
      mqttJsLoop: { ...l, rounds: loop.map((x) => ({ ...x })) },
      commandPublisher: { ...p, rounds: ours.map((x) => ({ ...x })) },
      rateRatio,
      cpuRatio,
    },
    summary: [
      '| contender | publishes/s | CPU µs per publish |',
      '| --- | ---: | ---: |',
      `| mqtt.js publish loop | ${l.rateMedian} | ${l.cpuMicrosPerPublishMedian} |`,
      `| MqttCommandPublisher | ${p.rateMedian} | ${p.cpuMicrosPerPublishMedian} |`,
      '',
      `rate ratio (publisher / loop) ${rateRatio}, CPU ratio (loop / publisher) ${cpuRatio}`,
    ],
  };
}

/** The benchmark's registration with the dispatcher. */
export const benchmark: Benchmark = {
  name: 'publisher',
  description: 'MQTT command publisher against mqtt.js publish loop (QoS 1, same window)',
  run,
};
