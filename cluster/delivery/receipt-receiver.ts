/**
 * The C2 end of delivery receipts (the opt-in extension of docs/protocol-extensions.md, DESIGN
 * R9): receipts arrive on `e4/receipts/<hex id>` — through a shared subscription in a cluster, so
 * one process handles each — are authenticated with the device's command key, confirm the
 * command they name (rotation status then tells "confirmed by the device" from "accepted by the
 * broker"), and mark the device seen: a device whose delivery had failed is retried at once.
 */
import mqtt, { type MqttClient } from 'mqtt';
import {
  commandKeyForClient,
  deviceIdFromReceiptTopic,
  E4Error,
  openReceipt,
  RECEIPT_MAX_LEN,
  RECEIPT_TOPIC_PREFIX,
  toHex,
} from '../../e4/index.ts';
import { bindings, type KeySealer } from '../domain/index.ts';
import { C2Error } from '../errors.ts';
import type {
  C2Store,
  ClientRow,
  CommandConfirmation,
  DeliveryRepository,
} from '../storage/index.ts';

/** Options of {@link ReceiptReceiver.start}. */
export interface ReceiptReceiverOptions {
  readonly url: string;
  readonly clientId: string;
  readonly username?: string;
  readonly password?: string;
  /** Use the shared subscription `$share/<group>/...` (several processes). */
  readonly shareGroup?: string;
  readonly store: C2Store;
  readonly delivery: DeliveryRepository;
  readonly sealer: KeySealer;
  readonly mode: 'symkey' | 'pubkey';
  /** A device whose delivery had failed was seen: schedule it. */
  readonly retry: (clientId: string) => void;
  /** Most receipts handled at once; beyond `maxQueued` waiting, receipts are dropped (counted). */
  readonly concurrency?: number;
  readonly maxQueued?: number;
  readonly onError: (err: unknown, context: string) => void;
  /** Observes every handled receipt (tests, metrics). */
  readonly onReceipt?: (event: ReceiptEvent) => void;
}

/** What happened to one receipt. */
export interface ReceiptEvent {
  readonly outcome:
    | 'confirmed'
    | 'applied'
    | 'rejected'
    | 'unknown-device'
    | 'not-authentic'
    | 'malformed'
    | 'dropped';
  readonly clientId?: string;
  readonly reason?: string;
}

/** Receives receipts and confirms deliveries. */
export class ReceiptReceiver {
  readonly #queue: Array<{ topic: string; payload: Uint8Array }> = [];
  #active = 0;
  #closed: Promise<void> | undefined;

  private constructor(
    private readonly client: MqttClient,
    private readonly options: ReceiptReceiverOptions,
  ) {}

  /** The subscription filter: every device's receipt topic. */
  static filter(shareGroup?: string): string {
    const plain = `${RECEIPT_TOPIC_PREFIX}+`;
    return shareGroup === undefined ? plain : `$share/${shareGroup}/${plain}`;
  }

  /**
   * Connects and subscribes (QoS 1).
   * @throws C2Error `C2_UNAVAILABLE` when the broker cannot be reached
   */
  static async start(options: ReceiptReceiverOptions): Promise<ReceiptReceiver> {
    let client: MqttClient;
    try {
      client = await mqtt.connectAsync(options.url, {
        clientId: options.clientId,
        clean: true,
        reconnectPeriod: 1000,
        connectTimeout: 5000,
        ...(options.username === undefined ? {} : { username: options.username }),
        ...(options.password === undefined ? {} : { password: options.password }),
      });
    } catch (cause) {
      throw new C2Error(
        'C2_UNAVAILABLE',
        `cannot reach the MQTT broker at ${new URL(options.url).host} (receipts)`,
        { cause },
      );
    }
    client.on('error', () => undefined);
    const receiver = new ReceiptReceiver(client, options);
    client.on('message', (topic, payload) => {
      // Receipts are small by design: anything larger is refused before it is copied, queued or
      // looked up, so that a flood of broker-maximum messages on the topic costs no memory.
      if (payload.length > RECEIPT_MAX_LEN) {
        options.onReceipt?.({ outcome: 'malformed', reason: 'oversized' });
        return;
      }
      receiver.#enqueue(topic, new Uint8Array(payload));
    });
    // clean sessions lose subscriptions on reconnect: subscribe again every time.
    client.on('connect', () => {
      void client
        .subscribeAsync(ReceiptReceiver.filter(options.shareGroup), { qos: 1 })
        .catch((err: unknown) => {
          options.onError(err, 'receipt subscription');
        });
    });
    await client.subscribeAsync(ReceiptReceiver.filter(options.shareGroup), { qos: 1 });
    return receiver;
  }

  #enqueue(topic: string, payload: Uint8Array): void {
    if (this.#queue.length >= (this.options.maxQueued ?? 10_000)) {
      this.options.onReceipt?.({ outcome: 'dropped' });
      return;
    }
    this.#queue.push({ topic, payload });
    this.#pump();
  }

  #pump(): void {
    while (this.#active < (this.options.concurrency ?? 16) && this.#queue.length > 0) {
      const next = this.#queue.shift();
      if (next === undefined) return;
      this.#active++;
      void this.#handle(next.topic, next.payload)
        .catch((err: unknown) => {
          this.options.onError(err, 'receipt');
        })
        .finally(() => {
          this.#active--;
          this.#pump();
        });
    }
  }

  /**
   * Candidate command keys: identity versions the device may hold × C2 key versions (PK). The
   * version just superseded is one of them: a receipt for a command under the old key can arrive
   * after the new key's delivery was recorded (a SetTopicKey, then at once a SetIDKey).
   */
  async #candidateKeys(client: ClientRow): Promise<Uint8Array[]> {
    const previous = (version: number): number[] => (version > 1 ? [version - 1] : []);
    const versions = [
      ...new Set([
        client.deliveredKeyVersion,
        client.keyVersion,
        ...previous(client.deliveredKeyVersion),
      ]),
    ];
    const keys: Uint8Array[] = [];
    const c2Versions = new Set<number>();
    if (this.options.mode === 'pubkey') {
      if (client.c2KeyVersion !== null) {
        c2Versions.add(client.c2KeyVersion);
        for (const v of previous(client.c2KeyVersion)) c2Versions.add(v);
      }
      const latest = await this.options.store.read.journal.latestC2Key();
      if (latest !== undefined) c2Versions.add(latest.version);
    }
    for (const version of versions) {
      const row = await this.options.store.read.clients.key(client.id, version);
      if (row === undefined) continue;
      if (this.options.mode === 'symkey') {
        keys.push(
          await this.options.sealer.open(row.sealed, bindings.clientKey(client.id, version)),
        );
        continue;
      }
      if (row.publicKey === null) continue;
      for (const c2Version of c2Versions) {
        const c2 = await this.options.store.read.journal.c2Key(c2Version);
        if (c2 === undefined) continue;
        const priv = await this.options.sealer.open(c2.sealedPrivate, bindings.c2Key(c2Version));
        try {
          keys.push(commandKeyForClient(priv, row.publicKey));
        } finally {
          priv.fill(0);
        }
      }
    }
    return keys;
  }

  async #handle(topic: string, payload: Uint8Array): Promise<void> {
    let deviceId: Uint8Array;
    try {
      deviceId = deviceIdFromReceiptTopic(topic);
    } catch {
      this.options.onReceipt?.({ outcome: 'malformed' });
      return;
    }
    const found = await this.options.delivery.clientByE4Id(deviceId);
    const client =
      found === undefined ? undefined : await this.options.store.read.clients.byId(found.id);
    if (client === undefined) {
      this.options.onReceipt?.({ outcome: 'unknown-device', reason: toHex(deviceId) });
      return;
    }
    const keys = await this.#candidateKeys(client);
    let receipt;
    try {
      receipt = openReceipt(payload, deviceId, keys);
    } catch (err) {
      const outcome =
        E4Error.is(err, 'NotAuthentic') || E4Error.is(err, 'InvalidKey')
          ? 'not-authentic'
          : 'malformed';
      // Counted only. A device that holds a key the C2 does not know never sends a receipt (it
      // answers only commands it could authenticate), so such receipts are forgeries (anyone
      // who may publish on the topic can send bytes) or from keys older than those tried: an
      // event here would page operators about healthy devices.
      this.options.onReceipt?.({ outcome, clientId: client.id });
      return;
    } finally {
      for (const key of keys) key.fill(0);
    }
    if (await this.options.delivery.markSeen(client.id)) this.options.retry(client.id);
    if (receipt.status === 'rejected') {
      // A rejected topic key names its rollout, as a confirmation does: operators look for it there.
      const subject = await this.options.delivery.commandSubject(client.id, receipt.commandId);
      await this.options.delivery.markRejected(
        client.id,
        receipt.reason,
        receipt.commandType ?? 'unknown',
      );
      await this.options.store.read.journal.event({
        type: 'delivery.rejected',
        clientName: client.name,
        ...(subject === undefined ? {} : { topic: subject.topic, keyVersion: subject.version }),
        details: { reason: receipt.reason, command: receipt.commandType ?? 'unknown' },
      });
      this.options.onReceipt?.({
        outcome: 'rejected',
        clientId: client.id,
        reason: receipt.reason,
      });
      return;
    }
    // A receipt can overtake the PUBACK: the command is then not recorded yet; look again shortly.
    let confirmation: CommandConfirmation = { status: 'unmatched' };
    for (const waitMs of [0, 250, 1000, 3000]) {
      if (waitMs > 0) await new Promise((resolve) => setTimeout(resolve, waitMs));
      confirmation = await this.options.delivery.confirmCommand(client.id, receipt.commandId);
      if (confirmation.status !== 'unmatched' || receipt.commandType !== 'SetTopicKey') break;
    }
    const confirmed = confirmation.status === 'confirmed';
    if (confirmation.status === 'confirmed') {
      // The confirmation is one idempotent statement; its event follows it (a lost event here
      // only hides a confirmation the rotation status still shows). It names the rollout.
      await this.options.store.read.journal.event({
        type: 'delivery.confirmed',
        clientName: client.name,
        ...(confirmation.topic === undefined ? {} : { topic: confirmation.topic }),
        ...(confirmation.version === undefined ? {} : { keyVersion: confirmation.version }),
        details: { command: receipt.commandType ?? 'unknown' },
      });
    }
    this.options.onReceipt?.({ outcome: confirmed ? 'confirmed' : 'applied', clientId: client.id });
  }

  /** Whether the receipts connection to the broker is up (`c2_mqtt_connected{client="receipts"}`). */
  get connected(): boolean {
    return this.client.connected;
  }

  /** Unsubscribes and disconnects; idempotent. */
  close(): Promise<void> {
    this.#closed ??= this.client.endAsync().catch(() => undefined);
    return this.#closed;
  }
}
