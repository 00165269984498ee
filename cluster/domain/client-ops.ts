/** Client use-cases: register, remove, reset, rotate the identity key, resync. */
import { C2Error } from '../errors.ts';
import type { C2Repositories, ClientRow } from '../storage/index.ts';
import {
  checkClientKey,
  e4IdOf,
  generatedIdentity,
  givenIdentity,
  storeIdentityKey,
  type IdentityKey,
} from './key-material.ts';
import { audit, lockResourceOf, mutate, notFound } from './mutation.ts';
import type { DomainDeps, RequestContext } from './ports.ts';
import { checkClientName, checkNewName, newNameRefusal } from './validation.ts';

/** Result of registering a client. */
export interface NewClientResult {
  readonly created: boolean;
  readonly keyVersion: number;
}

/** Finds an active client by name, locked for update. @throws C2Error `C2_NOT_FOUND` */
export async function activeClient(
  tx: C2Repositories,
  name: string,
  lock = true,
): Promise<ClientRow> {
  const client = await tx.clients.byName(name, lock);
  if (client?.status !== 'active') throw notFound('client', name);
  return client;
}

/**
 * NewClient (reference upsert): registers a device with the key it was provisioned with. For an
 * existing client with a different key, the new key becomes a new version that the device is
 * assumed to hold already (re-provisioned); the same key again changes nothing. Sends nothing,
 * except to a device that was unreachable (restore-reconcile: it held a key the C2 did not
 * have): re-provisioned, it is sent everything again under its new key, as by a resync.
 * @throws C2Error `C2_VALIDATION`
 */
export async function newClient(
  deps: DomainDeps,
  ctx: RequestContext,
  name: unknown,
  key: unknown,
): Promise<NewClientResult> {
  const clientName = checkClientName(name);
  const refusal = newNameRefusal(() => checkNewName(clientName, 'client.name'));
  const identity = givenIdentity(deps.mode, checkClientKey(deps.mode, key));
  // Refused at once, without a lock, unless a client made before the rule has the name.
  if (refusal !== undefined && (await deps.store.read.clients.byName(clientName)) === undefined)
    throw refusal;
  return await mutate(
    deps,
    ctx,
    'NewClient',
    { name: clientName, fp: identity.fingerprint },
    async (tx) => {
      let existing = await tx.clients.byName(clientName, true);
      if (existing === undefined) {
        if (refusal !== undefined) throw refusal;
        const inserted = await insertClient(deps, ctx, tx, clientName, identity);
        if (inserted !== undefined) return inserted;
        // Another call registered the name after our read: this call is an update of its row.
        existing = await tx.clients.byName(clientName, true);
        if (existing === undefined) throw concurrentChange(clientName);
      }
      if (existing.status !== 'active') {
        throw new C2Error('C2_CONFLICT', 'client is being removed', {
          details: { client: clientName },
        });
      }
      const current = await tx.clients.key(existing.id, existing.keyVersion);
      if (current?.fingerprint === identity.fingerprint) {
        // An unreachable device given back the key the C2 has (re-flashed with it): reachable.
        if (existing.syncState === 'unreachable') await reprovisioned(tx, existing.id);
        return { created: false, keyVersion: existing.keyVersion };
      }
      const version = existing.keyVersion + 1;
      if (!(await tx.clients.casKeyVersion(existing.id, existing.keyVersion, version, version))) {
        throw concurrentChange(clientName);
      }
      await storeIdentityKey(deps, tx, existing.id, version, identity);
      await tx.peers.followSourceKey(existing.id, version, 'peer-key-replaced');
      // A key given for a name the C2 knows is a device re-flashed or replaced: what it held
      // under the old key is unknown (a new device holds nothing), and its topics were recorded
      // delivered to the old one, so no command would ever bring them. Everything goes again,
      // under the new key; a device that kept its keys only gets what it has once more.
      await sendEverythingAgain(
        tx,
        existing.id,
        existing.syncState === 'unreachable' ? 'client-reprovisioned' : 'client-key-replaced',
      );
      await audit(tx, ctx, {
        operation: 'NewClient',
        subjectKind: 'client',
        subject: clientName,
        keyVersion: version,
        keyFingerprint: identity.fingerprint,
        details: { replaced: true },
      });
      await tx.journal.event({ type: 'client.key_replaced', clientName, keyVersion: version });
      return { created: false, keyVersion: version };
    },
  );
}

/**
 * Everything is sent to the device again (a resync, or a re-provisioned device): a new delivery
 * epoch, its topic and peer keys undelivered, its delivery state cleared, and work queued.
 */
async function sendEverythingAgain(
  tx: C2Repositories,
  clientId: string,
  reason: string,
): Promise<void> {
  await tx.clients.bumpDeliveryEpoch(clientId);
  await tx.memberships.resetDelivery(clientId);
  await tx.peers.resetPubKeyDelivery(clientId);
  await tx.clients.setSync(clientId, { state: 'idle', attempts: 0, error: null });
  await tx.journal.enqueue(clientId, reason);
}

/**
 * An unreachable device (it held a key the C2 did not have, after a restore) now holds one the C2
 * has: everything is sent to it again under that key, as by a resync.
 */
function reprovisioned(tx: C2Repositories, clientId: string): Promise<void> {
  return sendEverythingAgain(tx, clientId, 'client-reprovisioned');
}

/** @returns C2Error `C2_CONFLICT`: another call changed the client first; a retry succeeds */
function concurrentChange(clientName: string): C2Error {
  return new C2Error('C2_CONFLICT', 'client key changed concurrently; retry', {
    details: { client: clientName },
  });
}

/** Registers a new client; `undefined` when another call registered the name first. */
async function insertClient(
  deps: DomainDeps,
  ctx: RequestContext,
  tx: C2Repositories,
  name: string,
  identity: IdentityKey,
): Promise<NewClientResult | undefined> {
  const c2Key = deps.mode === 'pubkey' ? await tx.journal.latestC2Key() : undefined;
  const client = await tx.clients.insert({
    name,
    e4Id: e4IdOf(name),
    keyVersion: 1,
    // The device was provisioned with this key (and with the current C2 public key).
    deliveredKeyVersion: 1,
    c2KeyVersion: c2Key?.version ?? null,
  });
  if (client === undefined) return undefined;
  await storeIdentityKey(deps, tx, client.id, 1, identity);
  await audit(tx, ctx, {
    operation: 'NewClient',
    subjectKind: 'client',
    subject: name,
    keyVersion: 1,
    keyFingerprint: identity.fingerprint,
  });
  await tx.journal.event({ type: 'client.created', clientName: name, keyVersion: 1 });
  return { created: true, keyVersion: 1 };
}

/**
 * RemoveClient. Peers that were sent the client's public key are told to drop it. With `reset`,
 * the device is first sent ResetTopics (and ResetPubKeys in public-key mode) and the record is
 * deleted once that is delivered; without, the record goes at once (the reference behaviour).
 * The client leaves every topic it was a member of: a `client.unsubscribed` event per topic
 * (before `client.removed`), so that `member-removed` automation rotates those topics, as it
 * does when a single membership ends (the reference emitted none).
 * @throws C2Error `C2_NOT_FOUND`
 */
export async function removeClient(
  deps: DomainDeps,
  ctx: RequestContext,
  name: unknown,
  options: { readonly reset?: boolean } = {},
): Promise<{ readonly removed: true; readonly resetPending: boolean }> {
  const clientName = checkClientName(name);
  const reset = options.reset === true;
  return await mutate(deps, ctx, 'RemoveClient', { name: clientName, reset }, async (tx) => {
    const client = await activeClient(tx, clientName);
    const topics = (await tx.memberships.forClient(client.id)).filter(
      (m) => m.desiredVersion > 0 && m.topicName !== null,
    );
    await tx.peers.revokeSource(client.id, 'peer-removed');
    if (reset) {
      await tx.clients.markRemoving(client.id);
      await tx.peers.addCommand(client.id, 'ResetTopics');
      if (deps.mode === 'pubkey') await tx.peers.addCommand(client.id, 'ResetPubKeys');
      await tx.journal.enqueue(client.id, 'client-removed');
    } else {
      await tx.clients.delete(client.id);
    }
    await audit(tx, ctx, {
      operation: 'RemoveClient',
      subjectKind: 'client',
      subject: clientName,
      details: { reset },
    });
    for (const m of topics) {
      await tx.journal.event({
        type: 'client.unsubscribed',
        clientName,
        topic: m.topicName ?? '',
        details: { clientRemoved: true },
      });
    }
    await tx.journal.event({ type: 'client.removed', clientName, details: { reset } });
    return { removed: true, resetPending: reset } as const;
  });
}

/**
 * ResetClient: sends ResetTopics. Unlike the reference, the C2 then sends the device the keys of
 * the topics it is still a member of, so device and C2 agree again after the reset.
 * @throws C2Error `C2_NOT_FOUND`
 */
export async function resetClient(
  deps: DomainDeps,
  ctx: RequestContext,
  name: unknown,
): Promise<{ readonly reset: true }> {
  const clientName = checkClientName(name);
  return await mutate(deps, ctx, 'ResetClient', { name: clientName }, async (tx) => {
    const client = await activeClient(tx, clientName);
    await tx.peers.addCommand(client.id, 'ResetTopics');
    await tx.clients.bumpDeliveryEpoch(client.id);
    await tx.memberships.resetDelivery(client.id);
    await tx.journal.enqueue(client.id, 'client-reset');
    await audit(tx, ctx, {
      operation: 'ResetClient',
      subjectKind: 'client',
      subject: clientName,
    });
    await tx.journal.event({ type: 'client.reset', clientName });
    return { reset: true } as const;
  });
}

/**
 * Rotates a client's identity key (reference NewClientKey, and our RotateClientKey). Symmetric
 * mode: the C2 draws the key and delivers it with SetIDKey under the key the device holds.
 * Public-key mode: with `publicKey`, the device generated its own pair and the C2 records the
 * new public key; without, the C2 generates the pair only if explicitly allowed. Peers holding
 * the client's public key get the new one, as do the clients linked to it.
 * @returns the new key version
 * @throws C2Error `C2_NOT_FOUND`, `C2_VALIDATION`, `C2_FAILED_PRECONDITION`, `C2_CONFLICT`;
 *   `C2_CRYPTO_MODE` for a public key in symmetric-key mode
 */
export async function rotateClientKey(
  deps: DomainDeps,
  ctx: RequestContext,
  name: unknown,
  publicKey?: unknown,
): Promise<{ readonly keyVersion: number; readonly fingerprint: string }> {
  const clientName = checkClientName(name);
  let identity: IdentityKey | undefined;
  if (publicKey !== undefined) {
    if (deps.mode !== 'pubkey') {
      // A mode error, as every other public-key-only request gets (requireMode).
      throw new C2Error(
        'C2_CRYPTO_MODE',
        'a rotation to a device-generated public key is only available in public-key mode',
        { details: { field: 'publicKey', mode: deps.mode } },
      );
    }
    identity = givenIdentity('pubkey', checkClientKey('pubkey', publicKey, 'publicKey'));
  }
  return await mutate(
    deps,
    ctx,
    'RotateClientKey',
    { name: clientName, fp: identity?.fingerprint ?? null },
    async (tx) => {
      const client = await activeClient(tx, clientName);
      if (identity !== undefined) {
        const current = await tx.clients.key(client.id, client.keyVersion);
        if (current?.fingerprint === identity.fingerprint) {
          // The key the C2 already has (a retry, a script run twice): no new version of the same
          // key, as NewClient does; an unreachable device given back that key is reachable again.
          if (client.syncState === 'unreachable') await reprovisioned(tx, client.id);
          return { keyVersion: client.keyVersion, fingerprint: identity.fingerprint };
        }
      }
      const key = identity ?? generatedIdentity(deps);
      const version = client.keyVersion + 1;
      // A key the device made itself is held by it already; a generated one must be delivered.
      const delivered = identity === undefined ? undefined : version;
      if (!(await tx.clients.casKeyVersion(client.id, client.keyVersion, version, delivered))) {
        throw concurrentChange(clientName);
      }
      await storeIdentityKey(deps, tx, client.id, version, key);
      // The device's own new key: an unreachable device is re-provisioned by it. (A key the C2
      // draws cannot reach a device that holds a key the C2 lacks.)
      if (identity !== undefined && client.syncState === 'unreachable')
        await reprovisioned(tx, client.id);
      if (deps.mode === 'pubkey') {
        await tx.peers.followSourceKey(client.id, version, 'peer-key-rotated');
        for (const linkedId of await tx.peers.linkedIds(client.id)) {
          await tx.peers.setPubKey(linkedId, client.e4Id, client.id, version);
          await tx.journal.enqueue(linkedId, 'peer-key-rotated');
        }
      }
      await tx.journal.enqueue(client.id, 'client-key-rotated');
      await audit(tx, ctx, {
        operation: 'RotateClientKey',
        subjectKind: 'client',
        subject: clientName,
        keyVersion: version,
        keyFingerprint: key.fingerprint,
        details: { deviceGenerated: identity !== undefined },
      });
      await tx.journal.event({ type: 'client.key_rotated', clientName, keyVersion: version });
      return { keyVersion: version, fingerprint: key.fingerprint };
    },
    lockResourceOf('client', clientName),
  );
}

/** A key a resync re-sends under the one before it: the identity key, the C2 key. */
export type ResentKey = 'identity' | 'c2';

/** Options of {@link resyncClient}. */
export interface ResyncOptions {
  /**
   * Re-send a rotated identity key (and, public-key mode, C2 key) under the key before it
   * (default true: an operator's resync). The automation passes false: each re-send puts the
   * current key on the wire under the previous one again, which only an operator may decide.
   */
  readonly resendKeys?: boolean;
}

/**
 * Resync: forgets what was delivered to the device and clears a failed delivery, so everything
 * it should hold is sent again (after it was offline too long, or after a restore). A rotated
 * identity key (and, public-key mode, C2 key) is re-sent first, protected with the key before it
 * (`ResendIdKey`, `ResendC2Key`, next-command.ts): the broker acknowledges a SetIDKey for an
 * offline device without a persistent session, and that device, left on the older key, would
 * refuse everything else. One missed rotation is repaired, not two.
 * @throws C2Error `C2_NOT_FOUND`
 */
export async function resyncClient(
  deps: DomainDeps,
  ctx: RequestContext,
  name: unknown,
  options: ResyncOptions = {},
): Promise<{
  readonly resync: true;
  /** Absent from a reply stored for a retried request by a release before it existed. */
  readonly keysResent?: readonly ResentKey[];
}> {
  const clientName = checkClientName(name);
  return await mutate(deps, ctx, 'ResyncClient', { name: clientName }, async (tx) => {
    const client = await activeClient(tx, clientName);
    const resent: ResentKey[] = [];
    if (options.resendKeys !== false) {
      if (client.keyVersion > 1) resent.push('identity');
      if (deps.mode === 'pubkey' && ((await tx.journal.latestC2Key())?.version ?? 1) > 1)
        resent.push('c2');
      for (const key of resent)
        await tx.peers.replaceCommand(
          client.id,
          key === 'identity' ? 'ResendIdKey' : 'ResendC2Key',
        );
    }
    await sendEverythingAgain(tx, client.id, 'resync');
    await tx.journal.event({
      type: 'client.resync',
      clientName,
      ...(resent.length === 0 ? {} : { details: { keysResent: resent.join(',') } }),
    });
    return { resync: true, keysResent: resent } as const;
  });
}
