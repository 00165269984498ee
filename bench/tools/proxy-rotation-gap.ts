/**
 * Measures the rotation gap of the protection proxies against a real C2 (docs/proxies.md, "Key
 * rotation has a short gap"): messages lost while a topic is rotated under a steady stream.
 *
 *   node --import tsx bench/tools/proxy-rotation-gap.ts --c2 https://127.0.0.1:8888 \
 *     --c2-ca data/tls/cert.pem --broker mqtt://127.0.0.1:1883 \
 *     [--rate 50] [--messages 1000] [--rotations 5] [--hold-ms 5000]
 *
 * Two local proxies, each with its own identity and state directory, are started in this
 * process on the C2's broker, registered by trust on first use and made members of one new
 * topic. An application publishes `--messages` QoS 1 messages at `--rate` per second through the
 * first; another subscribes through the second. The topic is rotated `--rotations` times
 * (`POST /v1/topics/{name}/rotate`), evenly through the run. Each rotation reaches the two
 * proxies on their own, so a message the first protects under the new key may reach the second
 * before its key. At the end (once nothing more arrived for the hold time plus 5 s) it prints
 * how many messages were delivered, lost, repeated or out of order, and the receiving proxy's
 * drops and rotation hold counts. `--hold-ms 0` turns the hold off (the behaviour before it).
 * Bounded: the run lasts messages / rate seconds plus the final wait, and stops everything.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import mqtt from 'mqtt';
import { toHex, topicHash } from '../../e4/index.ts';
import { parseProxyConfig } from '../../proxy/config.ts';
import { ProtectionProxy } from '../../proxy/protection-proxy.ts';

const { values: args } = parseArgs({
  options: {
    c2: { type: 'string' },
    'c2-ca': { type: 'string' },
    broker: { type: 'string', default: 'mqtt://127.0.0.1:1883' },
    rate: { type: 'string', default: '50' },
    messages: { type: 'string', default: '1000' },
    rotations: { type: 'string', default: '5' },
    'hold-ms': { type: 'string', default: '5000' },
  },
});
if (args.c2 === undefined || args['c2-ca'] === undefined) {
  throw new Error('--c2 URL and --c2-ca FILE are required (see the comment at the top)');
}
const c2Url = args.c2;
const c2Ca = readFileSync(args['c2-ca']);
const rate = Number(args.rate);
const total = Number(args.messages);
const rotations = Number(args.rotations);
const holdMs = Number(args['hold-ms']);

/** POSTs to the C2's API; resolves with the status. */
function post(path: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(new URL(path, c2Url), { method: 'POST', ca: c2Ca }, (res) => {
      res.resume();
      res.on('end', () => {
        resolve(res.statusCode ?? 0);
      });
    });
    req.on('error', reject);
    req.setTimeout(10_000, () => req.destroy(new Error(`POST ${path}: no answer`)));
    req.end();
  });
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function startProxy(dir: string, name: string, topic: string): Promise<ProtectionProxy> {
  const path = join(dir, `${name}.json`);
  const text = JSON.stringify({
    mode: 'local',
    listen: { host: '127.0.0.1', port: 0 },
    health: { host: '127.0.0.1', port: 0 },
    upstream: { url: args.broker, controlClientId: `e4proxy-${name}` },
    stateDir: join(dir, name),
    policy: { protect: [topic], rotationHold: { ms: holdMs } },
    identities: [{ name, topics: [topic] }],
    c2: { url: c2Url, caFile: args['c2-ca'], tofu: true },
  });
  await writeFile(path, text);
  return ProtectionProxy.start(parseProxyConfig(text, path));
}

async function main(): Promise<void> {
  const run = randomBytes(4).toString('hex');
  const topic = `gap-${run}/reading`;
  const dir = await mkdtemp(join(tmpdir(), 'e4-rotation-gap-'));
  const proxies: ProtectionProxy[] = [];
  try {
    const sending = await startProxy(dir, `gap-sender-${run}`, topic);
    proxies.push(sending);
    const receiving = await startProxy(dir, `gap-receiver-${run}`, topic);
    proxies.push(receiving);
    // Both hold the topic's key before the stream starts.
    const hash = toHex(topicHash(topic));
    for (let waited = 0; ; waited += 50) {
      if (proxies.every((p) => p.ring.all()[0]?.client.state.topicKeys.has(hash) === true)) break;
      if (waited > 30_000) throw new Error('the C2 did not deliver the topic key within 30 s');
      await sleep(50);
    }
    const received: number[] = [];
    const subscriber = await mqtt.connectAsync(`mqtt://127.0.0.1:${receiving.listenAddress.port}`, {
      clientId: `gap-sub-${run}`,
    });
    subscriber.on('message', (_t, payload) => received.push(Number(payload.toString())));
    await subscriber.subscribeAsync(topic, { qos: 1 });
    const publisher = await mqtt.connectAsync(`mqtt://127.0.0.1:${sending.listenAddress.port}`, {
      clientId: `gap-pub-${run}`,
    });
    const rotateAt = new Set(
      Array.from({ length: rotations }, (_v, i) => Math.floor(((i + 0.5) * total) / rotations)),
    );
    const started = Date.now();
    const rotationsDone: Array<Promise<number>> = [];
    for (let i = 0; i < total; i++) {
      const due = started + (i * 1000) / rate;
      if (due > Date.now()) await sleep(due - Date.now());
      if (rotateAt.has(i))
        rotationsDone.push(post(`/v1/topics/${encodeURIComponent(topic)}/rotate`));
      // Not awaited: the publisher keeps the rate, as a device does.
      void publisher.publishAsync(topic, String(i), { qos: 1 }).catch(() => undefined);
    }
    const statuses = await Promise.all(rotationsDone);
    if (statuses.some((s) => s !== 200))
      throw new Error(`rotations answered ${statuses.join(' ')}`);
    // Until nothing more arrives for the hold time plus 5 s.
    for (let last = -1; last !== received.length;) {
      last = received.length;
      if (last >= total) break;
      await sleep(holdMs + 5000);
    }
    const unique = new Set(received);
    let outOfOrder = 0;
    for (let i = 1; i < received.length; i++)
      if ((received[i] ?? 0) < (received[i - 1] ?? 0)) outOfOrder++;
    const m = receiving.metrics;
    const hold = async (outcome: string): Promise<number> => m.total(m.rotationHold, { outcome });
    console.log(
      JSON.stringify({
        rate,
        messages: total,
        rotations,
        holdMs,
        delivered: unique.size,
        lost: total - unique.size,
        repeated: received.length - unique.size,
        outOfOrder,
        receiverDropped: {
          notAuthentic: await m.total(m.dropped, { reason: 'not-authentic' }),
          noKey: await m.total(m.dropped, { reason: 'no-key' }),
          stale: await m.total(m.dropped, { reason: 'stale' }),
        },
        senderDropped: await sending.metrics.total(sending.metrics.dropped),
        hold: {
          held: await hold('held'),
          released: await hold('released'),
          expired: await hold('expired'),
          full: await hold('full'),
        },
      }),
    );
    await publisher.endAsync();
    await subscriber.endAsync();
  } finally {
    for (const proxy of proxies) await proxy.close();
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
