/**
 * An MQTT-aware fault proxy between the C2's workers and the broker. A TCP proxy cannot reorder
 * within a connection (ha-notes §4.2), so this one frames the MQTT byte stream and acts on
 * PUBLISH packets: it delays each by a random time (reordering them within and across
 * connections), holds one until a PUBLISH of another connection overtook it, duplicates some
 * (the copy carries the DUP flag, and the broker's extra PUBACK is swallowed), and loses some
 * PUBACKs on their way back (the lost acknowledgement: the worker retransmits). Every hold is
 * bounded by `maxHoldMs`, which scenarios keep below the C2's PUBACK timeout: a broker never
 * accepts a PUBLISH after its sender gave up on it, and a network does not either.
 */
import { connect, createServer, type Server, type Socket } from 'node:net';
import { listenOnFreePort, type DrawRange } from '../../bin/free-ports.ts';

/** Behaviour of the proxy; probabilities in [0, 1]. */
export interface MqttFaults {
  /** Each PUBLISH is delayed uniformly in [0, delayMs]. */
  readonly delayMs?: number;
  /** Probability that a PUBLISH is held until another connection's PUBLISH passes. */
  readonly hold?: number;
  /** Probability that a PUBLISH is sent twice. */
  readonly duplicate?: number;
  /** Probability that the broker's PUBACK is lost. */
  readonly dropPuback?: number;
}

/** Options of {@link MqttFaultProxy.start}. */
export interface MqttFaultProxyOptions {
  readonly targetHost: string;
  readonly targetPort: number;
  readonly host?: string;
  /** Longest a PUBLISH is kept back, whatever the faults say. */
  readonly maxHoldMs: number;
  readonly random: () => number;
  /** Where its port comes from (`--ports`); default: the kernel's choice. */
  readonly portRange?: DrawRange | undefined;
}

/** Splits an MQTT byte stream into whole packets. */
export class MqttFramer {
  #buffer: Buffer = Buffer.alloc(0);

  /** Adds bytes; returns the packets now complete. */
  push(chunk: Buffer): Buffer[] {
    this.#buffer = this.#buffer.length === 0 ? chunk : Buffer.concat([this.#buffer, chunk]);
    const packets: Buffer[] = [];
    for (;;) {
      let length = 0;
      let multiplier = 1;
      let at = 1;
      let complete = false;
      while (at < this.#buffer.length && at <= 4) {
        const byte = this.#buffer[at] ?? 0;
        length += (byte & 0x7f) * multiplier;
        multiplier *= 128;
        at += 1;
        if ((byte & 0x80) === 0) {
          complete = true;
          break;
        }
      }
      if (!complete || this.#buffer.length < at + length) return packets;
      packets.push(this.#buffer.subarray(0, at + length));
      this.#buffer = this.#buffer.subarray(at + length);
    }
  }
}

const PUBLISH = 3;
const PUBACK = 4;

function packetType(packet: Buffer): number {
  return (packet[0] ?? 0) >> 4;
}

/** The packet id of a QoS 1 PUBLISH, or of a PUBACK. */
function packetId(packet: Buffer): number | undefined {
  const type = packetType(packet);
  if (type === PUBACK) return packet.readUInt16BE(2);
  if (type !== PUBLISH || ((packet[0] ?? 0) & 0x06) === 0) return undefined;
  let at = 1;
  while (((packet[at] ?? 0) & 0x80) !== 0) at += 1;
  at += 1;
  const topicLength = packet.readUInt16BE(at);
  return packet.readUInt16BE(at + 2 + topicLength);
}

/** What the proxy did, for the report. */
export interface MqttFaultCounts {
  published: number;
  delayed: number;
  held: number;
  duplicated: number;
  pubacksDropped: number;
}

/** A running MQTT fault proxy. */
export class MqttFaultProxy {
  #faults: MqttFaults = {};
  readonly counts: MqttFaultCounts = {
    published: 0,
    delayed: 0,
    held: 0,
    duplicated: 0,
    pubacksDropped: 0,
  };
  readonly #sockets = new Set<Socket>();
  /** Held PUBLISHes: released when another connection's PUBLISH passes, or on timeout. */
  readonly #held: Array<{ conn: number; release: () => void }> = [];
  readonly #timers = new Set<NodeJS.Timeout>();
  #nextConn = 0;

  private constructor(
    private readonly server: Server,
    private readonly options: MqttFaultProxyOptions,
  ) {}

  static async start(options: MqttFaultProxyOptions): Promise<MqttFaultProxy> {
    const server = createServer({ pauseOnConnect: true });
    const proxy = new MqttFaultProxy(server, options);
    server.maxConnections = 256;
    server.on('connection', (socket) => {
      proxy.#accept(socket);
    });
    await listenOnFreePort(server, options.host ?? '127.0.0.1', options.portRange);
    // An accept error (EMFILE under load) loses that one connection; it must not end the suite.
    server.on('error', () => undefined);
    return proxy;
  }

  get url(): string {
    const address = this.server.address();
    const port = typeof address === 'object' && address !== null ? address.port : 0;
    return `mqtt://${this.options.host ?? '127.0.0.1'}:${port}`;
  }

  /** Sets the faults (replacing the previous ones). */
  set(faults: MqttFaults): void {
    this.#faults = faults;
  }

  /** No faults; everything held is released now. */
  heal(): void {
    this.#faults = {};
    for (const h of this.#held.splice(0)) h.release();
  }

  #later(ms: number, task: () => void): void {
    const timer = setTimeout(() => {
      this.#timers.delete(timer);
      task();
    }, ms);
    this.#timers.add(timer);
  }

  #accept(client: Socket): void {
    const conn = this.#nextConn++;
    const upstream = connect({ host: this.options.targetHost, port: this.options.targetPort });
    const random = this.options.random;
    const up = new MqttFramer();
    const down = new MqttFramer();
    /** Packet ids whose broker PUBACK must be swallowed once (duplicates). */
    const swallow = new Map<number, number>();
    // Per connection, packets other than PUBLISH keep their place after the PUBLISHes before them
    // only as far as TCP did; a delayed PUBLISH may be overtaken, which is the point.
    const cut = (): void => {
      client.destroy();
      upstream.destroy();
      this.#sockets.delete(client);
      this.#sockets.delete(upstream);
    };
    const forward = (packet: Buffer): void => {
      if (!upstream.destroyed) upstream.write(packet);
    };
    client.on('data', (chunk: Buffer) => {
      for (const packet of up.push(chunk)) {
        if (packetType(packet) !== PUBLISH) {
          forward(packet);
          continue;
        }
        this.counts.published += 1;
        // A PUBLISH passing releases what other connections hold: it overtook them.
        for (let i = this.#held.length - 1; i >= 0; i--) {
          const h = this.#held[i];
          if (h !== undefined && h.conn !== conn) {
            this.#held.splice(i, 1);
            h.release();
          }
        }
        const f = this.#faults;
        const send = (): void => {
          forward(packet);
          const id = packetId(packet);
          if ((f.duplicate ?? 0) > 0 && id !== undefined && random() < (f.duplicate ?? 0)) {
            this.counts.duplicated += 1;
            const copy = Buffer.from(packet);
            copy[0] = (copy[0] ?? 0) | 0x08; // DUP
            swallow.set(id, (swallow.get(id) ?? 0) + 1);
            forward(copy);
          }
        };
        const max = this.options.maxHoldMs;
        if ((f.hold ?? 0) > 0 && random() < (f.hold ?? 0)) {
          this.counts.held += 1;
          let released = false;
          const release = (): void => {
            if (released) return;
            released = true;
            send();
          };
          this.#held.push({ conn, release });
          this.#later(max, release);
        } else if ((f.delayMs ?? 0) > 0) {
          this.counts.delayed += 1;
          this.#later(Math.min(max, random() * (f.delayMs ?? 0)), send);
        } else send();
      }
    });
    upstream.on('data', (chunk: Buffer) => {
      for (const packet of down.push(chunk)) {
        if (packetType(packet) === PUBACK) {
          const id = packetId(packet) ?? -1;
          const pending = swallow.get(id) ?? 0;
          if (pending > 0) {
            if (pending === 1) swallow.delete(id);
            else swallow.set(id, pending - 1);
            continue;
          }
          const drop = this.#faults.dropPuback ?? 0;
          if (drop > 0 && random() < drop) {
            this.counts.pubacksDropped += 1;
            continue;
          }
        }
        if (!client.destroyed) client.write(packet);
      }
    });
    upstream.once('connect', () => client.resume());
    for (const s of [client, upstream]) {
      this.#sockets.add(s);
      s.on('error', cut);
      s.on('close', cut);
    }
  }

  /** Stops listening, drops what is held, cuts every connection. */
  async close(): Promise<void> {
    for (const t of this.#timers) clearTimeout(t);
    this.#timers.clear();
    this.#held.splice(0);
    for (const s of this.#sockets) s.destroy();
    await new Promise<void>((resolve) => {
      this.server.close(() => {
        resolve();
      });
    });
  }
}
