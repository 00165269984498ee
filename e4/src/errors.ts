/**
 * Typed errors of the E4 protocol library.
 *
 * Every failure the library reports is an {@link E4Error} with a stable {@link E4ErrorCode}.
 * Codes are named after the reference (e4go) error variables without their `Err` prefix, and
 * messages are the reference's exact strings where one exists, so logs read the same as e4go's.
 * Callers match on `code`, never on `message`.
 */

/** Stable error codes. Adding a code is allowed; renaming or removing one is a breaking change. */
export const E4ErrorCode = {
  /** A protected message is shorter than the smallest valid one (PK mode). */
  InvalidProtectedLen: 'InvalidProtectedLen',
  /** A protected message is too short to hold a timestamp, a tag and one byte (SK mode). */
  TooShortCiphertext: 'TooShortCiphertext',
  /** The message timestamp is ahead of the receiver's clock. */
  TimestampInFuture: 'TimestampInFuture',
  /** The message (or the transition key) is older than the allowed window. */
  TimestampTooOld: 'TimestampTooOld',
  /** AES-SIV authentication failed: wrong key or tampered bytes. */
  NotAuthentic: 'NotAuthentic',
  /** The Ed25519 signature of a PK-mode message does not verify. */
  InvalidSignature: 'InvalidSignature',
  /** The signer of a PK-mode message is not in the public-key store. */
  PubKeyNotFound: 'PubKeyNotFound',
  /** No key is held for the topic. */
  TopicKeyNotFound: 'TopicKeyNotFound',
  /** The command byte is not one of the eight E4 commands. */
  InvalidCommand: 'InvalidCommand',
  /** A command has the wrong length for its type. */
  InvalidCommandLength: 'InvalidCommandLength',
  /** The command exists but the client's mode does not support it (PK command to an SK client). */
  UnsupportedOperation: 'UnsupportedOperation',
  /** RemovePubKey named an id that is not in the public-key store. */
  UnknownPubKeyId: 'UnknownPubKeyId',
  /** A key has the wrong length, is all zeros, or is not a valid curve point. */
  InvalidKey: 'InvalidKey',
  /** A client id has the wrong length. */
  InvalidID: 'InvalidID',
  /** A client name is empty, longer than 255 bytes, or not UTF-8. */
  InvalidName: 'InvalidName',
  /** A topic is empty or longer than 512 bytes. */
  InvalidTopic: 'InvalidTopic',
  /** A password is shorter than 16 bytes or not valid UTF-8. */
  InvalidPassword: 'InvalidPassword',
  /** The stored transition (previous) key of a topic is malformed. */
  InvalidOldTopicKeyLength: 'InvalidOldTopicKeyLength',
  /** Persisted client state cannot be read back. */
  InvalidState: 'InvalidState',
  /**
   * A value of the wrong type, from a caller the TypeScript types do not bind (plain JavaScript):
   * a string where bytes are expected, a missing argument; or text that is not hex given to
   * `fromHex`.
   */
  InvalidArgument: 'InvalidArgument',
  /** A payload or protected message larger than any MQTT packet can carry (256 MiB). */
  PayloadTooLarge: 'PayloadTooLarge',
  /**
   * A device's own identity key rotation was begun while another one, with another key, is still
   * pending (`E4Client.beginOwnKeyRotation`): complete or abandon that one first.
   */
  RotationPending: 'RotationPending',
  /** A device's own identity key rotation was completed or abandoned while none is pending. */
  NoRotationPending: 'NoRotationPending',
} as const;

/** Union of every stable error code. */
export type E4ErrorCode = (typeof E4ErrorCode)[keyof typeof E4ErrorCode];

/**
 * The error every E4 operation throws.
 *
 * `code` is stable; `message` is human-readable (and equals e4go's string where e4go has one).
 * Messages never contain key material.
 */
export class E4Error extends Error {
  override readonly name = 'E4Error';

  /**
   * @param code - stable machine-readable code
   * @param message - human-readable description, free of secrets
   * @param options - standard `cause`
   */
  constructor(
    readonly code: E4ErrorCode,
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }

  /** True when `err` is an {@link E4Error}, optionally with the given code. */
  static is(err: unknown, code?: E4ErrorCode): err is E4Error {
    return err instanceof E4Error && (code === undefined || err.code === code);
  }
}

/** Reference messages for the errors e4go names as variables. */
export const referenceMessages = {
  InvalidProtectedLen: 'invalid length of protected message',
  TooShortCiphertext: 'ciphertext too short',
  TimestampInFuture: 'timestamp received is in the future',
  TimestampTooOld: 'timestamp too old',
  NotAuthentic: 'siv: authentication failed',
  InvalidSignature: 'invalid signature',
  PubKeyNotFound: 'signer public key not found',
  TopicKeyNotFound: 'topic key not found',
  InvalidCommand: 'invalid command',
  UnsupportedOperation: 'this operation is not supported',
} as const satisfies Partial<Record<E4ErrorCode, string>>;

/** Builds the error for a code whose message is fixed by the reference. */
export function referenceError(code: keyof typeof referenceMessages): E4Error {
  return new E4Error(code, referenceMessages[code]);
}
