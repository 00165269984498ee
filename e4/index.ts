/**
 * The E4 protocol library: byte-compatible with the reference clients (e4go, libe4).
 * Pure computation on node:crypto; the only I/O is the optional {@link JsonFileClientStore}.
 */
export { AesSivKey, aesSivOpen, aesSivSeal } from './src/aes-siv.ts';
export {
  bytesEqual,
  concatBytes,
  fromHex,
  isAllZero,
  readInt64LE,
  toHex,
  writeUint64LE,
} from './src/bytes.ts';
export {
  systemClock,
  unixSeconds,
  validateTimestamp,
  validateTransitionTimestamp,
  type Clock,
} from './src/clock.ts';
export {
  cmdRemovePubKey,
  cmdRemoveTopic,
  cmdResetPubKeys,
  cmdResetTopics,
  cmdSetC2Key,
  cmdSetIdKey,
  cmdSetPubKey,
  cmdSetTopicKey,
  CommandCode,
  encodeCommand,
  parseCommand,
  PK_ONLY_COMMANDS,
  protectCommand,
  type Command,
  type CommandType,
} from './src/commands.ts';
export * from './src/constants.ts';
export {
  commandKeyForClient,
  commandKeyFromClient,
  ed25519KeyFromKeyObject,
  ed25519KeyFromSeed,
  ed25519PrivateToCurve25519,
  ed25519PublicKey,
  ed25519PublicKeyObject,
  ed25519PublicToCurve25519,
  ed25519Sign,
  ed25519SigningKey,
  ed25519Verify,
  x25519,
  x25519PublicKey,
} from './src/curve.ts';
export { E4Error, E4ErrorCode, referenceMessages } from './src/errors.ts';
export {
  clientIdFromName,
  controlTopic,
  sha3256,
  topicHash,
  transitionSlotHash,
} from './src/hash.ts';
export {
  deriveSymKey,
  ed25519KeyFromPassword,
  PASSWORD_KDF_PARAMS,
  randomCurve25519KeyPair,
  randomEd25519Key,
  randomId,
  randomSymKey,
} from './src/keys.ts';
export {
  protectPubKey,
  protectPubKeyAt,
  protectSymKey,
  protectSymKeyAt,
  sivKey,
  unprotectPubKey,
  unprotectSymKey,
  type PkSigner,
  type PubKeyLookup,
  type SymKey,
} from './src/protect.ts';
export {
  validateCurve25519PubKey,
  validateEd25519PrivKey,
  validateEd25519PubKey,
  validateId,
  validateName,
  validateSymKey,
  validateTopic,
  validateTopicHash,
} from './src/validate.ts';
export {
  E4Client,
  type ClientIdentity,
  type ClientOptions,
  type PublicKeySecret,
  type SymmetricSecret,
  type UnprotectResult,
} from './src/client/client.ts';
export {
  applyCommand,
  checkPkKeys,
  currentTopicKeys,
  TRANSITION_ENTRY_LEN,
  type ClientState,
  type CryptoMode,
  type KeyMaterial,
  type PkKeyCheck,
  type PubKeyMaterial,
  type SymKeyMaterial,
} from './src/client/client-state.ts';
export { MemoryClientStore, type ClientStore } from './src/client/client-store.ts';
export { JsonFileClientStore } from './src/client/json-file-store.ts';
export { SharedTopicCiphers } from './src/client/shared-topic-ciphers.ts';
export { decodeClientState, encodeClientState } from './src/client/state-codec.ts';
// Delivery receipts: the opt-in extension of docs/protocol-extensions.md (DESIGN R9).
export {
  appliedReceipt,
  buildReceipt,
  COMMAND_ID_LEN,
  commandId,
  deviceIdFromReceiptTopic,
  openReceipt,
  parseReceipt,
  protectReceipt,
  protectReceiptAt,
  RECEIPT_BODY_LEN,
  RECEIPT_LABEL,
  RECEIPT_LEN,
  RECEIPT_MAX_LEN,
  RECEIPT_NO_COMMAND,
  RECEIPT_TOPIC_PREFIX,
  RECEIPT_VERSION,
  receiptReason,
  ReceiptReasonCode,
  receiptReasonCode,
  ReceiptStatus,
  receiptSubject,
  receiptTopic,
  rejectedReceipt,
  type OpenedReceipt,
  type Receipt,
  type ReceiptCommand,
  type ReceiptFields,
  type ReceiptReason,
} from './src/receipts/receipt.ts';
export type { ReceiptOptions } from './src/receipts/emitter.ts';
