/**
 * Delivery receipts: an opt-in extension (DESIGN R9, `docs/protocol-extensions.md`) by which a
 * device built on this library tells the C2 which command it applied, or refused and why.
 *
 * Receipt topic: `e4/receipts/<lowercase hex id>`. Receipt on the wire (68 bytes in version 1):
 * `ts(8, LE) || V(16) || C`, with `V || C = AES-SIV(K || K, AD = [ts, "e4-receipt", deviceId], body)`
 * where `K` is the device's command key (SK: its identity key; PK: the X25519-derived key).
 * Commands use `AD = [ts]`, so neither can ever be authenticated as the other.
 *
 * Body (44 bytes): `0x81 || status || commandByte || reason || commandTs(8) || commandId(16) ||
 * subject(16)`. Nothing in a receipt is derived from key material.
 */
import { requireBytes, requireString } from '../arguments.ts';
import { fromHex, isAllZero, toHex, writeUint64LE } from '../bytes.ts';
import { systemClock, unixSeconds, type Clock } from '../clock.ts';
import {
  CommandCode,
  encodeCommand,
  parseCommand,
  type Command,
  type CommandType,
} from '../commands.ts';
import { HASH_LEN, SK_OVERHEAD, TIMESTAMP_LEN } from '../constants.ts';
import { E4Error, E4ErrorCode, referenceError } from '../errors.ts';
import { sha3256 } from '../hash.ts';
import { sivKey, type SymKey } from '../protect.ts';
import { validateId } from '../validate.ts';

/** Prefix of every receipt topic; the device's lowercase hex id follows. */
export const RECEIPT_TOPIC_PREFIX = 'e4/receipts/';
/** First body byte of a version 1 receipt (never a command byte: those are 0x00 to 0x07). */
export const RECEIPT_VERSION = 0x81;
/** Length of a version 1 receipt body. */
export const RECEIPT_BODY_LEN = 44;
/** Length of a protected version 1 receipt: timestamp, tag and body. */
export const RECEIPT_LEN = SK_OVERHEAD + RECEIPT_BODY_LEN;
/** Longest protected receipt a receiver decrypts; anything longer is refused unread. */
export const RECEIPT_MAX_LEN = 256;
/** Length of a command id: SHA3-256 of the protected command, truncated like E4's hashes. */
export const COMMAND_ID_LEN = HASH_LEN;
/** The second associated-data string of every receipt: the domain separator. */
export const RECEIPT_LABEL: Uint8Array = new TextEncoder().encode('e4-receipt');
/** The command byte of a receipt whose command the device could not identify. */
export const RECEIPT_NO_COMMAND = 0xff;

/** Status byte values. */
export const ReceiptStatus = { applied: 0x00, rejected: 0x01 } as const;

/**
 * Why a command was refused: the device's {@link E4ErrorCode}, or `Other` (not an E4 error, for
 * example the device could not save its state; or a code without a number here).
 */
export type ReceiptReason = E4ErrorCode | 'Other';

/**
 * Reason byte of each error code (version 1). Numbers are wire format: never renumber; a new
 * error code gets a new number (until then it is sent as `Other`).
 */
export const ReceiptReasonCode: Readonly<Partial<Record<ReceiptReason, number>>> = {
  InvalidProtectedLen: 0x01,
  TooShortCiphertext: 0x02,
  TimestampInFuture: 0x03,
  TimestampTooOld: 0x04,
  NotAuthentic: 0x05,
  InvalidSignature: 0x06,
  PubKeyNotFound: 0x07,
  TopicKeyNotFound: 0x08,
  InvalidCommand: 0x09,
  InvalidCommandLength: 0x0a,
  UnsupportedOperation: 0x0b,
  UnknownPubKeyId: 0x0c,
  InvalidKey: 0x0d,
  InvalidID: 0x0e,
  InvalidName: 0x0f,
  InvalidTopic: 0x10,
  InvalidPassword: 0x11,
  InvalidOldTopicKeyLength: 0x12,
  InvalidState: 0x13,
  InvalidArgument: 0x14,
  PayloadTooLarge: 0x15,
  RotationPending: 0x16,
  NoRotationPending: 0x17,
  Other: 0xff,
};

const OTHER_REASON = 0xff;

const reasonByCode = new Map<number, ReceiptReason>(
  Object.entries(ReceiptReasonCode).map(([reason, code]) => [code, reason as ReceiptReason]),
);

const typeByCode = new Map<number, CommandType>(
  Object.entries(CommandCode).map(([type, code]) => [code, type as CommandType]),
);

/** Commands whose receipt carries a subject, and which argument it is. */
const SUBJECT_OF: Readonly<Partial<Record<CommandType, 'topicHash' | 'id'>>> = {
  RemoveTopic: 'topicHash',
  SetTopicKey: 'topicHash',
  RemovePubKey: 'id',
  SetPubKey: 'id',
};

/** What every receipt says about its command. */
export interface ReceiptCommand {
  /** {@link commandId} of the protected command exactly as the device received it (16 bytes). */
  readonly commandId: Uint8Array;
  /** The command's own timestamp (its first 8 bytes, unsigned LE), in Unix seconds. */
  readonly commandTime: bigint;
  /** The command type; `undefined` when the device could not identify it (byte 0xFF). */
  readonly commandType: CommandType | undefined;
  /**
   * The command's public 16-byte argument: the topic hash of RemoveTopic and SetTopicKey, the
   * peer id of RemovePubKey and SetPubKey. All zeros for other commands, and whenever the
   * device could not parse the arguments.
   */
  readonly subject: Uint8Array;
}

/** The content of a receipt, as given to {@link buildReceipt}. */
export type ReceiptFields = ReceiptCommand &
  (
    | { readonly status: 'applied' }
    /** `reasonCode`: 1..255, see {@link ReceiptReasonCode}. */
    | { readonly status: 'rejected'; readonly reasonCode: number }
  );

/** A decoded receipt body ({@link parseReceipt}); `reason` names `reasonCode`. */
export type Receipt = ReceiptCommand &
  (
    | { readonly status: 'applied' }
    | { readonly status: 'rejected'; readonly reasonCode: number; readonly reason: ReceiptReason }
  );

/** A verified receipt ({@link openReceipt}). */
export type OpenedReceipt = Receipt & {
  /** The device's clock when it sent the receipt (the protected timestamp), Unix seconds. */
  readonly deviceTime: bigint;
  /** Index of the candidate key that authenticated it (0 when one key was given). */
  readonly keyIndex: number;
};

function malformed(what: string): E4Error {
  return new E4Error(E4ErrorCode.InvalidCommand, `invalid receipt ${what}`);
}

function badLength(what: string): E4Error {
  return new E4Error(E4ErrorCode.InvalidCommandLength, `invalid receipt ${what} length`);
}

function readUint64LE(bytes: Uint8Array, offset: number): bigint {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getBigUint64(offset, true);
}

/** The receipt topic of a device: `e4/receipts/<lowercase hex id>`. @throws E4Error `InvalidID` */
export function receiptTopic(deviceId: Uint8Array): string {
  validateId(deviceId);
  return RECEIPT_TOPIC_PREFIX + toHex(deviceId);
}

/**
 * The device id named by a receipt topic (C2 side). Only `e4/receipts/` followed by exactly 32
 * lowercase hex characters is a receipt topic.
 * @throws E4Error `InvalidTopic` for anything else, `InvalidArgument` for a value that is not a
 *   string
 */
export function deviceIdFromReceiptTopic(topic: string): Uint8Array {
  requireString(topic, 'receipt topic');
  const hex = topic.startsWith(RECEIPT_TOPIC_PREFIX)
    ? topic.slice(RECEIPT_TOPIC_PREFIX.length)
    : '';
  if (!/^[0-9a-f]{32}$/.test(hex)) {
    throw new E4Error(E4ErrorCode.InvalidTopic, 'not a receipt topic');
  }
  return fromHex(hex);
}

/**
 * The id of a protected command: `SHA3-256(protected command)[0:16]`, over the exact wire bytes.
 * The C2 computes it when it sends a command (each attempt has its own, as each attempt has a
 * fresh timestamp) and matches receipts against it; it never needs to keep the bytes.
 */
export function commandId(protectedCommand: Uint8Array): Uint8Array {
  // node:crypto would hash a string as its UTF-8 bytes: an id no receipt ever matches.
  requireBytes(protectedCommand, 'protected command');
  return sha3256(protectedCommand).slice(0, COMMAND_ID_LEN);
}

/** The reason byte for an error a device met while processing a command (`Other` if none fits). */
export function receiptReasonCode(error: unknown): number {
  if (!(error instanceof E4Error)) return OTHER_REASON;
  return ReceiptReasonCode[error.code] ?? OTHER_REASON;
}

/** The name of a reason byte; bytes without a name are `Other`, as the receiver must read them. */
export function receiptReason(reasonCode: number): ReceiptReason {
  return reasonByCode.get(reasonCode) ?? 'Other';
}

/**
 * The subject a receipt gives for a parsed command (a copy; zeros when it has none).
 * @throws E4Error as {@link encodeCommand}: `InvalidCommand` for an unknown type,
 *   `InvalidCommandLength` or `InvalidArgument` for a missing or mistyped argument (plain
 *   JavaScript: `{}` had the subject of a command without one, zeros)
 */
export function receiptSubject(command: Command): Uint8Array {
  // The encoding holds a SetTopicKey's key: wiped at once.
  encodeCommand(command).fill(0);
  switch (command.type) {
    case 'RemoveTopic':
    case 'SetTopicKey':
      return new Uint8Array(command.topicHash);
    case 'RemovePubKey':
    case 'SetPubKey':
      return new Uint8Array(command.id);
    default:
      return new Uint8Array(HASH_LEN);
  }
}

/**
 * Decodes a receipt body strictly: exactly one encoding is valid for each receipt, so
 * `buildReceipt(parseReceipt(b))` gives `b` back.
 * @throws E4Error `InvalidCommandLength` (not 44 bytes) or `InvalidCommand` (unknown version,
 *   status or command byte; a reason that contradicts the status; an applied receipt without a
 *   command type; a non-zero subject for a command that has none); `InvalidArgument` when
 *   `body` is not a `Uint8Array`
 */
export function parseReceipt(body: Uint8Array): Receipt {
  requireBytes(body, 'receipt body');
  if (body.length !== RECEIPT_BODY_LEN) throw badLength('body');
  const [version, statusByte, typeByte, reasonCode] = body;
  if (version !== RECEIPT_VERSION) throw malformed('version');
  if (statusByte !== ReceiptStatus.applied && statusByte !== ReceiptStatus.rejected) {
    throw malformed('status');
  }
  const commandType = typeByte === undefined ? undefined : typeByCode.get(typeByte);
  if (commandType === undefined && typeByte !== RECEIPT_NO_COMMAND) throw malformed('command');
  const subject = body.slice(28, 44);
  const subjectOf = commandType === undefined ? undefined : SUBJECT_OF[commandType];
  if (subjectOf === undefined && !isAllZero(subject)) throw malformed('subject');
  const common: ReceiptCommand = {
    commandId: body.slice(12, 28),
    commandTime: readUint64LE(body, 4),
    commandType,
    subject,
  };
  if (statusByte === ReceiptStatus.applied) {
    if (reasonCode !== 0) throw malformed('reason');
    if (commandType === undefined) throw malformed('command');
    return { ...common, status: 'applied' };
  }
  if (reasonCode === undefined || reasonCode === 0) throw malformed('reason');
  return { ...common, status: 'rejected', reasonCode, reason: receiptReason(reasonCode) };
}

/**
 * Encodes a receipt body (44 bytes).
 * @throws E4Error `InvalidCommandLength` (command id or subject not 16 bytes), `InvalidCommand`
 *   (an unknown status or command type, a time outside uint64, a reason outside 1..255, or
 *   anything {@link parseReceipt} refuses), `InvalidArgument` (a field of the wrong type)
 */
export function buildReceipt(fields: ReceiptFields): Uint8Array {
  // Checked by name, not looked up: plain JavaScript can give any string, and a lookup that
  // misses would write 0x00, a valid status and a valid command byte (RemoveTopic).
  if (!Object.hasOwn(ReceiptStatus, fields.status)) throw malformed('status');
  if (fields.commandType !== undefined && !Object.hasOwn(CommandCode, fields.commandType)) {
    throw malformed('command');
  }
  requireBytes(fields.commandId, 'receipt command id');
  requireBytes(fields.subject, 'receipt subject');
  if (typeof fields.commandTime !== 'bigint') {
    throw new E4Error(E4ErrorCode.InvalidArgument, 'receipt command time must be a bigint');
  }
  if (fields.commandId.length !== COMMAND_ID_LEN) throw badLength('command id');
  if (fields.subject.length !== HASH_LEN) throw badLength('subject');
  if (fields.commandTime < 0n || fields.commandTime >= 1n << 64n) throw malformed('command time');
  const reasonCode = fields.status === 'applied' ? 0 : fields.reasonCode;
  if (!Number.isInteger(reasonCode) || reasonCode < 0 || reasonCode > 0xff) {
    throw malformed('reason');
  }
  const body = new Uint8Array(RECEIPT_BODY_LEN);
  body[0] = RECEIPT_VERSION;
  body[1] = ReceiptStatus[fields.status];
  body[2] = fields.commandType === undefined ? RECEIPT_NO_COMMAND : CommandCode[fields.commandType];
  body[3] = reasonCode;
  body.set(writeUint64LE(fields.commandTime), 4);
  body.set(fields.commandId, 12);
  body.set(fields.subject, 28);
  parseReceipt(body); // the single source of truth for what is valid
  return body;
}

function isKeyList(keys: SymKey | readonly SymKey[]): keys is readonly SymKey[] {
  return Array.isArray(keys);
}

function associatedData(ts: Uint8Array, deviceId: Uint8Array): Uint8Array[] {
  return [ts, RECEIPT_LABEL, deviceId];
}

/**
 * Protects a receipt with the device's command key, stamped with `timestampSeconds`.
 * @throws E4Error `InvalidID`, `InvalidKey`, or what {@link buildReceipt} throws
 */
export function protectReceiptAt(
  fields: ReceiptFields,
  deviceId: Uint8Array,
  commandKey: SymKey,
  timestampSeconds: bigint,
): Uint8Array {
  validateId(deviceId);
  const body = buildReceipt(fields);
  const ts = writeUint64LE(timestampSeconds);
  const sealed = sivKey(commandKey).seal(associatedData(ts, deviceId), body);
  const out = new Uint8Array(TIMESTAMP_LEN + sealed.length);
  out.set(ts, 0);
  out.set(sealed, TIMESTAMP_LEN);
  return out;
}

/**
 * Protects a receipt with the device's command key (device side), stamped with the clock's
 * current second. `commandKey` is the key the device holds *after* processing the command: the
 * new one after an applied SetIDKey (SK and PK) or SetC2Key (PK).
 * @throws E4Error `InvalidID`, `InvalidKey`, or what {@link buildReceipt} throws
 */
export function protectReceipt(
  fields: ReceiptFields,
  deviceId: Uint8Array,
  commandKey: SymKey,
  clock: Clock = systemClock,
): Uint8Array {
  return protectReceiptAt(fields, deviceId, commandKey, unixSeconds(clock));
}

/**
 * Verifies and decodes a receipt (C2 side). `deviceId` is the id of the receipt topic it came
 * from; `commandKeys` is the device's command key, or several candidates (during an identity or
 * C2 key change the receipt of the changing command is under the new key): the first that
 * authenticates wins. No time window is applied: the device's clock is reported as `deviceTime`
 * and a replayed receipt only repeats a true statement about one command attempt.
 * @throws E4Error `InvalidID`, `InvalidKey` (no key or a bad key), `TooShortCiphertext` (24 bytes
 *   or fewer), `InvalidCommandLength` (longer than 256 bytes), `NotAuthentic` (no key
 *   authenticates it for this device), or what {@link parseReceipt} throws
 */
export function openReceipt(
  receipt: Uint8Array,
  deviceId: Uint8Array,
  commandKeys: SymKey | readonly SymKey[],
): OpenedReceipt {
  requireBytes(receipt, 'receipt');
  validateId(deviceId);
  const keys = isKeyList(commandKeys) ? commandKeys : [commandKeys];
  if (keys.length === 0) throw new E4Error(E4ErrorCode.InvalidKey, 'no receipt key given');
  if (receipt.length <= SK_OVERHEAD) throw referenceError('TooShortCiphertext');
  if (receipt.length > RECEIPT_MAX_LEN) throw badLength('protected');
  const ts = receipt.subarray(0, TIMESTAMP_LEN);
  const ad = associatedData(ts, deviceId);
  const sealed = receipt.subarray(TIMESTAMP_LEN);
  for (const [keyIndex, key] of keys.entries()) {
    let body: Uint8Array;
    try {
      body = sivKey(key).open(ad, sealed);
    } catch (err) {
      if (E4Error.is(err, E4ErrorCode.NotAuthentic)) continue;
      throw err;
    }
    return { ...parseReceipt(body), deviceTime: readUint64LE(receipt, 0), keyIndex };
  }
  throw referenceError('NotAuthentic');
}

/**
 * The receipt of a command the device applied.
 * @throws E4Error `TooShortCiphertext` for bytes too short to be a protected command,
 *   `InvalidArgument` when they are not a `Uint8Array`
 */
export function appliedReceipt(protectedCommand: Uint8Array, command: Command): ReceiptFields {
  requireBytes(protectedCommand, 'protected command');
  if (protectedCommand.length <= SK_OVERHEAD) throw referenceError('TooShortCiphertext');
  return {
    status: 'applied',
    commandId: commandId(protectedCommand),
    commandTime: readUint64LE(protectedCommand, 0),
    commandType: command.type,
    subject: receiptSubject(command),
  };
}

/**
 * The receipt of a command the device refused with `error`, or `undefined` when the message is
 * not an authentic command under `commandKey` (the key the device holds; a refused command
 * changes nothing). Authenticity is checked here, whatever the timestamp, so that a stale or
 * early command still gets a receipt while nobody without the key can make a device answer.
 */
export function rejectedReceipt(
  protectedCommand: Uint8Array,
  commandKey: SymKey,
  error: unknown,
): ReceiptFields | undefined {
  requireBytes(protectedCommand, 'protected command');
  if (protectedCommand.length < SK_OVERHEAD) return undefined;
  const ts = protectedCommand.subarray(0, TIMESTAMP_LEN);
  let clear: Uint8Array;
  try {
    clear = sivKey(commandKey).open([ts], protectedCommand.subarray(TIMESTAMP_LEN));
  } catch {
    return undefined;
  }
  let commandType: CommandType | undefined;
  let subject: Uint8Array = new Uint8Array(HASH_LEN);
  try {
    const command = parseCommand(clear);
    commandType = command.type;
    subject = receiptSubject(command);
  } catch {
    // Unknown command byte, or the right byte with the wrong length: report what is known.
    commandType = clear[0] === undefined ? undefined : typeByCode.get(clear[0]);
  } finally {
    clear.fill(0); // it may hold a key
  }
  return {
    status: 'rejected',
    reasonCode: receiptReasonCode(error),
    commandId: commandId(protectedCommand),
    commandTime: readUint64LE(protectedCommand, 0),
    commandType,
    subject,
  };
}
