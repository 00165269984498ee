/**
 * Test support of the proxies: a configuration in a private temporary directory, a proxy on free
 * loopback ports against the machine's Mosquitto, a stand-in for the C2 that publishes protected
 * commands, and plain MQTT clients that collect what they receive.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { connect as connectTcp, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import mqttPacket, { type Packet } from 'mqtt-packet';
import { generate } from 'selfsigned';
import {
  clientIdFromName,
  cmdSetTopicKey,
  controlTopic,
  protectCommand,
  toHex,
} from '../../e4/index.ts';
import { parseProxyConfig, type ProxyConfig } from '../config.ts';
import type { ProxyLogger } from '../logger.ts';
import { ProtectionProxy, type ProxyStartOptions } from '../protection-proxy.ts';

/** The broker of the tests. */
export const BROKER_URL = process.env['MQTT_TEST_URL'] ?? 'mqtt://127.0.0.1:1883';

/** A unique name for topics and client ids (runs of other engineers share the broker). */
export function unique(prefix: string): string {
  return `${prefix}-${randomBytes(5).toString('hex')}`;
}

/** A temporary directory, removed by `cleanup`. */
export async function tempDir(): Promise<{ path: string; cleanup: () => Promise<void> }> {
  const path = await mkdtemp(join(tmpdir(), 'e4proxy-test-'));
  return { path, cleanup: () => rm(path, { recursive: true, force: true }) };
}

/** Writes `settings` (JSON) as the configuration file in `dir` and parses it. */
export async function writeConfig(
  dir: string,
  settings: Record<string, unknown>,
): Promise<ProxyConfig> {
  const path = join(dir, 'proxy.json');
  const text = JSON.stringify({
    stateDir: 'state',
    listen: { host: '127.0.0.1', port: 0 },
    health: { host: '127.0.0.1', port: 0 },
    upstream: { url: BROKER_URL, controlClientId: unique('e4proxy-control') },
    ...settings,
  });
  await writeFile(path, text);
  return parseProxyConfig(text, path);
}

/** A stand-in for the C2's HTTP API on a free loopback port. */
export interface FakeC2 {
  /** `http://127.0.0.1:<port>` (`https://` with `tls`) */
  readonly url: string;
  /** Every request, as `METHOD /path`, in order. */
  readonly requests: string[];
  /** Stops it (its port is then closed: a C2 that is down). */
  close(): Promise<void>;
}

/** A PEM server certificate and its key. */
export interface TestCert {
  readonly cert: string;
  readonly key: string;
}

/**
 * A self-signed certificate like the one a single-node C2 generates at its first `npm start`
 * (ECDSA P-256, for `localhost`, 127.0.0.1 and ::1), valid for a day. (The CLI's tests have
 * the same helper; the layering keeps proxy/ from importing it.)
 */
export async function selfSignedCert(): Promise<TestCert> {
  const now = Date.now();
  const pems = await generate([{ name: 'commonName', value: 'localhost' }], {
    keyType: 'ec',
    curve: 'P-256',
    algorithm: 'sha256',
    notBeforeDate: new Date(now - 3_600_000),
    notAfterDate: new Date(now + 86_400_000),
    extensions: [
      { name: 'basicConstraints', cA: false, critical: true },
      { name: 'keyUsage', digitalSignature: true, critical: true },
      { name: 'extKeyUsage', serverAuth: true },
      {
        name: 'subjectAltName',
        altNames: [
          { type: 2, value: 'localhost' },
          { type: 7, ip: '127.0.0.1' },
          { type: 7, ip: '::1' },
        ],
      },
    ],
  });
  return { cert: pems.cert, key: pems.private };
}

/** An answer of the fake C2. */
export interface FakeC2Answer {
  readonly status: number;
  /** Sent as JSON (streamed, without a content-length unless `headers` gives one). */
  readonly body?: unknown;
  /** Headers beside `content-type: application/json` (a redirect's `location`). */
  readonly headers?: Readonly<Record<string, string>>;
  /**
   * A C2 that hangs: `before-headers` never answers; `after-headers` sends the headers and the
   * start of the body, and never ends it.
   */
  readonly stall?: 'before-headers' | 'after-headers';
}

/**
 * Starts a fake C2 that records every request and answers with `answer(method, path)`; without
 * an answer, 404 with a `/v1` error body. With `tls`, it serves HTTPS with that certificate.
 */
export async function startFakeC2(
  answer: (method: string, path: string) => FakeC2Answer | undefined = () => undefined,
  options: { readonly tls?: TestCert } = {},
): Promise<FakeC2> {
  const requests: string[] = [];
  const handle = (req: IncomingMessage, res: ServerResponse): void => {
    const method = req.method ?? 'GET';
    const path = req.url ?? '/';
    requests.push(`${method} ${path}`);
    req.resume();
    const reply = answer(method, path) ?? {
      status: 404,
      body: { error: { code: 'C2_NOT_FOUND', message: 'not found' } },
    };
    if (reply.stall === 'before-headers') return;
    const text = JSON.stringify(reply.body ?? {});
    res.writeHead(reply.status, { 'content-type': 'application/json', ...reply.headers });
    if (reply.stall === 'after-headers') {
      res.write(text.slice(0, 1));
      return;
    }
    res.write(text);
    res.end();
  };
  const server =
    options.tls === undefined ? createServer(handle) : createHttpsServer(options.tls, handle);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `${options.tls === undefined ? 'http' : 'https'}://127.0.0.1:${port}`,
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => {
          resolve();
        });
      }),
  };
}

/** A logger that keeps every line, for assertions on what was logged. */
export function recordingLogger(): ProxyLogger & {
  readonly lines: Array<{ level: string; obj: object; msg: string }>;
} {
  const lines: Array<{ level: string; obj: object; msg: string }> = [];
  const log =
    (level: string) =>
    (obj: object, msg = ''): void => {
      lines.push({ level, obj, msg });
    };
  return {
    lines,
    debug: log('debug'),
    info: log('info'),
    warn: log('warn'),
    error: log('error'),
  };
}

/** Starts a proxy from a configuration. */
export function startProxy(
  config: ProxyConfig,
  options: ProxyStartOptions = {},
): Promise<ProtectionProxy> {
  return ProtectionProxy.start(config, { ackTimeoutMs: 5000, ...options });
}

/**
 * Plays the C2: sends `command` (encoded) to the identity `name`, protected with `commandKey` (its
 * identity key; in public-key mode the key it shares with the C2, `commandKeyForClient`).
 */
export async function sendCommand(
  name: string,
  commandKey: Uint8Array,
  command: Uint8Array,
): Promise<void> {
  const c2 = await mqtt.connectAsync(BROKER_URL, { clientId: unique('fake-c2') });
  try {
    await c2.publishAsync(
      controlTopic(clientIdFromName(name)),
      Buffer.from(protectCommand(command, commandKey)),
      { qos: 1 },
    );
  } finally {
    await c2.endAsync();
  }
}

/** Plays the C2: sends a SetTopicKey to the identity `name` holding `identityKey`. */
export function sendTopicKey(
  name: string,
  identityKey: Uint8Array,
  topic: string,
  topicKey: Uint8Array,
): Promise<void> {
  return sendCommand(name, identityKey, cmdSetTopicKey(topicKey, topic));
}

/** The hex client id of a name. */
export function idHex(name: string): string {
  return toHex(clientIdFromName(name));
}

/** A plain MQTT client that records every message it receives. */
export class Collector {
  readonly messages: Array<{ topic: string; payload: Buffer; qos: number; retain: boolean }> = [];
  private constructor(readonly client: MqttClient) {
    client.on('message', (topic, payload, packet) => {
      this.messages.push({ topic, payload, qos: packet.qos, retain: packet.retain });
    });
  }

  /** Connects to `url`. */
  static async connect(url: string, options: IClientOptions = {}): Promise<Collector> {
    const client = await mqtt.connectAsync(url, {
      clientId: unique('collector'),
      reconnectPeriod: 0,
      ...options,
    });
    return new Collector(client);
  }

  /** Payloads received on `topic`, as text. */
  texts(topic?: string): string[] {
    return this.messages
      .filter((m) => topic === undefined || m.topic === topic)
      .map((m) => m.payload.toString('utf8'));
  }

  /** Waits until `count` messages arrived (fails after `timeoutMs`). */
  async waitFor(count: number, timeoutMs = 10_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (this.messages.length < count) {
      if (Date.now() > deadline) {
        throw new Error(`expected ${count} messages, got ${this.messages.length}`);
      }
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  async close(): Promise<void> {
    await this.client.endAsync(true);
  }
}

/** `mqtt://host:port` of a running proxy. */
export function proxyUrl(proxy: ProtectionProxy): string {
  return `mqtt://127.0.0.1:${proxy.listenAddress.port}`;
}

/**
 * Speaks MQTT 5 to `port` byte by byte, as a misbehaving client: sends a CONNECT with
 * `keepalive`, waits for its CONNACK, then writes `chunks` (raw bytes, which may be no valid
 * packet). Resolves with every packet received once the other side closed the connection, or
 * rejects after `ms`.
 */
export function rawMqtt5Session(
  port: number,
  keepalive: number,
  chunks: readonly Buffer[],
  ms = 10_000,
): Promise<Packet[]> {
  const packets: Packet[] = [];
  const parser = mqttPacket.parser({ protocolVersion: 5 });
  const socket = connectTcp(port, '127.0.0.1');
  parser.on('packet', (packet: Packet) => {
    packets.push(packet);
    if (packet.cmd === 'connack') for (const chunk of chunks) socket.write(chunk);
  });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`the connection was still open after ${ms} ms`));
    }, ms);
    socket.on('data', (data: Buffer) => parser.parse(data));
    socket.on('error', () => undefined);
    socket.on('close', () => {
      clearTimeout(timer);
      resolve(packets);
    });
    const connect = { cmd: 'connect', clientId: unique('raw-v5'), clean: true, keepalive } as const;
    socket.write(mqttPacket.generate({ ...connect, protocolVersion: 5 }, { protocolVersion: 5 }));
  });
}

/** Waits (bounded, polling every 20 ms) until `check` holds; throws naming `what` otherwise. */
export async function until(
  check: () => boolean | Promise<boolean>,
  what: string,
  ms = 10_000,
): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** An MQTT client that keeps the text of every message it receives, from the first packet on. */
export interface RecordingClient {
  readonly client: MqttClient;
  readonly texts: string[];
  readonly sessionPresent: boolean;
}

/**
 * Connects a client to `url` (no reconnection) that records what it receives; resolves on its
 * CONNACK. The client is added to `opened`, for the test's cleanup.
 */
export function connectRecording(
  url: string,
  options: IClientOptions,
  opened: MqttClient[],
): Promise<RecordingClient> {
  const client = mqtt.connect(url, { reconnectPeriod: 0, ...options });
  opened.push(client);
  const texts: string[] = [];
  client.on('message', (_topic, payload) => texts.push(payload.toString()));
  return new Promise((resolve, reject) => {
    client.once('connect', (connack) => {
      resolve({ client, texts, sessionPresent: connack.sessionPresent });
    });
    client.once('error', reject);
  });
}
