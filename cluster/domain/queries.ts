/** Read use-cases: counts, lists, and details with key versions and fingerprints (never keys). */
import { toHex } from '../../e4/index.ts';
import { C2Error } from '../errors.ts';
import type { ClientRow, ObservedKeyUse, RotationCounts } from '../storage/index.ts';
import { notFound } from './mutation.ts';
import type { DomainDeps } from './ports.ts';
import {
  checkClientName,
  checkLimit,
  checkPage,
  checkTopicName,
  decodeCursor,
  encodeCursor,
} from './validation.ts';

async function client(deps: DomainDeps, name: unknown, field?: string): Promise<ClientRow> {
  const clientName = checkClientName(name, field);
  const row = await deps.store.read.clients.byName(clientName);
  if (row?.status !== 'active') throw notFound('client', clientName);
  return row;
}

async function topicId(deps: DomainDeps, name: unknown): Promise<string> {
  const topicName = checkTopicName(name);
  const row = await deps.store.read.topics.byName(topicName);
  if (row === undefined) throw notFound('topic', topicName);
  return row.id;
}

/** CountClients. */
export function countClients(deps: DomainDeps): Promise<number> {
  return deps.store.read.clients.count();
}

/** GetClients: names ordered by name. @throws C2Error `C2_VALIDATION` */
export function getClients(deps: DomainDeps, offset: unknown, count: unknown): Promise<string[]> {
  return deps.store.read.clients.names(checkPage(offset, count, deps.maxPageSize));
}

/** CountTopics. */
export function countTopics(deps: DomainDeps): Promise<number> {
  return deps.store.read.topics.count();
}

/** GetTopics: names ordered by name. @throws C2Error `C2_VALIDATION` */
export function getTopics(deps: DomainDeps, offset: unknown, count: unknown): Promise<string[]> {
  return deps.store.read.topics.names(checkPage(offset, count, deps.maxPageSize));
}

/** CountTopicsForClient. @throws C2Error `C2_NOT_FOUND`, `C2_VALIDATION` */
export async function countTopicsForClient(deps: DomainDeps, name: unknown): Promise<number> {
  return deps.store.read.memberships.countForClient((await client(deps, name)).id);
}

/** GetTopicsForClient. @throws C2Error `C2_NOT_FOUND`, `C2_VALIDATION` */
export async function getTopicsForClient(
  deps: DomainDeps,
  name: unknown,
  offset: unknown,
  count: unknown,
): Promise<string[]> {
  const page = checkPage(offset, count, deps.maxPageSize);
  return deps.store.read.memberships.topicNamesForClient((await client(deps, name)).id, page);
}

/** CountClientsForTopic. @throws C2Error `C2_NOT_FOUND`, `C2_VALIDATION` */
export async function countClientsForTopic(deps: DomainDeps, topic: unknown): Promise<number> {
  return deps.store.read.memberships.countForTopic(await topicId(deps, topic));
}

/** GetClientsForTopic. @throws C2Error `C2_NOT_FOUND`, `C2_VALIDATION` */
export async function getClientsForTopic(
  deps: DomainDeps,
  topic: unknown,
  offset: unknown,
  count: unknown,
): Promise<string[]> {
  const page = checkPage(offset, count, deps.maxPageSize);
  return deps.store.read.memberships.clientNamesForTopic(await topicId(deps, topic), page);
}

/** CountLinkedClients. @throws C2Error `C2_NOT_FOUND`, `C2_VALIDATION` */
export async function countLinkedClients(deps: DomainDeps, name: unknown): Promise<number> {
  return deps.store.read.peers.countLinked((await client(deps, name)).id);
}

/** GetLinkedClients. @throws C2Error `C2_NOT_FOUND`, `C2_VALIDATION` */
export async function getLinkedClients(
  deps: DomainDeps,
  name: unknown,
  offset: unknown,
  count: unknown,
): Promise<string[]> {
  const page = checkPage(offset, count, deps.maxPageSize);
  return deps.store.read.peers.linkedNames((await client(deps, name)).id, page);
}

/** A key version as the API shows it: version, fingerprint and age; never the key. */
export interface KeyVersionInfo {
  readonly version: number;
  readonly fingerprint: string;
  readonly createdAt: string;
}

/** GetClient of our API. */
export interface ClientDetails {
  readonly name: string;
  readonly id: string;
  readonly controlTopic: string;
  readonly keyVersion: number;
  readonly deliveredKeyVersion: number;
  readonly c2KeyVersion: number | null;
  readonly keys: readonly KeyVersionInfo[];
  readonly delivery: {
    readonly state: ClientRow['syncState'];
    readonly attempts: number;
    readonly error: string | null;
    readonly failedAt: string | null;
    readonly lastDeliveryAt: string | null;
    /**
     * The last command the device rejected in a delivery receipt (opt-in devices; null if
     * none): when, the receipt's reason, the command. Kept after later successes: compare `at`.
     */
    readonly lastRejection: {
      readonly at: string;
      readonly reason: string;
      readonly command: string;
    } | null;
  };
  readonly topics: ReadonlyArray<{
    readonly topic: string | null;
    readonly topicHash: string;
    readonly desiredVersion: number;
    readonly deliveredVersion: number;
    /**
     * Highest version the device confirmed with a receipt (opt-in devices only; 0: none): which
     * device of a rollout did not confirm, where the rollout only counts them.
     */
    readonly confirmedVersion: number;
    readonly state: 'delivered' | 'pending' | 'revoking' | 'failed';
    /**
     * What traffic monitoring saw the device use on this topic (public-key mode, where messages
     * name their sender; null when it was never seen): the key version, when, and whether that
     * proves the delivered version was lost (see {@link OBSERVED_LAG_GRACE_SECONDS}).
     */
    readonly observed: {
      readonly keyVersion: number;
      readonly at: string;
      readonly behind: boolean;
    } | null;
  }>;
}

/**
 * How long after a membership last changed (a rotation, a delivery) a message under an older
 * key still counts as one in flight, not as proof that the device missed the new key: the
 * monitor's queue and flush (5 s), messages a device published just before applying the key,
 * and clocks a little apart between nodes and PostgreSQL. The default of
 * {@link DomainDeps.observedLagGraceSeconds} (`E4C2_MONITORING_LAG_GRACE_S`): fleets whose
 * devices publish under a key they cached for longer need more.
 */
export const OBSERVED_LAG_GRACE_SECONDS = 60;

/** Client details with key versions, fingerprints and per-topic delivery. @throws C2Error `C2_NOT_FOUND` */
export async function getClient(deps: DomainDeps, name: unknown): Promise<ClientDetails> {
  const row = await client(deps, name);
  const [keys, topics, observedUses] = await Promise.all([
    deps.store.read.clients.keys(row.id),
    deps.store.read.memberships.forClient(row.id),
    // Only signed messages name their sender: in symmetric-key mode nothing is ever recorded.
    deps.mode === 'pubkey'
      ? deps.store.read.traffic.forClient(
          row.id,
          deps.observedLagGraceSeconds ?? OBSERVED_LAG_GRACE_SECONDS,
        )
      : Promise.resolve([]),
  ]);
  const observedByTopic = new Map(observedUses.map((u) => [u.topicId, u]));
  const id = toHex(row.e4Id);
  return {
    name: row.name,
    id,
    controlTopic: `e4/${id}`,
    keyVersion: row.keyVersion,
    deliveredKeyVersion: row.deliveredKeyVersion,
    c2KeyVersion: row.c2KeyVersion,
    keys: keys.map((k) => ({
      version: k.version,
      fingerprint: k.fingerprint,
      createdAt: k.createdAt.toISOString(),
    })),
    delivery: {
      state: row.syncState,
      attempts: row.syncAttempts,
      error: row.syncError,
      failedAt: row.syncFailedAt?.toISOString() ?? null,
      lastDeliveryAt: row.lastDeliveryAt?.toISOString() ?? null,
      lastRejection:
        row.lastRejection === null
          ? null
          : { ...row.lastRejection, at: row.lastRejection.at.toISOString() },
    },
    topics: topics.map((t) => ({
      topic: t.topicName,
      topicHash: toHex(t.topicHash),
      desiredVersion: t.desiredVersion,
      deliveredVersion: t.deliveredVersion,
      confirmedVersion: t.confirmedVersion,
      state:
        t.desiredVersion === 0
          ? 'revoking'
          : t.deliveredVersion >= t.desiredVersion
            ? 'delivered'
            : failedOn(row, t.updatedAt)
              ? 'failed'
              : 'pending',
      observed: observedView(t.topicId === null ? undefined : observedByTopic.get(t.topicId)),
    })),
  };
}

/**
 * Whether the device's failure is about this work: a device that failed before the work changed
 * (a newer rotation) has it still to try, as the rollout counts it.
 */
function failedOn(client: ClientRow, workChangedAt: Date): boolean {
  if (client.syncState === 'unreachable') return true; // nothing is sent to it
  return (
    client.syncState === 'failed' &&
    client.syncFailedAt !== null &&
    client.syncFailedAt >= workChangedAt
  );
}

function observedView(
  use: ObservedKeyUse | undefined,
): ClientDetails['topics'][number]['observed'] {
  if (use === undefined) return null;
  return { keyVersion: use.keyVersion, at: use.lastAt.toISOString(), behind: use.behind };
}

/** GetTopic of our API. */
export interface TopicDetails {
  readonly name: string;
  readonly topicHash: string;
  readonly keyVersion: number;
  readonly keys: readonly KeyVersionInfo[];
  readonly rollout: RotationCounts;
}

/** Topic details: recent key versions and the rollout of the current one. @throws C2Error `C2_NOT_FOUND` */
export async function getTopic(deps: DomainDeps, name: unknown): Promise<TopicDetails> {
  const topicName = checkTopicName(name);
  const row = await deps.store.read.topics.byName(topicName);
  if (row === undefined) throw notFound('topic', topicName);
  const [keys, rollout] = await Promise.all([
    deps.store.read.topics.keys(row.id, 20),
    deps.store.read.memberships.rotationCounts(row.id, row.keyVersion),
  ]);
  return {
    name: row.name,
    topicHash: toHex(row.topicHash),
    keyVersion: row.keyVersion,
    keys: keys.map((k) => ({
      version: k.version,
      fingerprint: k.fingerprint,
      createdAt: k.createdAt.toISOString(),
    })),
    rollout,
  };
}

/**
 * Rotation status: how many member devices hold the given key version (default: current).
 * @throws C2Error `C2_NOT_FOUND`, `C2_VALIDATION`
 */
export async function rotationStatus(
  deps: DomainDeps,
  name: unknown,
  version?: unknown,
): Promise<RotationCounts & { readonly topic: string; readonly keyVersion: number }> {
  const topicName = checkTopicName(name);
  const row = await deps.store.read.topics.byName(topicName);
  if (row === undefined) throw notFound('topic', topicName);
  const v = version === undefined || version === null ? row.keyVersion : Number(version);
  if (!Number.isSafeInteger(v) || v < 1 || v > row.keyVersion) {
    throw new C2Error('C2_VALIDATION', `version must be between 1 and ${row.keyVersion}`, {
      details: { field: 'version' },
    });
  }
  return {
    topic: topicName,
    keyVersion: v,
    ...(await deps.store.read.memberships.rotationCounts(row.id, v)),
  };
}

/** A cursor page of our API. */
export interface CursorPage<T> {
  readonly items: readonly T[];
  readonly nextCursor: string | null;
}

/**
 * A page of at most `n` rows from `fetched` (read with one row more than the page, so that a
 * full last page is known to be the last): a cursor only when more rows follow.
 */
function pageOf<R extends { readonly name: string }>(
  fetched: readonly R[],
  n: number,
): { rows: readonly R[]; nextCursor: string | null } {
  if (fetched.length <= n) return { rows: fetched, nextCursor: null };
  const rows = fetched.slice(0, n);
  const last = rows.at(-1);
  return { rows, nextCursor: last === undefined ? null : encodeCursor(last.name) };
}

/** Lists client names after a cursor. @throws C2Error `C2_VALIDATION` */
export async function listClients(
  deps: DomainDeps,
  cursor: unknown,
  limit: unknown,
): Promise<CursorPage<{ name: string; keyVersion: number; deliveryState: string }>> {
  const n = checkLimit(limit, deps.maxPageSize);
  const { rows, nextCursor } = pageOf(
    await deps.store.read.clients.namesAfter(decodeCursor(cursor), n + 1),
    n,
  );
  return {
    items: rows.map((r) => ({
      name: r.name,
      keyVersion: r.keyVersion,
      deliveryState: r.syncState,
    })),
    nextCursor,
  };
}

/** Lists topics after a cursor. @throws C2Error `C2_VALIDATION` */
export async function listTopics(
  deps: DomainDeps,
  cursor: unknown,
  limit: unknown,
): Promise<CursorPage<{ name: string; keyVersion: number }>> {
  const n = checkLimit(limit, deps.maxPageSize);
  const { rows, nextCursor } = pageOf(
    await deps.store.read.topics.after(decodeCursor(cursor), n + 1),
    n,
  );
  return {
    items: rows.map((r) => ({ name: r.name, keyVersion: r.keyVersion })),
    nextCursor,
  };
}

/**
 * The current C2 public key (public-key mode), which devices are provisioned with.
 * @throws C2Error `C2_CRYPTO_MODE` in symmetric-key mode
 */
export async function c2PublicKey(
  deps: DomainDeps,
): Promise<{ readonly version: number; readonly publicKey: string; readonly fingerprint: string }> {
  if (deps.mode !== 'pubkey')
    throw new C2Error('C2_CRYPTO_MODE', 'there is no C2 key in symmetric-key mode');
  const key = await deps.store.read.journal.latestC2Key();
  if (key === undefined)
    throw new C2Error('C2_FAILED_PRECONDITION', 'the C2 key is not initialised yet');
  return { version: key.version, publicKey: toHex(key.publicKey), fingerprint: key.fingerprint };
}
