/**
 * A simulated E4 device for chaos runs, built on `e4/` (the same command parsing and timestamp
 * rules as e4go): it records every command it applies or refuses (fingerprints only, never
 * keys), can have its clock skewed, can go offline and come back, and can simulate having been
 * offline longer than E4's 10-minute window: what the broker queued for it meanwhile is then
 * judged as if that much time had passed (so it is refused as too old), while what the C2 sends
 * after its return is judged on its normal clock.
 */
import mqtt, { type MqttClient } from 'mqtt';
import {
  E4Client,
  E4Error,
  ed25519PublicKey,
  randomEd25519Key,
  randomSymKey,
  toHex,
} from '../e4/index.ts';
import { keyFingerprint } from '../cluster/keyvault/index.ts';
import type { DeviceApply, FinalDevice } from './history.ts';

/** Length of the E4 timestamp that starts every protected message (LE seconds). */
const TIMESTAMP_LEN = 8;

/** Options of {@link ChaosDevice.create}. */
export interface ChaosDeviceOptions {
  readonly name: string;
  readonly brokerUrl: string;
  /** Milliseconds since the run's start, for the records. */
  readonly elapsed: () => number;
  /** Called with every apply or refusal. */
  readonly record: (apply: DeviceApply) => void;
  /** Public-key mode: the C2's current public key (the device then has an Ed25519 identity). */
  readonly c2PublicKey?: Uint8Array;
  /** The device's wall clock before skew, in ms (tests pin it); `Date.now` by default. */
  readonly now?: () => number;
}

/** A device on the broker, with a persistent session (clean = false, QoS 1). */
export class ChaosDevice {
  /** Added to the wall clock (clock skew). */
  clockOffsetMs = 0;
  /** Set while it is offline on purpose. */
  #offline = false;
  /** Simulated time spent offline, applied to messages protected before it came back. */
  #backlogAgeMs = 0;
  #backAtSeconds = 0;
  #chain: Promise<void> = Promise.resolve();
  /** Hex and base64 forms of every key it ever held, for the secrecy scan (I8). */
  readonly secrets = new Set<string>();
  #mqtt: MqttClient | undefined;
  readonly #client: E4Client;

  private constructor(
    readonly name: string,
    client: E4Client,
    private readonly options: ChaosDeviceOptions,
  ) {
    this.#client = client;
  }

  /** The device's E4 client. */
  get client(): E4Client {
    return this.#client;
  }

  /** Creates the device with a fresh identity key (returned once, to register it). */
  static async create(
    options: ChaosDeviceOptions,
  ): Promise<{ device: ChaosDevice; key: Uint8Array }> {
    const holder: { device?: ChaosDevice } = {};
    const now = options.now ?? Date.now;
    const clock = { clock: () => now() + (holder.device?.effectiveOffset() ?? 0) };
    const secret = options.c2PublicKey === undefined ? randomSymKey() : randomEd25519Key();
    const client =
      options.c2PublicKey === undefined
        ? await E4Client.createSymmetric({ name: options.name }, { key: secret }, clock)
        : await E4Client.createPublicKey(
            { name: options.name },
            { privateKey: secret },
            options.c2PublicKey,
            clock,
          );
    const device = new ChaosDevice(options.name, client, options);
    holder.device = device;
    device.#remember(secret);
    await device.online();
    // What registers it: the symmetric key, or the Ed25519 public key in public-key mode.
    const key = options.c2PublicKey === undefined ? secret : ed25519PublicKey(secret);
    return { device, key };
  }

  /** The offset applied to the message being processed. */
  effectiveOffset(): number {
    return this.clockOffsetMs + this.#messageAge;
  }

  #messageAge = 0;

  #remember(key: Uint8Array): void {
    this.secrets.add(toHex(key));
    this.secrets.add(Buffer.from(key).toString('base64'));
  }

  get offline(): boolean {
    return this.#offline;
  }

  /** The broker's client id of the device's persistent session. */
  get clientId(): string {
    return `chaos-${toHex(this.#client.id).slice(0, 20)}`;
  }

  /** Connects (again), resuming its persistent session. */
  async online(): Promise<void> {
    this.#offline = false;
    // The backlog is what was protected before this moment. E4 timestamps are whole seconds
    // (floored), so a message stamped before the current second was surely protected before it;
    // one stamped in this second may come after it and is judged on the normal clock, so that
    // nothing sent after the return is ever refused as old (the price: a backlog message of the
    // last fraction of a second passes as fresh). One second less, as before, let messages
    // protected up to 2 s before the return pass as fresh.
    this.#backAtSeconds = Math.floor((this.options.now ?? Date.now)() / 1000);
    const connection = mqtt.connect(this.options.brokerUrl, {
      clientId: this.clientId,
      clean: false,
      reconnectPeriod: 250,
      connectTimeout: 5000,
      keepalive: 10,
    });
    // Listening before the CONNACK: a resumed session's backlog comes right behind it, often in
    // the same read, and mqtt.js acknowledges every message it parses whether or not anyone
    // listens. Attached after `connectAsync`, the first messages of the backlog were lost
    // without a trace (neither applied nor refused), so `offline-device` rarely saw a refusal.
    connection.on('message', (topic, payload) => {
      const bytes = new Uint8Array(payload);
      this.#chain = this.#chain.then(() => this.#onMessage(topic, bytes));
    });
    connection.on('error', () => undefined);
    // Fails on an 'error' before the connection is up (as `connectAsync` did).
    await new Promise<void>((resolve, reject) => {
      const failed = (err: Error): void => {
        connection.off('connect', up);
        connection.end(true);
        reject(err);
      };
      const up = (): void => {
        connection.off('error', failed);
        resolve();
      };
      connection.once('connect', up);
      connection.once('error', failed);
    });
    await connection.subscribeAsync(this.#client.receivingTopic, { qos: 1 });
    this.#mqtt = connection;
  }

  /**
   * Disconnects; the broker keeps its session. With `simulatedMs`, everything queued meanwhile is
   * judged as that old when it comes back.
   */
  async goOffline(simulatedMs = 0): Promise<void> {
    this.#offline = true;
    this.#backlogAgeMs = simulatedMs;
    const connection = this.#mqtt;
    this.#mqtt = undefined;
    await connection?.endAsync(true).catch(() => undefined);
  }

  async #onMessage(topic: string, payload: Uint8Array): Promise<void> {
    const at = this.options.elapsed();
    const ts =
      payload.length >= TIMESTAMP_LEN
        ? Number(Buffer.from(payload.subarray(0, TIMESTAMP_LEN)).readBigUInt64LE())
        : 0;
    this.#messageAge = ts < this.#backAtSeconds ? this.#backlogAgeMs : 0;
    try {
      const result = await this.#client.unprotect(payload, topic);
      if (result.kind !== 'command') return;
      const c = result.command;
      const key = 'key' in c ? c.key : undefined;
      if (key !== undefined) this.#remember(key);
      const type =
        c.type === 'SetTopicKey' ||
        c.type === 'RemoveTopic' ||
        c.type === 'SetIDKey' ||
        c.type === 'SetC2Key' ||
        c.type === 'ResetTopics'
          ? c.type
          : 'other';
      // The C2 names identity keys and C2 keys by the fingerprint of their public part.
      const named =
        c.type === 'SetC2Key'
          ? c.publicKey
          : c.type === 'SetIDKey' && key !== undefined && key.length === 64
            ? ed25519PublicKey(key)
            : key;
      this.options.record({
        device: this.name,
        type,
        ...('topicHash' in c ? { topicHash: toHex(c.topicHash) } : {}),
        ...(named === undefined ? {} : { fingerprint: keyFingerprint(named) }),
        at,
      });
    } catch (err) {
      this.options.record({
        device: this.name,
        type: 'rejected',
        error: E4Error.is(err) ? err.code : String(err),
        at,
      });
    } finally {
      this.#messageAge = 0;
    }
  }

  /**
   * Public-key mode: begins a rotation to an identity key the device drew itself, before the C2
   * learns its public half (RotateClientKey with `publicKey`): the device then opens what the C2
   * sends under either key, and switches at the first command under the new one
   * (`E4Client.beginOwnKeyRotation`, docs/protocol-extensions.md §2). It takes its place among
   * the messages received so far.
   * @returns the public key to register
   * @throws E4Error `UnsupportedOperation` for a symmetric-key device, `RotationPending` while
   *   another rotation is pending, `InvalidKey` for an unusable key
   */
  async beginOwnKeyRotation(privateKey: Uint8Array): Promise<Uint8Array> {
    const publicKey = await this.#inTurn(() => this.#client.beginOwnKeyRotation(privateKey));
    this.#remember(privateKey);
    return publicKey;
  }

  /**
   * Drops the key of a pending rotation, for a registration the C2 refused.
   * @throws E4Error `NoRotationPending`, `UnsupportedOperation`
   */
  async abandonOwnKeyRotation(): Promise<void> {
    await this.#inTurn(() => this.#client.abandonOwnKeyRotation());
  }

  /** Runs `task` once every message received so far was processed. */
  #inTurn<T>(task: () => Promise<T>): Promise<T> {
    const next = this.#chain.then(task);
    this.#chain = next.then(
      () => undefined,
      () => undefined,
    );
    return next;
  }

  /** Waits until every message received so far was processed. */
  async settle(): Promise<void> {
    await this.#chain;
  }

  /** What it holds now. */
  snapshot(active: boolean): FinalDevice {
    const state = this.#client.state;
    const topicKeys: Record<string, string> = {};
    for (const [hash, key] of state.topicKeys)
      if (key.length === 32) topicKeys[hash] = keyFingerprint(key);
    const material = state.keyMaterial;
    return {
      name: this.name,
      topicKeys,
      identityFingerprint: keyFingerprint(
        material.mode === 'symmetric' ? material.key : ed25519PublicKey(material.privateKey),
      ),
      ...(material.mode === 'public-key'
        ? { c2Fingerprint: keyFingerprint(material.c2PublicKey) }
        : {}),
      active,
    };
  }

  async close(): Promise<void> {
    await this.goOffline();
  }
}
