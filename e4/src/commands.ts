/**
 * The eight C2 commands: encoding, strict parsing and protection (e4go `commands.go`).
 *
 * Wire form before protection: one command byte, then fixed-length arguments. Note the argument
 * order of the reference: SetTopicKey is `key || topicHash`, SetPubKey is `publicKey || id`.
 */
import { requireBytes, requireObject } from './arguments.ts';
import { concatBytes } from './bytes.ts';
import type { Clock } from './clock.ts';
import {
  CURVE25519_LEN,
  ED25519_PRIV_LEN,
  ED25519_PUB_LEN,
  HASH_LEN,
  ID_LEN,
  KEY_LEN,
} from './constants.ts';
import { ed25519SigningKey } from './curve.ts';
import { E4Error, E4ErrorCode, referenceError } from './errors.ts';
import { clientIdFromName, topicHash } from './hash.ts';
import { protectSymKey, type SymKey } from './protect.ts';
import {
  validateCurve25519PubKey,
  validateEd25519PubKey,
  validateName,
  validateSymKey,
  validateTopic,
} from './validate.ts';

/** Command bytes (e4go `iota` order). */
export const CommandCode = {
  RemoveTopic: 0x00,
  ResetTopics: 0x01,
  SetIDKey: 0x02,
  SetTopicKey: 0x03,
  RemovePubKey: 0x04,
  ResetPubKeys: 0x05,
  SetPubKey: 0x06,
  SetC2Key: 0x07,
} as const;

/** Name of a command. */
export type CommandType = keyof typeof CommandCode;

/** A parsed command. Arguments are views into the parsed bytes; copy them to keep them. */
export type Command =
  | { readonly type: 'RemoveTopic'; readonly topicHash: Uint8Array }
  | { readonly type: 'ResetTopics' }
  /** `key` is 32 bytes (SK client) or a 64-byte Go Ed25519 key (PK client). */
  | { readonly type: 'SetIDKey'; readonly key: Uint8Array }
  | { readonly type: 'SetTopicKey'; readonly key: Uint8Array; readonly topicHash: Uint8Array }
  | { readonly type: 'RemovePubKey'; readonly id: Uint8Array }
  | { readonly type: 'ResetPubKeys' }
  | { readonly type: 'SetPubKey'; readonly publicKey: Uint8Array; readonly id: Uint8Array }
  | { readonly type: 'SetC2Key'; readonly publicKey: Uint8Array };

/** Commands only a public-key mode client accepts. */
export const PK_ONLY_COMMANDS: ReadonlySet<CommandType> = new Set([
  'RemovePubKey',
  'ResetPubKeys',
  'SetPubKey',
  'SetC2Key',
]);

const codeToType = new Map<number, CommandType>(
  Object.entries(CommandCode).map(([type, code]) => [code, type as CommandType]),
);

function lengthError(type: CommandType): E4Error {
  return new E4Error(E4ErrorCode.InvalidCommandLength, `invalid ${type} length`);
}

function expectLength(type: CommandType, args: Uint8Array, length: number): void {
  if (args.length !== length) throw lengthError(type);
}

/**
 * Parses command bytes with the reference's exact lengths (trailing bytes are refused).
 * Key *values* (zeros, curve points) are checked when the command is applied, not here.
 * @throws E4Error `InvalidCommand` (empty or unknown byte) or `InvalidCommandLength`;
 *   `InvalidArgument` when `bytes` is not a `Uint8Array`
 */
export function parseCommand(bytes: Uint8Array): Command {
  requireBytes(bytes, 'command');
  const code = bytes[0];
  const type = code === undefined ? undefined : codeToType.get(code);
  if (type === undefined) throw referenceError('InvalidCommand');
  const args = bytes.subarray(1);
  switch (type) {
    case 'RemoveTopic':
      expectLength(type, args, HASH_LEN);
      return { type, topicHash: args };
    case 'ResetTopics':
    case 'ResetPubKeys':
      expectLength(type, args, 0);
      return { type };
    case 'SetIDKey':
      if (args.length !== KEY_LEN && args.length !== ED25519_PRIV_LEN) throw lengthError(type);
      return { type, key: args };
    case 'SetTopicKey':
      expectLength(type, args, KEY_LEN + HASH_LEN);
      return { type, key: args.subarray(0, KEY_LEN), topicHash: args.subarray(KEY_LEN) };
    case 'RemovePubKey':
      expectLength(type, args, ID_LEN);
      return { type, id: args };
    case 'SetPubKey':
      expectLength(type, args, ED25519_PUB_LEN + ID_LEN);
      return {
        type,
        publicKey: args.subarray(0, ED25519_PUB_LEN),
        id: args.subarray(ED25519_PUB_LEN),
      };
    case 'SetC2Key':
      expectLength(type, args, CURVE25519_LEN);
      return { type, publicKey: args };
  }
}

/** The command byte and its arguments, each checked: plain JavaScript can omit one or give a string. */
function joinArguments(code: Uint8Array, ...args: readonly Uint8Array[]): Uint8Array {
  for (const arg of args) requireBytes(arg, 'command argument');
  return concatBytes(code, ...args);
}

/**
 * Encodes a command. Checks argument lengths (so the result always parses) but not key values;
 * use the `cmd*` builders for the reference's value checks.
 * @throws E4Error `InvalidCommandLength` when an argument has the wrong length, `InvalidCommand`
 *   for an unknown type, `InvalidArgument` when the command is not an object or an argument
 *   is not a `Uint8Array`
 */
export function encodeCommand(command: Command): Uint8Array {
  requireObject(command, 'command');
  // `hasOwn`: plain JavaScript can give any string, `constructor` included.
  if (!Object.hasOwn(CommandCode, command.type)) throw referenceError('InvalidCommand');
  const code = Uint8Array.of(CommandCode[command.type]);
  let encoded: Uint8Array;
  switch (command.type) {
    case 'RemoveTopic':
      encoded = joinArguments(code, command.topicHash);
      break;
    case 'ResetTopics':
    case 'ResetPubKeys':
      encoded = code;
      break;
    case 'SetIDKey':
      encoded = joinArguments(code, command.key);
      break;
    case 'SetTopicKey':
      encoded = joinArguments(code, command.key, command.topicHash);
      break;
    case 'RemovePubKey':
      encoded = joinArguments(code, command.id);
      break;
    case 'SetPubKey':
      encoded = joinArguments(code, command.publicKey, command.id);
      break;
    case 'SetC2Key':
      encoded = joinArguments(code, command.publicKey);
      break;
  }
  parseCommand(encoded); // the single source of truth for lengths
  return encoded;
}

/** RemoveTopic for a topic name (e4go `CmdRemoveTopic`). @throws E4Error `InvalidTopic` */
export function cmdRemoveTopic(topic: string): Uint8Array {
  validateTopic(topic);
  return encodeCommand({ type: 'RemoveTopic', topicHash: topicHash(topic) });
}

/** ResetTopics (e4go `CmdResetTopics`). */
export function cmdResetTopics(): Uint8Array {
  return encodeCommand({ type: 'ResetTopics' });
}

/**
 * SetIDKey with a 32-byte symmetric key or a 64-byte Go Ed25519 key (e4go `CmdSetIDKey`).
 * A key a client refuses when it applies the command is refused here, since the command could
 * only be lost: all zeros (e4go `ValidateSymKey`, `ValidateEd25519PrivKey`), or an Ed25519 key
 * whose public half is not the one its seed gives (this library's clients refuse it: see
 * {@link ed25519SigningKey}).
 * @throws E4Error `InvalidCommandLength` for any other length, `InvalidKey` for all zeros or
 *   mismatched halves, `InvalidArgument` when `key` is not a `Uint8Array`
 */
export function cmdSetIdKey(key: Uint8Array): Uint8Array {
  requireBytes(key, 'key');
  if (key.length === KEY_LEN) validateSymKey(key);
  else if (key.length === ED25519_PRIV_LEN) ed25519SigningKey(key);
  return encodeCommand({ type: 'SetIDKey', key });
}

/** SetTopicKey (e4go `CmdSetTopicKey`). @throws E4Error `InvalidKey`, `InvalidTopic` */
export function cmdSetTopicKey(key: Uint8Array, topic: string): Uint8Array {
  validateSymKey(key);
  validateTopic(topic);
  return encodeCommand({ type: 'SetTopicKey', key, topicHash: topicHash(topic) });
}

/** RemovePubKey for a client name (e4go `CmdRemovePubKey`). @throws E4Error `InvalidName` */
export function cmdRemovePubKey(name: string): Uint8Array {
  validateName(name);
  return encodeCommand({ type: 'RemovePubKey', id: clientIdFromName(name) });
}

/** ResetPubKeys (e4go `CmdResetPubKeys`). */
export function cmdResetPubKeys(): Uint8Array {
  return encodeCommand({ type: 'ResetPubKeys' });
}

/** SetPubKey for a client name (e4go `CmdSetPubKey`). @throws E4Error `InvalidKey`, `InvalidName` */
export function cmdSetPubKey(publicKey: Uint8Array, name: string): Uint8Array {
  validateEd25519PubKey(publicKey);
  validateName(name);
  return encodeCommand({ type: 'SetPubKey', publicKey, id: clientIdFromName(name) });
}

/** SetC2Key (e4go `CmdSetC2Key`). @throws E4Error `InvalidKey` for a bad or all-zero key */
export function cmdSetC2Key(publicKey: Uint8Array): Uint8Array {
  validateCurve25519PubKey(publicKey);
  return encodeCommand({ type: 'SetC2Key', publicKey });
}

/**
 * Protects encoded command bytes for a client: an SK message under the client's command key
 * (its id key in SK mode; {@link commandKeyForClient} in PK mode). Commands are not signed.
 * @throws E4Error as {@link protectSymKey}
 */
export function protectCommand(command: Uint8Array, commandKey: SymKey, clock?: Clock): Uint8Array {
  return protectSymKey(command, commandKey, clock);
}
