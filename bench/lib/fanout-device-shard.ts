/**
 * Child process of `bench/fanout.ts`: a shard of simulated devices. Each device is an
 * {@link E4Client} of the protocol library in symmetric-key mode; many devices share one MQTT
 * connection, each subscribing its own control topic `e4/<hex id>` with QoS 1, and every
 * connection subscribes the rotated data topic once (QoS 1) on behalf of its devices.
 *
 * Devices apply every command through `E4Client.unprotect`, exactly as a device built on the
 * library would. State is kept in memory only (a store that keeps nothing: the client keeps its
 * state itself; a real device would persist it).
 *
 * Goals per phase (the benchmark arms the shard before each timed step):
 * - `setup`: the device applied a SetTopicKey for the rotated topic (key version 1);
 * - `c2`: the device applied a SetTopicKey for the rotated topic AND decrypted this arming's data
 *   message (protected under the new key by the C2, published once after the rotation call). A
 *   device that gets the data message before its command keeps the message and decrypts it when
 *   the command arrives;
 * - `baseline`: the device applied the baseline's SetTopicKey (for another topic hash).
 */
import mqtt, { type MqttClient } from 'mqtt';
import {
  E4Client,
  E4Error,
  SharedTopicCiphers,
  toHex,
  topicHash,
  type ClientStore,
} from '../../e4/index.ts';
import { StepCpuProfile } from './step-cpu-profile.ts';
import {
  deviceKey,
  deviceName,
  epochMs,
  errorMessage,
  peakRssMiB,
  type Phase,
  type ShardCommand,
  type ShardEvent,
  type ShardInit,
} from './fanout-common.ts';

/** Connections opened at once while starting. */
const CONNECT_CONCURRENCY = 8;
/** How often progress is reported while armed. */
const PROGRESS_MS = 200;
/** Bound on connecting and subscribing one connection. */
const CONNECT_TIMEOUT_MS = 30_000;

const noStore: ClientStore = {
  load: () => Promise.resolve(undefined),
  save: () => Promise.resolve(),
};

function send(event: ShardEvent): void {
  process.send?.(event);
}

interface Connection {
  readonly mqtt: MqttClient;
  /** Device indexes (into the shard's arrays) on this connection. */
  readonly devices: number[];
  /** This arming's data message, kept for devices that have not switched yet. */
  data: Uint8Array | undefined;
}

class Shard {
  readonly #init: ShardInit;
  readonly #clients: E4Client[] = [];
  readonly #connectionOf: Int32Array;
  readonly #connections: Connection[] = [];
  readonly #deviceByTopic = new Map<string, number>();
  readonly #topicHashHex: string;
  // Per device: the arming in which the goal was reached (0: not in any arming yet).
  readonly #applied: Int32Array;
  readonly #decrypted: Int32Array;
  readonly #received: Int32Array;
  #armId = 0;
  #phase: Phase = 'setup';
  #expectedData = '';
  #counts = { applied: 0, decrypted: 0, received: 0, rejected: 0 };
  #last = { applied: 0, decrypted: 0, received: 0 };
  #timer: NodeJS.Timeout | undefined;
  #doneSent = false;
  /** The current step's profile (`--cpu-profile`), started at arming, written at the goal. */
  #profile: Promise<StepCpuProfile> | undefined;

  constructor(init: ShardInit) {
    this.#init = init;
    const count = init.to - init.from;
    this.#connectionOf = new Int32Array(count);
    this.#applied = new Int32Array(count);
    this.#decrypted = new Int32Array(count);
    this.#received = new Int32Array(count);
    this.#topicHashHex = toHex(topicHash(init.topic));
  }

  async start(): Promise<void> {
    const init = this.#init;
    const seed = Buffer.from(init.seedHex, 'hex');
    const createStart = epochMs();
    // `--shared-topic-keys`: one pool for the shard, as a gateway holding many identities has.
    const shared = init.sharedTopicKeys ? new SharedTopicCiphers() : undefined;
    for (let i = init.from; i < init.to; i++) {
      const client = await E4Client.createSymmetric(
        { name: deviceName(init.runId, i) },
        { key: deviceKey(seed, i) },
        shared === undefined ? { store: noStore } : { store: noStore, sharedTopicCiphers: shared },
      );
      this.#deviceByTopic.set(client.receivingTopic, this.#clients.length);
      this.#clients.push(client);
    }
    const createMs = epochMs() - createStart;
    const connectStart = epochMs();
    const groups: number[][] = [];
    for (let d = 0; d < this.#clients.length; d += init.perConnection) {
      groups.push(
        Array.from(
          { length: Math.min(init.perConnection, this.#clients.length - d) },
          (_, k) => d + k,
        ),
      );
    }
    let next = 0;
    const connectors = Array.from(
      { length: Math.min(CONNECT_CONCURRENCY, groups.length) },
      async () => {
        while (next < groups.length) {
          const index = next++;
          const group = groups[index];
          if (group !== undefined) await this.#connect(index, group);
        }
      },
    );
    await Promise.all(connectors);
    send({
      type: 'ready',
      shard: init.shard,
      devices: this.#clients.length,
      connections: this.#connections.length,
      createMs: Math.round(createMs),
      connectMs: Math.round(epochMs() - connectStart),
    });
  }

  async #connect(index: number, devices: number[]): Promise<void> {
    const init = this.#init;
    const client = await mqtt.connectAsync(init.brokerUrl, {
      clientId: `fanout-${init.runId}-s${init.shard}-c${index}`,
      clean: true,
      reconnectPeriod: 0,
      connectTimeout: CONNECT_TIMEOUT_MS,
    });
    client.on('error', (err) => {
      send({ type: 'error', shard: init.shard, message: `connection ${index}: ${err.message}` });
    });
    client.on('close', () => {
      if (!this.#stopping) {
        send({ type: 'error', shard: init.shard, message: `connection ${index} closed` });
      }
    });
    const connection: Connection = { mqtt: client, devices, data: undefined };
    const position = this.#connections.length;
    this.#connections.push(connection);
    for (const d of devices) this.#connectionOf[d] = position;
    client.on('message', (topic, payload) => {
      this.#onMessage(connection, topic, new Uint8Array(payload));
    });
    const subscriptions: Record<string, { qos: 1 }> = { [init.topic]: { qos: 1 } };
    for (const d of devices) {
      const device = this.#clients[d];
      if (device !== undefined) subscriptions[device.receivingTopic] = { qos: 1 };
    }
    const granted = await client.subscribeAsync(subscriptions);
    const refused = granted.filter((g) => g.qos !== 1);
    if (refused.length > 0)
      throw new Error(`connection ${index}: ${refused.length} subscriptions not granted QoS 1`);
  }

  #stopping = false;

  #onMessage(connection: Connection, topic: string, payload: Uint8Array): void {
    if (topic === this.#init.topic) {
      this.#onData(connection, payload);
      return;
    }
    const d = this.#deviceByTopic.get(topic);
    const client = d === undefined ? undefined : this.#clients[d];
    if (d === undefined || client === undefined) return;
    client.unprotect(payload, topic).then(
      (result) => {
        if (result.kind !== 'command' || result.command.type !== 'SetTopicKey') return;
        this.#onSetTopicKey(d, toHex(result.command.topicHash));
      },
      (err: unknown) => {
        this.#counts.rejected++;
        if (this.#counts.rejected <= 3) {
          const code = E4Error.is(err) ? err.code : errorMessage(err);
          send({ type: 'error', shard: this.#init.shard, message: `command rejected: ${code}` });
        }
      },
    );
  }

  #onSetTopicKey(d: number, hashHex: string): void {
    const armId = this.#armId;
    if (armId === 0) return;
    if (this.#phase === 'baseline') {
      if (hashHex === this.#init.baselineTopicHashHex && this.#received[d] !== armId) {
        this.#received[d] = armId;
        this.#counts.received++;
        this.#last.received = epochMs();
        this.#check();
      }
      return;
    }
    if (hashHex !== this.#topicHashHex || this.#applied[d] === armId) return;
    this.#applied[d] = armId;
    this.#counts.applied++;
    this.#last.applied = epochMs();
    if (this.#phase === 'c2') {
      const data = this.#connections[this.#connectionOf[d] ?? -1]?.data;
      if (data !== undefined) this.#tryDecrypt(d, data);
    }
    this.#check();
  }

  #onData(connection: Connection, payload: Uint8Array): void {
    if (this.#phase !== 'c2' || this.#armId === 0) return;
    connection.data = payload;
    // Devices that switched already decrypt it now; the others when their command arrives.
    for (const d of connection.devices) {
      if (this.#applied[d] === this.#armId && this.#decrypted[d] !== this.#armId)
        this.#tryDecrypt(d, payload);
    }
    this.#check();
  }

  /** Decrypts the data message (the device holds the new key: it applied it in this arming). */
  #tryDecrypt(d: number, data: Uint8Array): void {
    const client = this.#clients[d];
    if (client === undefined) return;
    let clear: Uint8Array;
    try {
      clear = client.unprotectMessage(data, this.#init.topic);
    } catch {
      this.#counts.rejected++;
      return;
    }
    if (Buffer.from(clear).toString() !== this.#expectedData) {
      this.#counts.rejected++;
      return;
    }
    this.#decrypted[d] = this.#armId;
    this.#counts.decrypted++;
    this.#last.decrypted = epochMs();
  }

  #goalReached(): boolean {
    const n = this.#clients.length;
    switch (this.#phase) {
      case 'setup':
        return this.#counts.applied === n;
      case 'c2':
        return this.#counts.applied === n && this.#counts.decrypted === n;
      case 'baseline':
        return this.#counts.received === n;
    }
  }

  #check(): void {
    if (!this.#doneSent && this.#goalReached()) {
      this.#doneSent = true;
      this.#report();
      this.#writeProfile();
    }
  }

  #report(): void {
    send({
      type: 'progress',
      shard: this.#init.shard,
      armId: this.#armId,
      phase: this.#phase,
      devices: this.#clients.length,
      ...this.#counts,
      lastAppliedAt: this.#last.applied,
      lastDecryptedAt: this.#last.decrypted,
      lastReceivedAt: this.#last.received,
      done: this.#doneSent,
    });
  }

  #writeProfile(): void {
    const dir = this.#init.cpuProfileDir;
    const profile = this.#profile;
    this.#profile = undefined;
    if (dir === undefined || profile === undefined) return;
    const name = `devices-${this.#phase}-arm${this.#armId}-shard${this.#init.shard}`;
    profile
      .then((p) => p.stop(dir, name))
      .catch((err: unknown) => {
        send({ type: 'error', shard: this.#init.shard, message: `profile: ${errorMessage(err)}` });
      });
  }

  get index(): number {
    return this.#init.shard;
  }

  arm(phase: Phase, armId: number): void {
    // Before the step, not during it: replaced keys hold native OpenSSL contexts that V8 does
    // not count, so without a collection now and then the process's memory only grows.
    collectGarbage();
    this.#phase = phase;
    this.#armId = armId;
    this.#expectedData = `fanout ${this.#init.runId} ${armId}`;
    this.#counts = { applied: 0, decrypted: 0, received: 0, rejected: 0 };
    this.#last = { applied: 0, decrypted: 0, received: 0 };
    this.#doneSent = false;
    for (const c of this.#connections) c.data = undefined;
    if (this.#init.cpuProfileDir !== undefined && phase !== 'setup')
      this.#profile = StepCpuProfile.start();
    clearInterval(this.#timer);
    this.#timer = setInterval(() => {
      if (!this.#doneSent) this.#report();
    }, PROGRESS_MS);
    send({ type: 'armed', shard: this.#init.shard, armId });
  }

  async stop(): Promise<void> {
    this.#stopping = true;
    clearInterval(this.#timer);
    await Promise.all(
      this.#connections.map((c) =>
        c.mqtt.endAsync().catch(() => {
          c.mqtt.end(true);
        }),
      ),
    );
  }
}

/** A full collection when the process runs with `--expose-gc` (the benchmark forks it so). */
function collectGarbage(): void {
  const gc = (globalThis as { gc?: () => void }).gc;
  gc?.();
}

let shard: Shard | undefined;

async function handle(command: ShardCommand): Promise<void> {
  switch (command.type) {
    case 'init':
      shard = new Shard(command);
      await shard.start();
      return;
    case 'arm':
      shard?.arm(command.phase, command.armId);
      return;
    case 'stop': {
      await shard?.stop();
      // Disconnect once the last message is written (the benchmark waits for it).
      process.send?.(
        {
          type: 'stopped',
          shard: shard?.index ?? -1,
          peakRssMiB: peakRssMiB(),
        } satisfies ShardEvent,
        () => {
          process.disconnect();
        },
      );
      return;
    }
  }
}

process.on('message', (message: ShardCommand) => {
  handle(message).catch((err: unknown) => {
    send({ type: 'error', shard: shard?.index ?? -1, message: `fatal: ${errorMessage(err)}` });
    process.exitCode = 1;
    process.disconnect();
  });
});
// The benchmark went away (finished, failed or killed): leave with it.
process.on('disconnect', () => {
  void shard?.stop().finally(() => process.exit());
  setTimeout(() => process.exit(), 2000).unref();
});
