/** Client links and public-key distribution (public-key mode). */
import { C2Error } from '../errors.ts';
import type { C2Repositories, ClientRow } from '../storage/index.ts';
import { activeClient } from './client-ops.ts';
import { checkClientKey } from './key-material.ts';
import { audit, mutate, requireMode } from './mutation.ts';
import type { DomainDeps, RequestContext } from './ports.ts';
import { checkClientName } from './validation.ts';

async function pair(
  tx: C2Repositories,
  source: string,
  target: string,
): Promise<{ source: ClientRow; target: ClientRow }> {
  return { source: await activeClient(tx, source), target: await activeClient(tx, target) };
}

function distinct(source: string, target: string): void {
  if (source === target) {
    throw new C2Error('C2_VALIDATION', 'source and target must be different clients', {
      details: { field: 'targetClient.name' },
    });
  }
}

/**
 * LinkClient: adds `source` to `target`'s linked clients (directed; database only).
 * @throws C2Error `C2_NOT_FOUND`, `C2_VALIDATION`
 */
export async function linkClient(
  deps: DomainDeps,
  ctx: RequestContext,
  sourceName: unknown,
  targetName: unknown,
): Promise<{ readonly linked: boolean }> {
  const source = checkClientName(sourceName, 'sourceClient.name');
  const target = checkClientName(targetName, 'targetClient.name');
  distinct(source, target);
  return await mutate(deps, ctx, 'LinkClient', { source, target }, async (tx) => {
    const rows = await pair(tx, source, target);
    const linked = await tx.peers.link(rows.target.id, rows.source.id);
    if (linked)
      await tx.journal.event({ type: 'client.linked', clientName: target, details: { source } });
    return { linked };
  });
}

/**
 * UnlinkClient (database only).
 * @throws C2Error `C2_NOT_FOUND` when a client or the link does not exist
 */
export async function unlinkClient(
  deps: DomainDeps,
  ctx: RequestContext,
  sourceName: unknown,
  targetName: unknown,
): Promise<{ readonly unlinked: true }> {
  const source = checkClientName(sourceName, 'sourceClient.name');
  const target = checkClientName(targetName, 'targetClient.name');
  return await mutate(deps, ctx, 'UnlinkClient', { source, target }, async (tx) => {
    const rows = await pair(tx, source, target);
    if (!(await tx.peers.unlink(rows.target.id, rows.source.id))) {
      throw new C2Error('C2_NOT_FOUND', 'the clients are not linked', {
        details: { source, target },
      });
    }
    await tx.journal.event({ type: 'client.unlinked', clientName: target, details: { source } });
    return { unlinked: true } as const;
  });
}

/**
 * Refuses to send a source's public key that no device may hold as a peer key, with the error
 * registration gives (checkClientKey). Registration refuses low-order keys, but an earlier
 * release stored them: with one (the identity point, say) a signature that verifies for every
 * message is public, so the target would take anyone's message as the source's.
 * @throws C2Error `C2_VALIDATION` (`details.field`: `sourceClient.name`)
 */
async function checkPeerKey(tx: C2Repositories, source: ClientRow): Promise<void> {
  const key = await tx.clients.key(source.id, source.keyVersion);
  checkClientKey('pubkey', key?.publicKey ?? undefined, 'sourceClient.name');
}

async function pubKeyChange(
  deps: DomainDeps,
  ctx: RequestContext,
  operation: string,
  source: string,
  target: string,
  remove: boolean,
): Promise<{ readonly queued: true }> {
  requireMode(deps, 'pubkey', operation);
  return await mutate(deps, ctx, operation, { source, target }, async (tx) => {
    const rows = await pair(tx, source, target);
    if (!remove) await checkPeerKey(tx, rows.source);
    await tx.peers.setPubKey(
      rows.target.id,
      rows.source.e4Id,
      rows.source.id,
      remove ? 0 : rows.source.keyVersion,
    );
    await tx.journal.enqueue(rows.target.id, remove ? 'pubkey-removed' : 'pubkey-sent');
    await audit(tx, ctx, {
      operation,
      subjectKind: 'pubkey',
      subject: `${source} -> ${target}`,
      ...(remove ? {} : { keyVersion: rows.source.keyVersion }),
    });
    await tx.journal.event({
      type: remove ? 'pubkey.removed' : 'pubkey.sent',
      clientName: target,
      details: { source },
    });
    return { queued: true } as const;
  });
}

/**
 * SendClientPubKey: the target device is to hold the source's current public key (SetPubKey);
 * it follows later rotations of the source's key automatically.
 * @throws C2Error `C2_CRYPTO_MODE`, `C2_NOT_FOUND`, `C2_VALIDATION`
 */
export async function sendClientPubKey(
  deps: DomainDeps,
  ctx: RequestContext,
  sourceName: unknown,
  targetName: unknown,
): Promise<{ readonly queued: true }> {
  requireMode(deps, 'pubkey', 'SendClientPubKey');
  const source = checkClientName(sourceName, 'sourceClient.name');
  const target = checkClientName(targetName, 'targetClient.name');
  distinct(source, target);
  return await pubKeyChange(deps, ctx, 'SendClientPubKey', source, target, false);
}

/**
 * RemoveClientPubKey: the target device drops the source's public key (RemovePubKey).
 * @throws C2Error `C2_CRYPTO_MODE`, `C2_NOT_FOUND`, `C2_VALIDATION`
 */
export async function removeClientPubKey(
  deps: DomainDeps,
  ctx: RequestContext,
  sourceName: unknown,
  targetName: unknown,
): Promise<{ readonly queued: true }> {
  requireMode(deps, 'pubkey', 'RemoveClientPubKey');
  const source = checkClientName(sourceName, 'sourceClient.name');
  const target = checkClientName(targetName, 'targetClient.name');
  distinct(source, target);
  return await pubKeyChange(deps, ctx, 'RemoveClientPubKey', source, target, true);
}

/**
 * ResetClientPubKeys: the target device drops every peer public key (ResetPubKeys).
 * @throws C2Error `C2_CRYPTO_MODE`, `C2_NOT_FOUND`
 */
export async function resetClientPubKeys(
  deps: DomainDeps,
  ctx: RequestContext,
  targetName: unknown,
): Promise<{ readonly queued: true }> {
  requireMode(deps, 'pubkey', 'ResetClientPubKeys');
  const target = checkClientName(targetName, 'targetClient.name');
  return await mutate(deps, ctx, 'ResetClientPubKeys', { target }, async (tx) => {
    const row = await activeClient(tx, target);
    await tx.clients.bumpDeliveryEpoch(row.id);
    await tx.peers.clearPubKeys(row.id);
    await tx.peers.addCommand(row.id, 'ResetPubKeys');
    await tx.journal.enqueue(row.id, 'pubkeys-reset');
    await audit(tx, ctx, {
      operation: 'ResetClientPubKeys',
      subjectKind: 'pubkey',
      subject: target,
    });
    await tx.journal.event({ type: 'pubkey.reset', clientName: target });
    return { queued: true } as const;
  });
}
