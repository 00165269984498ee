/** What the C2 domain needs from the outside, as interfaces (ports). */
import type { LockService } from '../coordination/index.ts';
import type { C2Store } from '../storage/index.ts';

/** Binds a sealed key to its row, so sealed keys cannot be swapped between rows or versions. */
export interface SealBinding {
  readonly table: string;
  readonly rowId: string;
  readonly version: number;
}

/** Seals and opens keys at rest (the key vault, DESIGN R8). */
export interface KeySealer {
  seal(plaintext: Uint8Array, binding: SealBinding): Promise<Uint8Array>;
  open(sealed: Uint8Array, binding: SealBinding): Promise<Uint8Array>;
}

/** Told after a commit that wrote outbox rows, so delivery starts without waiting for a poll. */
export interface DeliveryKick {
  kick(): void;
}

/** Who asks, and the idempotency key of a mutating request. */
export interface RequestContext {
  /** Authenticated principal, for the audit log. */
  readonly actor: string;
  /** Idempotency key: the same key returns the first call's result and never mutates twice. */
  readonly requestId?: string;
  /**
   * Whose keys `requestId` is among (the authenticated principal): the same key from two scopes
   * is two requests, so one caller can neither replay nor block another's. Absent: one global
   * scope (an API without authentication, whose actor is only a peer address).
   */
  readonly idempotencyScope?: string;
}

/** The crypto mode of a deployment, fixed at its first start. */
export type C2CryptoMode = 'symkey' | 'pubkey';

/** Everything the use-cases share. */
export interface DomainDeps {
  readonly store: C2Store;
  readonly sealer: KeySealer;
  readonly mode: C2CryptoMode;
  readonly kick: DeliveryKick;
  /** Generate device private keys on the C2 (public-key mode) only when explicitly allowed. */
  readonly pkServerKeygen: boolean;
  /** Largest page a list returns. */
  readonly maxPageSize: number;
  /** Largest payload ProtectMessage accepts, in bytes. */
  readonly maxMessageBytes: number;
  /** Milliseconds since the epoch. */
  readonly now: () => number;
  /**
   * Seconds after a membership last changed before a device seen under an older key counts as
   * behind (default `OBSERVED_LAG_GRACE_SECONDS` of queries.ts; `E4C2_MONITORING_LAG_GRACE_S`).
   */
  readonly observedLagGraceSeconds?: number;
  /**
   * Serialises rotations per topic and per client across nodes (Redlock in a cluster, an
   * in-process mutex on one node); optional, since correctness rests on the version
   * compare-and-set (R1, R2).
   */
  readonly locks?: LockService;
  /**
   * TEST ONLY broken variants (`E4C2_TEST_FAULTS`, docs/chaos.md): the chaos suite switches one
   * on to show its checker catches the bug. Never set in production.
   */
  readonly testFaults?: ReadonlySet<string>;
}

/** Seal bindings of the three kinds of stored keys. */
export const bindings = {
  clientKey: (clientId: string, version: number): SealBinding => ({
    table: 'client_keys',
    rowId: clientId,
    version,
  }),
  topicKey: (topicId: string, version: number): SealBinding => ({
    table: 'topic_keys',
    rowId: topicId,
    version,
  }),
  c2Key: (version: number): SealBinding => ({ table: 'c2_keys', rowId: 'c2', version }),
};
