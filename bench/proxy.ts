/**
 * `npm run bench -- proxy`: messages per second through a local protection proxy (protect with
 * the topic key, forward, broker PUBACK relayed back) beside direct publishing to the same
 * broker, in the same run.
 *
 * Both contenders publish QoS 1 from one mqtt.js client with the same window of unacknowledged
 * messages, to the machine's Mosquitto (MQTT_URL, default mqtt://127.0.0.1:1883). The proxy runs
 * in this process, as a local proxy shares the machine with its application: the CPU figures
 * include the proxy's own work. Rounds alternate (direct, proxy, direct, ...) and each contender
 * is summarised by its median round, so load from neighbours hits both alike.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';
import {
  clientIdFromName,
  cmdSetTopicKey,
  controlTopic,
  protectCommand,
  randomSymKey,
  sivKey,
  toHex,
  topicHash,
  unprotectSymKey,
} from '../e4/index.ts';
import { parseProxyConfig } from '../proxy/config.ts';
import { ProtectionProxy } from '../proxy/protection-proxy.ts';
import { median } from './lib/measure.ts';
import { publishRound, type PublishRound } from './lib/proxy-publish.ts';
import type { Benchmark, BenchOptions, BenchOutcome, JsonObject } from './lib/types.ts';

const PAYLOAD_SIZES = [64, 1024] as const;

interface Settings {
  readonly rounds: number;
  readonly messagesPerRound: number;
  readonly window: number;
}
const DEFAULT_SETTINGS: Settings = { rounds: 5, messagesPerRound: 2000, window: 64 };
const QUICK_SETTINGS: Settings = { rounds: 2, messagesPerRound: 300, window: 64 };

function brokerUrl(): string {
  return process.env['MQTT_URL'] ?? 'mqtt://127.0.0.1:1883';
}

function check(condition: boolean, what: string): void {
  if (!condition) throw new Error(`bench proxy: sanity check failed: ${what}`);
}

/** Starts a local proxy whose identity holds the topic key (sent as the C2 would). */
async function startBenchProxy(
  dir: string,
  topic: string,
  topicKey: Uint8Array,
): Promise<ProtectionProxy> {
  const name = `bench-proxy-${randomBytes(4).toString('hex')}`;
  const identityKey = randomSymKey();
  const path = join(dir, 'proxy.json');
  const text = JSON.stringify({
    mode: 'local',
    stateDir: 'state',
    listen: { host: '127.0.0.1', port: 0 },
    health: { host: '127.0.0.1', port: 0 },
    upstream: { url: brokerUrl(), controlClientId: `${name}-control` },
    identities: [{ name, initialKey: toHex(identityKey) }],
    policy: { protect: [`${topic.split('/')[0] ?? topic}/#`] },
  });
  await writeFile(path, text);
  const proxy = await ProtectionProxy.start(parseProxyConfig(text, path));
  const c2 = await mqtt.connectAsync(brokerUrl(), { clientId: `${name}-c2` });
  await c2.publishAsync(
    controlTopic(clientIdFromName(name)),
    Buffer.from(protectCommand(cmdSetTopicKey(topicKey, topic), identityKey)),
    { qos: 1 },
  );
  await c2.endAsync();
  const hash = toHex(topicHash(topic));
  const deadline = Date.now() + 10_000;
  while (proxy.ring.get(name)?.client.state.topicKeys.has(hash) !== true) {
    if (Date.now() > deadline)
      throw new Error('bench proxy: the topic key never reached the proxy');
    await new Promise((r) => setTimeout(r, 20));
  }
  return proxy;
}

/** Checks that what goes through the proxy reaches the broker protected, and decrypts. */
async function sanityCheck(
  viaProxy: MqttClient,
  topic: string,
  topicKey: Uint8Array,
): Promise<void> {
  const spy = await mqtt.connectAsync(brokerUrl(), {
    clientId: `bench-spy-${randomBytes(4).toString('hex')}`,
  });
  try {
    const got = new Promise<Buffer>((resolve) => {
      spy.once('message', (_t, payload) => {
        resolve(payload);
      });
    });
    await spy.subscribeAsync(topic, { qos: 1 });
    await viaProxy.publishAsync(topic, 'bench sanity', { qos: 1 });
    const wire = await got;
    check(!wire.includes('bench sanity'), 'the broker saw plaintext');
    check(
      Buffer.from(unprotectSymKey(wire, sivKey(topicKey))).toString() === 'bench sanity',
      'the protected message does not decrypt with the topic key',
    );
  } finally {
    await spy.endAsync();
  }
}

function rate(r: PublishRound): number {
  return (r.messages / r.wallMs) * 1000;
}
function cpuRate(r: PublishRound): number {
  return (r.messages / Math.max(r.cpuMs, 1e-3)) * 1000;
}

async function run(options: BenchOptions): Promise<BenchOutcome> {
  const base = options.quick ? QUICK_SETTINGS : DEFAULT_SETTINGS;
  const settings: Settings = { ...base, rounds: options.rounds ?? base.rounds };
  const dir = await mkdtemp(join(tmpdir(), 'e4-bench-proxy-'));
  const prefix = `bench-proxy-${randomBytes(4).toString('hex')}`;
  const topic = `${prefix}/telemetry`;
  const topicKey = randomSymKey();
  const proxy = await startBenchProxy(dir, topic, topicKey);
  const direct = await mqtt.connectAsync(brokerUrl(), { clientId: `${prefix}-direct` });
  const viaProxy = await mqtt.connectAsync(`mqtt://127.0.0.1:${proxy.listenAddress.port}`, {
    clientId: `${prefix}-app`,
  });
  try {
    await sanityCheck(viaProxy, topic, topicKey);
    const rows: JsonObject[] = [];
    const summary = [
      '| payload | direct msg/s | through proxy msg/s | ratio (proxy/direct) | ratio on CPU time |',
      '| --- | --- | --- | --- | --- |',
    ];
    for (const size of PAYLOAD_SIZES) {
      const payload = randomBytes(size);
      // Warm-up of both paths (JIT, TCP windows, broker session state).
      await publishRound(
        direct,
        topic,
        payload,
        Math.min(500, settings.messagesPerRound),
        settings.window,
      );
      await publishRound(
        viaProxy,
        topic,
        payload,
        Math.min(500, settings.messagesPerRound),
        settings.window,
      );
      const directRounds: PublishRound[] = [];
      const proxyRounds: PublishRound[] = [];
      for (let round = 0; round < settings.rounds; round++) {
        options.log(`proxy bench: ${size} B, round ${round + 1}/${settings.rounds}`);
        directRounds.push(
          await publishRound(direct, topic, payload, settings.messagesPerRound, settings.window),
        );
        proxyRounds.push(
          await publishRound(viaProxy, topic, payload, settings.messagesPerRound, settings.window),
        );
      }
      const directRate = median(directRounds.map(rate));
      const proxyRate = median(proxyRounds.map(rate));
      const ratio = Math.round((proxyRate / directRate) * 1000) / 1000;
      const ratioCpu =
        Math.round((median(proxyRounds.map(cpuRate)) / median(directRounds.map(cpuRate))) * 1000) /
        1000;
      rows.push({
        payloadBytes: size,
        directMsgPerSec: Math.round(directRate),
        proxyMsgPerSec: Math.round(proxyRate),
        ratio,
        ratioCpu,
        directSamples: directRounds.map((r) => Math.round(rate(r))),
        proxySamples: proxyRounds.map((r) => Math.round(rate(r))),
      });
      summary.push(
        `| ${size} B | ${Math.round(directRate).toLocaleString('en-US')} | ${Math.round(proxyRate).toLocaleString('en-US')} | ${ratio} | ${ratioCpu} |`,
      );
    }
    const protectedCount = await proxy.metrics.total(proxy.metrics.protected);
    check(protectedCount > 0, 'the proxy protected nothing');
    return {
      settings: { ...settings, broker: brokerUrl(), qos: 1, payloadSizes: [...PAYLOAD_SIZES] },
      results: {
        baseline: 'one mqtt.js client publishing QoS 1 directly to the broker',
        contender: 'the same through a local protection proxy in this process (protect + forward)',
        rows,
        messagesProtected: protectedCount,
      },
      summary,
    };
  } finally {
    await direct.endAsync();
    await viaProxy.endAsync();
    await proxy.close();
    await rm(dir, { recursive: true, force: true });
  }
}

/** The proxy benchmark (see the module comment). */
export const benchmark: Benchmark = {
  name: 'proxy',
  description:
    'QoS 1 msg/s through a local protection proxy against direct publishing to the broker, same run',
  run,
};
