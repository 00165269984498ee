/** {@link CommandPublisher} over MQTT (mqtt.js): QoS 1, not retained, PUBACK awaited with a timeout. */
import type { Socket } from 'node:net';
import mqtt, { type MqttClient } from 'mqtt';
import { C2Error } from '../errors.ts';
import type { CommandPublisher } from './publisher.ts';

/** Options of {@link MqttCommandPublisher.connect}. */
export interface MqttPublisherOptions {
  readonly url: string;
  /** Unique per process: two processes with one client id would disconnect each other. */
  readonly clientId: string;
  readonly username?: string;
  readonly password?: string;
  readonly pubackTimeoutMs: number;
  readonly connectTimeoutMs?: number;
  /** Told each time a stalled connection is reset (see `timedOut`): operators should know. */
  readonly onStalledReset?: () => void;
  /**
   * Told each time mqtt.js connects again after losing the connection: work deferred while it
   * was down (see `wasNotSent`) can go out now rather than at the next sweep.
   */
  readonly onReconnect?: () => void;
  /**
   * MQTT keep-alive in seconds (mqtt.js's default is 60). The broker drops a connection it heard
   * nothing on for 1.5 times this, and then refuses whatever still arrives on it: see
   * {@link publisherKeepaliveSeconds}.
   */
  readonly keepaliveSeconds?: number;
}

/**
 * The keep-alive that makes a dead node's unsent commands harmless. A node killed while its link
 * to the broker is cut leaves its socket to the kernel, which keeps sending what it held once the
 * link heals (the process is gone: nothing can reset it). Another node may send the same devices
 * newer keys once the dead node's claims expire, at least two thirds of the claim TTL after its
 * last renewal. If the broker has dropped the old connection by then (1.5 x keep-alive after it
 * last heard from it), the late bytes are refused. So 1.5 x keep-alive stays under two thirds of
 * the TTL: at most 4/9 of it, but at least 5 s (a shorter one could trip on a slow broker) and at
 * most mqtt.js's 60 s.
 */
export function publisherKeepaliveSeconds(claimTtlMs: number): number {
  return Math.min(60, Math.max(5, Math.floor((claimTtlMs * 4) / 9 / 1000)));
}

/** Thrown when the broker's PUBACK did not arrive in time (metrics count it as a timeout). */
export class PubackTimeoutError extends Error {
  constructor(timeoutMs: number) {
    super(`no PUBACK within ${timeoutMs} ms`);
    this.name = 'PubackTimeoutError';
  }
}

/**
 * Thrown when a publish cannot be handed to the broker (not connected, or the connection failed
 * under it): a stable name, so spans and logs label it without its message.
 */
export class BrokerUnavailableError extends Error {
  /** Nothing was handed to the broker (see `wasNotSent`): false once it may have been. */
  readonly notSent: boolean;

  constructor(message: string, options?: ErrorOptions & { readonly notSent?: boolean }) {
    super(message, options);
    this.name = 'BrokerUnavailableError';
    this.notSent = options?.notSent === true;
  }
}

/** Thrown when a publish is asked of a publisher that is closing or closed (nothing sent). */
export class PublisherClosedError extends Error {
  readonly notSent = true;

  constructor() {
    super('publisher closed');
    this.name = 'PublisherClosedError';
  }
}

/** Whether a publish failure (or its message, as delivery attempts report it) was a timeout. */
export function isPubackTimeout(err: unknown): boolean {
  const message = err instanceof Error ? err.message : String(err);
  return err instanceof PubackTimeoutError || message.startsWith('no PUBACK within');
}

/**
 * mqtt.js logs through `debug` about twenty times per QoS 1 publish and its PUBACK, and even
 * disabled those calls cost a few percent of a fan-out's CPU; so they go to a no-op unless an
 * operator asked for them the `debug` way (`DEBUG=mqttjs*`).
 */
function mqttLogOption(): { log?: () => void } {
  return /mqttjs/.test(process.env.DEBUG ?? '') ? {} : { log: () => undefined };
}

// mqtt.js calls back with `null` (not undefined) on success.
type PublishCallback = (err?: Error | null) => void;

/** Options of every command publish (mqtt.js copies them; one shared object is enough). */
const PUBLISH_OPTIONS = { qos: 1, retain: false } as const;

/**
 * One publish awaiting its PUBACK. A class with a bound callback rather than closures: the
 * loader (tsx, esbuild with `keepNames`) wraps every named closure in an `Object.defineProperty`
 * call, which cost about 3 % of a fan-out's CPU in the node when made for each message.
 */
class PendingPublish {
  #settled = false;
  timer: NodeJS.Timeout | undefined;
  /** What mqtt.js calls back; also how an abandoned message is found in its store. */
  readonly callback: PublishCallback;

  constructor(
    readonly owner: PublishOwner,
    /** Order in which publishes were handed to the connection. */
    readonly seq: number,
    /** The connection (mqtt.js stream) it was handed to. */
    readonly stream: unknown,
    private readonly resolve: () => void,
    readonly reject: (err: Error) => void,
  ) {
    this.callback = this.#onCallback.bind(this);
  }

  /** Settles once: @returns false when it already had. */
  settle(): boolean {
    if (this.#settled) return false;
    this.#settled = true;
    clearTimeout(this.timer);
    this.owner.settled();
    return true;
  }

  #onCallback(err?: Error | null): void {
    if (!this.settle()) return;
    if (err === undefined || err === null) {
      this.owner.acknowledged(this.seq);
      this.resolve();
    } else this.reject(namedFailure(err));
  }
}

/**
 * mqtt.js fails a publish with a plain `Error` when its connection goes (`Connection closed`,
 * `client disconnecting`): named here so it is not labelled just `Error`; anything with its own
 * name or code (a v5 reason code) is kept as it is.
 */
function namedFailure(err: Error): Error {
  if (err.name !== 'Error' || (err as { code?: unknown }).code !== undefined) return err;
  return new BrokerUnavailableError(err.message, { cause: err });
}

/** What a {@link PendingPublish} reports to its publisher. */
interface PublishOwner {
  /** Called once per publish, when it settles (acknowledged, failed or timed out). */
  settled(): void;
  /** The broker acknowledged the publish handed over `seq`-th. */
  acknowledged(seq: number): void;
  /** The publish got no PUBACK in time (already settled): drop it and tell the caller. */
  timedOut(pending: PendingPublish): void;
}

/** The PUBACK timer of a publish (module level: one function for every publish). */
function onPubackTimeout(pending: PendingPublish): void {
  if (pending.settle()) pending.owner.timedOut(pending);
}

/**
 * Commands are published QoS 1 with retain off: a retained command would be replayed to the
 * device on every reconnect, and a replayed ResetTopics would wipe keys delivered since.
 */
export class MqttCommandPublisher implements CommandPublisher {
  #closed: Promise<void> | undefined;
  /** Publishes not settled yet (acknowledged, failed or timed out). */
  #inFlight = 0;
  /** Called when the last publish in flight settles (close waits for it). */
  #onDrained: (() => void) | undefined;
  /** Publishes handed to the connection so far, and the latest of them acknowledged. */
  #handedOver = 0;
  #latestAcknowledged = 0;
  /** Made once: what every publish reports back to. */
  readonly #owner: PublishOwner = {
    settled: () => {
      if (--this.#inFlight === 0) this.#onDrained?.();
    },
    acknowledged: (seq) => {
      if (seq > this.#latestAcknowledged) this.#latestAcknowledged = seq;
    },
    timedOut: (pending) => {
      this.#forget(pending.callback);
      // A PUBACK for anything handed over after it proves its bytes reached the broker (one TCP
      // stream, read in order): only its PUBACK was lost. Otherwise its bytes may still wait in
      // this host's socket buffer while the link is cut, and would reach the broker whenever the
      // link comes back — after a newer command that another node sent the device meanwhile.
      // Only the connection it was handed to: a newer one (mqtt.js reconnected) holds none of it.
      if (this.#latestAcknowledged < pending.seq && pending.stream === this.client.stream)
        this.#resetStalledConnection();
      pending.reject(new PubackTimeoutError(this.pubackTimeoutMs));
    },
  };

  private constructor(
    private readonly client: MqttClient,
    private readonly pubackTimeoutMs: number,
    private readonly onStalledReset: () => void,
  ) {}

  /**
   * Connects to the broker and waits for the first CONNACK.
   * @throws C2Error `C2_UNAVAILABLE` ("cannot reach the MQTT broker at ...")
   */
  static async connect(options: MqttPublisherOptions): Promise<MqttCommandPublisher> {
    const client = mqtt.connect(options.url, {
      clientId: options.clientId,
      clean: true,
      reconnectPeriod: 1000,
      connectTimeout: options.connectTimeoutMs ?? 5000,
      ...(options.keepaliveSeconds === undefined ? {} : { keepalive: options.keepaliveSeconds }),
      queueQoSZero: false,
      // The keep-alive ping goes out on its fixed schedule: by default mqtt.js moves its timer
      // (a clearTimeout and a setTimeout) on every PUBACK, once per command in a fan-out.
      reschedulePings: false,
      ...mqttLogOption(),
      ...(options.username === undefined ? {} : { username: options.username }),
      ...(options.password === undefined ? {} : { password: options.password }),
    });
    try {
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => {
          reject(new Error('connect timeout'));
        }, options.connectTimeoutMs ?? 5000);
        client.once('connect', () => {
          clearTimeout(timer);
          resolve();
        });
        client.once('error', (err) => {
          clearTimeout(timer);
          reject(err);
        });
      });
    } catch (cause) {
      client.end(true);
      throw new C2Error(
        'C2_UNAVAILABLE',
        `cannot reach the MQTT broker at ${new URL(options.url).host}`,
        { cause },
      );
    }
    // Later errors surface as failed publishes; without a listener they would crash the process.
    client.on('error', () => undefined);
    const onReconnect = options.onReconnect;
    if (onReconnect !== undefined)
      client.on('connect', () => {
        onReconnect();
      });
    return new MqttCommandPublisher(
      client,
      options.pubackTimeoutMs,
      options.onStalledReset ?? (() => undefined),
    );
  }

  /**
   * True while connected to the broker (readiness). False from the moment a stalled connection
   * is reset: mqtt.js learns of it only when the socket's close event arrives, and a publish
   * until then would wait out its PUBACK timeout on a connection already gone.
   */
  get connected(): boolean {
    return (
      this.client.connected && (this.client.stream as { destroyed?: boolean }).destroyed !== true
    );
  }

  /** Publishes in flight (awaiting their PUBACK or their timeout). */
  get inFlight(): number {
    return this.#inFlight;
  }

  /**
   * Publishes QoS 1 and resolves on the PUBACK.
   * The payload is sent as is, not copied: it must not change until the promise settles.
   * @throws PubackTimeoutError when no PUBACK arrives within the timeout; the message is then
   *   dropped from the client's store, so it is never resent later
   */
  publish(topic: string, payload: Uint8Array): Promise<void> {
    if (this.#closed !== undefined) return Promise.reject(new PublisherClosedError());
    if (!this.connected)
      return Promise.reject(
        new BrokerUnavailableError('MQTT broker not connected', { notSent: true }),
      );
    this.#inFlight++;
    return new Promise<void>((resolve, reject) => {
      const pending = new PendingPublish(
        this.#owner,
        ++this.#handedOver,
        this.client.stream,
        resolve,
        reject,
      );
      pending.timer = setTimeout(onPubackTimeout, this.pubackTimeoutMs, pending);
      const view = Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength);
      this.client.publish(topic, view, PUBLISH_OPTIONS, pending.callback);
    });
  }

  /**
   * Closes the connection with a TCP reset, which discards whatever it has not sent yet (a plain
   * close would keep sending it in the background), and lets mqtt.js connect again. Publishes
   * still in flight on it fail with their timeout or are resent by mqtt.js on the new connection,
   * as after any lost connection. Over TLS (no reset on a TLS handle) it is a plain close.
   */
  #resetStalledConnection(): void {
    const stream = this.client.stream as Partial<Socket> & { destroyed?: boolean };
    if (stream.destroyed === true) return;
    this.onStalledReset();
    try {
      if (typeof stream.resetAndDestroy !== 'function') throw new Error('not a TCP socket');
      stream.resetAndDestroy();
    } catch {
      stream.destroy?.();
    }
  }

  /** Drops an abandoned message from mqtt.js's outgoing store so it is never resent later. */
  #forget(callback: PublishCallback): void {
    const outgoing = (
      this.client as unknown as { outgoing: Record<string, { cb: unknown } | undefined> }
    ).outgoing;
    for (const [id, entry] of Object.entries(outgoing)) {
      if (entry?.cb === callback) this.client.removeOutgoingMessage(Number(id));
    }
  }

  /**
   * Refuses new publishes, waits for those in flight to settle (each is bounded by the PUBACK
   * timeout), then disconnects; idempotent. Waiting here rather than in mqtt.js: its graceful
   * end waits for an empty store and never learns that a timed-out message was dropped from it.
   */
  close(): Promise<void> {
    this.#closed ??= (async () => {
      if (this.#inFlight > 0) {
        await new Promise<void>((resolve) => {
          this.#onDrained = resolve;
        });
      }
      await this.client.endAsync().catch(() => undefined);
    })();
    return this.#closed;
  }
}
