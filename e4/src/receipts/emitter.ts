/**
 * The device side of delivery receipts, as used by {@link E4Client} when its `receipts` option is
 * set (off by default). See `docs/protocol-extensions.md`.
 */
import type { AesSivKey } from '../aes-siv.ts';
import type { Clock } from '../clock.ts';
import type { Command } from '../commands.ts';
import { requireFunction, requireObject, requireString } from '../arguments.ts';
import { E4Error, E4ErrorCode } from '../errors.ts';
import {
  appliedReceipt,
  protectReceipt,
  receiptTopic,
  rejectedReceipt,
  type ReceiptFields,
} from './receipt.ts';

/** Opt-in delivery receipts of an {@link E4Client}. */
export interface ReceiptOptions {
  /**
   * Sends one protected receipt; typically an MQTT publish with QoS 1 and retain false. Called
   * once per receipt, in the order the commands were processed, before `unprotect` returns;
   * command processing never waits for the returned promise. A throw or a rejection goes to
   * `onError` and never changes the outcome of the command. Any other return value is ignored, so
   * mqtt.js's `client.publish` (which returns the client) can be passed through as is.
   */
  readonly publish: (topic: string, payload: Uint8Array) => void | Promise<void>;
  /**
   * Also send a receipt when the device refuses an *authentic* command (stale or early
   * timestamp, malformed or unsupported command, bad key, failed save). Default false. Messages
   * that are not authentic under the command key never get one.
   */
  readonly rejections?: boolean;
  /** Where receipts go (default `e4/receipts/<hex id>`). */
  readonly topic?: string;
  /** Told about a receipt that could not be built or published (default: ignored). */
  readonly onError?: (error: unknown) => void;
}

/** What the client knows when a command has been processed. */
export interface ReceiptContext {
  readonly deviceId: Uint8Array;
  /** The command key the device holds now (after the command). */
  readonly commandKey: AesSivKey;
  /**
   * During the device's own identity key rotation, the command key of its pending key: a refused
   * command authentic under it (the C2 already uses the new key) gets its receipt under it.
   */
  readonly pendingCommandKey?: AesSivKey;
  readonly clock: Clock;
}

/** Builds, protects and publishes receipts; never throws into command processing. */
export class ReceiptEmitter {
  readonly #options: ReceiptOptions;

  /**
   * Checks the options once, at client creation: every receipt goes through them, and a fault
   * here would only ever reach `onError`, which is optional, so a device would send no receipt
   * and nobody would know.
   * @throws E4Error `InvalidArgument` (options or `publish` missing, a callback that is not a
   *   function), `InvalidTopic` (an empty `topic`)
   */
  constructor(options: ReceiptOptions) {
    requireObject(options, 'receipts');
    requireFunction(options.publish, 'receipts.publish');
    if (options.onError !== undefined) requireFunction(options.onError, 'receipts.onError');
    if (options.topic !== undefined) {
      requireString(options.topic, 'receipts.topic');
      if (options.topic.length === 0) {
        throw new E4Error(E4ErrorCode.InvalidTopic, 'receipts.topic must not be empty');
      }
    }
    this.#options = options;
  }

  /** Sends the receipt of an applied command. */
  applied(protectedCommand: Uint8Array, command: Command, context: ReceiptContext): void {
    this.#send(() => appliedReceipt(protectedCommand, command), context);
  }

  /** Sends the receipt of a refused command, if rejections are on and the command is authentic. */
  rejected(protectedCommand: Uint8Array, error: unknown, context: ReceiptContext): void {
    if (this.#options.rejections !== true) return;
    // Refused as not authentic under the key the device still holds: it would fail again.
    if (E4Error.is(error, E4ErrorCode.NotAuthentic)) return;
    const pending = context.pendingCommandKey;
    this.#send(() => rejectedReceipt(protectedCommand, context.commandKey, error), context);
    // Two different keys: a command authenticates under one of them at most, so one receipt.
    if (pending !== undefined)
      this.#send(() => rejectedReceipt(protectedCommand, pending, error), {
        ...context,
        commandKey: pending,
      });
  }

  #send(fields: () => ReceiptFields | undefined, context: ReceiptContext): void {
    try {
      const receipt = fields();
      if (receipt === undefined) return;
      const payload = protectReceipt(receipt, context.deviceId, context.commandKey, context.clock);
      // Typed `void | Promise<void>`, but TypeScript lets any function stand in for one returning
      // void: mqtt.js's `client.publish` returns the client, others return `true`. Promise.resolve
      // adopts a thenable, wraps anything else and never throws (a throwing `then` becomes a
      // rejection), so no return value can reach the outcome of the command.
      const pending: unknown = this.#options.publish(
        this.#options.topic ?? receiptTopic(context.deviceId),
        payload,
      );
      if (pending !== undefined) {
        Promise.resolve(pending).catch((err: unknown) => {
          this.#report(err);
        });
      }
    } catch (err) {
      this.#report(err);
    }
  }

  #report(error: unknown): void {
    try {
      this.#options.onError?.(error);
    } catch {
      // An error handler that throws must not break command processing either.
    }
  }
}
