/** The C2 key (public-key mode): initial pair and staged rotation. */
import { C2Error } from '../errors.ts';
import type { C2Repositories } from '../storage/index.ts';
import { storeNewC2Key } from './key-material.ts';
import { audit, mutate, requireMode } from './mutation.ts';
import type { DomainDeps, RequestContext } from './ports.ts';

/**
 * Makes sure a public-key deployment has a C2 key (version 1 on first start). Safe when several
 * nodes start at once: the insert of version 1 is keyed, and a loser reads the winner's key.
 */
export async function ensureC2Key(deps: DomainDeps): Promise<number> {
  if (deps.mode !== 'pubkey') return 0;
  return deps.store.transaction(async (tx) => {
    const existing = await tx.journal.latestC2Key();
    if (existing !== undefined) return existing.version;
    await tx.journal.putSetting('c2_key_init', 'lock'); // serialises concurrent first starts
    const again = await tx.journal.latestC2Key();
    if (again !== undefined) return again.version;
    await storeNewC2Key(deps, tx, 1);
    return 1;
  });
}

async function enqueueAllClients(tx: C2Repositories, reason: string): Promise<number> {
  let cursor: string | undefined;
  let count = 0;
  for (;;) {
    const page = await tx.clients.namesAfter(cursor, 1000);
    for (const client of page) await tx.journal.enqueue(client.id, reason);
    count += page.length;
    const last = page.at(-1);
    if (last === undefined) return count;
    cursor = last.name;
  }
}

/**
 * NewC2Key: a new C2 key pair becomes the current version. Rotation is staged: each device keeps
 * receiving commands under the C2 key version it holds until SetC2Key for the new one is
 * delivered to it, so no device is orphaned by a partial rollout. `force` must be true.
 * @throws C2Error `C2_CRYPTO_MODE`, `C2_FAILED_PRECONDITION`
 */
export async function newC2Key(
  deps: DomainDeps,
  ctx: RequestContext,
  force: unknown,
): Promise<{ readonly version: number; readonly fingerprint: string; readonly devices: number }> {
  requireMode(deps, 'pubkey', 'NewC2Key');
  if (force !== true) {
    throw new C2Error(
      'C2_FAILED_PRECONDITION',
      'NewC2Key rotates the key of every device: set force to true',
    );
  }
  return await mutate(
    deps,
    ctx,
    'NewC2Key',
    { force: true },
    async (tx) => {
      await tx.journal.putSetting('c2_key_rotation', String(deps.now())); // one rotation at a time
      const latest = await tx.journal.latestC2Key();
      const version = (latest?.version ?? 0) + 1;
      const fingerprint = await storeNewC2Key(deps, tx, version);
      const devices = await enqueueAllClients(tx, 'c2-key-rotated');
      await audit(tx, ctx, {
        operation: 'NewC2Key',
        subjectKind: 'c2key',
        subject: 'c2',
        keyVersion: version,
        keyFingerprint: fingerprint,
        details: { devices },
      });
      await tx.journal.event({ type: 'c2key.rotated', keyVersion: version, details: { devices } });
      return { version, fingerprint, devices };
    },
    'c2key',
  );
}
