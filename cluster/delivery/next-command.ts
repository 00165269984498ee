/**
 * What to send a device next, read from the *current* desired state (DESIGN R4): a stale trigger
 * can only ever cause the newest state to be sent. Order: one-shot commands (a resync's key
 * re-sends, then resets), the identity key, the C2 key, topic keys (revocations first), then peer
 * public keys.
 */
import {
  cmdResetPubKeys,
  cmdResetTopics,
  cmdSetC2Key,
  cmdSetIdKey,
  commandKeyForClient,
  encodeCommand,
  toHex,
} from '../../e4/index.ts';
import { bindings, type KeySealer } from '../domain/index.ts';
import type { C2Repositories, ClientRow } from '../storage/index.ts';

/** One command to deliver, with how to record its delivery. */
export interface PlannedCommand {
  /** E4 command name, for logs and metrics (never key material). */
  readonly kind: string;
  /** A short description of the target state, e.g. `topic 3a98… v4`. */
  readonly describe: string;
  /** Plaintext command bytes; wiped by the caller after protection. */
  readonly clear: Uint8Array;
  /** The key the device holds to open this command; wiped by the caller. */
  readonly commandKey: Uint8Array;
  /** Records the delivery; monotonic, so a late acknowledgement cannot move state back (R7). */
  readonly record: (tx: C2Repositories, commandId: Uint8Array) => Promise<void>;
  /**
   * The device's delivery epoch when planned, for commands a reset can undo (topic and peer
   * keys): if a reset or resync happened meanwhile, the acknowledgement is not recorded.
   */
  readonly epoch?: number;
}

/** What the planner needs. */
export interface PlanDeps {
  readonly sealer: KeySealer;
  readonly mode: 'symkey' | 'pubkey';
}

/**
 * The plan: a command to send; `record` when state can move on without sending anything; `idle`
 * when the device has everything; `remove` when a removed client's reset was delivered.
 */
export type PlanResult =
  | { readonly kind: 'command'; readonly command: PlannedCommand }
  | { readonly kind: 'record'; readonly record: (tx: C2Repositories) => Promise<void> }
  | { readonly kind: 'idle' }
  | { readonly kind: 'remove' };

async function identitySecret(
  deps: PlanDeps,
  db: C2Repositories,
  client: ClientRow,
  version: number,
): Promise<{ secret: Uint8Array; publicKey: Uint8Array | null }> {
  const row = await db.clients.key(client.id, version);
  if (row === undefined) throw new Error(`client ${client.id} has no key version ${version}`);
  return {
    secret: await deps.sealer.open(row.sealed, bindings.clientKey(client.id, version)),
    publicKey: row.publicKey,
  };
}

/** Which keys a command is protected with; by default those the device is recorded to hold. */
interface HeldKeys {
  readonly identity?: number;
  readonly c2?: number;
}

/** The key the device currently holds for C2 commands (or would hold with `held`). */
async function commandKey(
  deps: PlanDeps,
  db: C2Repositories,
  client: ClientRow,
  held: HeldKeys = {},
): Promise<Uint8Array> {
  const identity = await identitySecret(
    deps,
    db,
    client,
    held.identity ?? client.deliveredKeyVersion,
  );
  if (deps.mode === 'symkey') return identity.secret;
  identity.secret.fill(0);
  const c2Version = held.c2 ?? client.c2KeyVersion ?? 1;
  const c2 = await db.journal.c2Key(c2Version);
  if (c2 === undefined || identity.publicKey === null)
    throw new Error(`client ${client.id} has no usable public-key material`);
  const c2Private = await deps.sealer.open(c2.sealedPrivate, bindings.c2Key(c2Version));
  try {
    return commandKeyForClient(c2Private, identity.publicKey);
  } finally {
    c2Private.fill(0);
  }
}

async function planned(
  deps: PlanDeps,
  db: C2Repositories,
  client: ClientRow,
  kind: string,
  describe: string,
  clear: Uint8Array,
  record: PlannedCommand['record'],
  held: HeldKeys = {},
): Promise<PlanResult> {
  return {
    kind: 'command',
    command: {
      kind,
      describe,
      clear,
      commandKey: await commandKey(deps, db, client, held),
      record,
    },
  };
}

/**
 * A resync's re-send of the newest identity key (`ResendIdKey`) or C2 key (`ResendC2Key`) the
 * device is recorded to hold, protected with the one before, for a device that missed that
 * rotation while offline (the broker acknowledged it all the same). One that has the newest key
 * refuses it, harmlessly; the record does not move. Nothing to send when there is no key before,
 * or the device generated its identity key itself (the C2 has no private key to send).
 */
async function planResend(
  deps: PlanDeps,
  db: C2Repositories,
  client: ClientRow,
  kind: 'ResendIdKey' | 'ResendC2Key',
  done: (tx: C2Repositories) => Promise<void>,
): Promise<PlanResult> {
  const skip: PlanResult = { kind: 'record', record: done };
  if (kind === 'ResendIdKey') {
    // Also while a newer rotation is being delivered: the stepping below sends v+1 under v,
    // never v under v-1, which is what a device that missed v needs first.
    const version = client.deliveredKeyVersion;
    if (version < 2) return skip;
    const { secret } = await identitySecret(deps, db, client, version);
    if (deps.mode === 'pubkey' && secret.length !== 64) {
      secret.fill(0);
      return skip;
    }
    return planned(
      deps,
      db,
      client,
      'SetIDKey',
      `identity v${version} again`,
      cmdSetIdKey(secret),
      done,
      {
        identity: version - 1,
      },
    );
  }
  const held = client.c2KeyVersion ?? 1;
  if (deps.mode !== 'pubkey' || held < 2) return skip;
  const key = await db.journal.c2Key(held);
  if (key === undefined) throw new Error(`the C2 key version ${held} is missing`);
  return planned(
    deps,
    db,
    client,
    'SetC2Key',
    `c2 v${held} again`,
    cmdSetC2Key(key.publicKey),
    done,
    {
      c2: held - 1,
    },
  );
}

/**
 * Plans the next command for a device, or says there is nothing to do.
 * @param db - repositories to read with (the pool: planning holds no locks)
 */
export async function planNextCommand(
  deps: PlanDeps,
  db: C2Repositories,
  clientId: string,
): Promise<PlanResult> {
  const client = await db.clients.byId(clientId);
  if (client === undefined) return { kind: 'idle' };
  // It would refuse every command (a key the C2 does not have): nothing until re-provisioned.
  if (client.syncState === 'unreachable' && client.status === 'active') return { kind: 'idle' };

  const oneShot = await db.peers.nextCommand(client.id);
  if (oneShot !== undefined) {
    const done = async (tx: C2Repositories): Promise<void> => {
      await tx.peers.deleteCommand(oneShot.id);
    };
    if (oneShot.kind === 'ResendIdKey' || oneShot.kind === 'ResendC2Key')
      return planResend(deps, db, client, oneShot.kind, done);
    const clear = oneShot.kind === 'ResetTopics' ? cmdResetTopics() : cmdResetPubKeys();
    return planned(deps, db, client, oneShot.kind, oneShot.kind, clear, done);
  }
  if (client.status === 'removing') return { kind: 'remove' };

  if (client.deliveredKeyVersion < client.keyVersion) {
    // One version at a time, each protected with the one before: after a lost PUBACK the device
    // holds either the recorded version or the next one, and this converges from both (the
    // retry either applies, or is refused by a device that already has it and, once the broker
    // accepts it, moves the record up to the device). Jumping to the newest version protected
    // with the recorded one would cut off a device that had applied the lost command.
    const version = client.deliveredKeyVersion + 1;
    const { secret } = await identitySecret(deps, db, client, version);
    if (deps.mode === 'pubkey' && secret.length !== 64) {
      // The device generated this key itself; nothing to send (normally recorded at rotation).
      secret.fill(0);
      return {
        kind: 'record',
        record: async (tx) => {
          await tx.clients.markKeyDelivered(client.id, version);
        },
      };
    }
    return planned(
      deps,
      db,
      client,
      'SetIDKey',
      `identity v${version}`,
      cmdSetIdKey(secret),
      async (tx) => {
        await tx.clients.markKeyDelivered(client.id, version);
      },
    );
  }

  if (deps.mode === 'pubkey') {
    const latest = await db.journal.latestC2Key();
    const held = client.c2KeyVersion ?? 1;
    if (latest !== undefined && held < latest.version) {
      // Stepped like identity keys, for the same reason: commands are protected with a key
      // derived from the C2 key the device holds, which a lost PUBACK leaves in doubt.
      const next = await db.journal.c2Key(held + 1);
      if (next === undefined) throw new Error(`the C2 key version ${held + 1} is missing`);
      return planned(
        deps,
        db,
        client,
        'SetC2Key',
        `c2 v${next.version}`,
        cmdSetC2Key(next.publicKey),
        async (tx) => {
          await tx.clients.markC2KeyDelivered(client.id, next.version);
        },
      );
    }
  }

  const topic = await db.memberships.nextPending(client.id);
  if (topic !== undefined) {
    const hash = topic.topicHash;
    if (topic.desiredVersion === 0 || topic.topicId === null) {
      return planned(
        deps,
        db,
        client,
        'RemoveTopic',
        `topic ${toHex(hash)} revoke`,
        encodeCommand({ type: 'RemoveTopic', topicHash: hash }),
        async (tx) => {
          await tx.memberships.deleteRevoked(client.id, hash);
        },
      );
    }
    const { topicId, desiredVersion } = topic;
    const keyRow = await db.topics.key(topicId, desiredVersion);
    if (keyRow === undefined)
      throw new Error(`topic ${topicId} has no key version ${desiredVersion}`);
    const key = await deps.sealer.open(keyRow.sealed, bindings.topicKey(topicId, desiredVersion));
    const clear = encodeCommand({ type: 'SetTopicKey', key, topicHash: hash });
    key.fill(0);
    return planned(
      deps,
      db,
      client,
      'SetTopicKey',
      `topic ${toHex(hash)} v${desiredVersion}`,
      clear,
      async (tx, commandId) => {
        await tx.memberships.markDelivered(client.id, hash, topicId, desiredVersion, commandId);
      },
    );
  }

  const peer = await db.peers.nextPendingPubKey(client.id);
  if (peer !== undefined) {
    const sourceId = peer.sourceE4Id;
    if (peer.desiredVersion === 0 || peer.sourceClientId === null) {
      return planned(
        deps,
        db,
        client,
        'RemovePubKey',
        `pubkey ${toHex(sourceId)} revoke`,
        encodeCommand({ type: 'RemovePubKey', id: sourceId }),
        async (tx) => {
          await tx.peers.deleteRevokedPubKey(client.id, sourceId);
        },
      );
    }
    const version = peer.desiredVersion;
    const source = await db.clients.key(peer.sourceClientId, version);
    if (source?.publicKey === undefined || source.publicKey === null)
      throw new Error(`peer ${peer.sourceClientId} has no public key version ${version}`);
    return planned(
      deps,
      db,
      client,
      'SetPubKey',
      `pubkey ${toHex(sourceId)} v${version}`,
      encodeCommand({ type: 'SetPubKey', publicKey: source.publicKey, id: sourceId }),
      async (tx) => {
        await tx.peers.markPubKeyDelivered(client.id, sourceId, version);
      },
    );
  }
  return { kind: 'idle' };
}
