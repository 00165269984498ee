/** Topic use-cases: create, rotate, remove, and membership (attach, detach). */
import { topicHash } from '../../e4/index.ts';
import { C2Error } from '../errors.ts';
import type { C2Repositories, TopicRow } from '../storage/index.ts';
import { activeClient } from './client-ops.ts';
import { storeNewTopicKey } from './key-material.ts';
import { audit, lockResourceOf, mutate, notFound } from './mutation.ts';
import type { DomainDeps, RequestContext } from './ports.ts';
import {
  checkClientName,
  checkNewName,
  checkNoControlCharacters,
  checkNotReservedTopic,
  checkTopicName,
  newNameRefusal,
} from './validation.ts';

/** Result of creating or rotating a topic key. */
export interface TopicKeyResult {
  readonly created: boolean;
  readonly keyVersion: number;
  readonly fingerprint: string;
  /** Devices the new key is being delivered to. */
  readonly members: number;
}

async function topicOrThrow(tx: C2Repositories, name: string, lock = false): Promise<TopicRow> {
  const topic = await tx.topics.byName(name, lock);
  if (topic === undefined) throw notFound('topic', name);
  return topic;
}

/**
 * Rotates a topic key in one transaction (R1): the row lock queues concurrent rotations, the
 * version compare-and-set fences them, and every member's desired version and outbox row are
 * written by one set-based statement, whatever the fan-out.
 */
async function rotate(
  deps: DomainDeps,
  ctx: RequestContext,
  tx: C2Repositories,
  topic: TopicRow,
  operation: string,
): Promise<TopicKeyResult> {
  const version = topic.keyVersion + 1;
  if (!(await tx.topics.casKeyVersion(topic.id, topic.keyVersion, version))) {
    throw new C2Error('C2_CONFLICT', 'topic key changed concurrently; retry', {
      details: { topic: topic.name },
    });
  }
  const fingerprint = await storeNewTopicKey(deps, tx, topic.id, version);
  const members = await tx.memberships.fanOutVersion(topic.id, version, 'topic-rotated');
  await audit(tx, ctx, {
    operation,
    subjectKind: 'topic',
    subject: topic.name,
    keyVersion: version,
    keyFingerprint: fingerprint,
    details: { members },
  });
  await tx.journal.event({
    type: 'topic.rotated',
    topic: topic.name,
    keyVersion: version,
    details: { members },
  });
  return { created: false, keyVersion: version, fingerprint, members };
}

/**
 * NewTopic: creates the topic with key version 1, or rotates the key of an existing topic (the
 * reference's automation engine and CLI rotate keys this way). The rules for new names apply only
 * when it creates: a topic made before a rule is still rotated.
 * @throws C2Error `C2_VALIDATION`, `C2_CONFLICT`
 */
export async function newTopic(
  deps: DomainDeps,
  ctx: RequestContext,
  name: unknown,
): Promise<TopicKeyResult> {
  const topicName = checkTopicName(name);
  const refusal = newNameRefusal(() =>
    checkNotReservedTopic(checkNoControlCharacters(checkNewName(topicName, 'topic'), 'topic')),
  );
  // Refused at once, without a lock, unless a topic made before the rule has the name.
  if (refusal !== undefined && (await deps.store.read.topics.byName(topicName)) === undefined)
    throw refusal;
  return await mutate(
    deps,
    ctx,
    'NewTopic',
    { topic: topicName },
    async (tx) => {
      if (refusal !== undefined) {
        // Only an existing topic is rotated under a name the rules for new ones refuse.
        const existing = await tx.topics.byName(topicName, true);
        if (existing === undefined) throw refusal;
        return rotate(deps, ctx, tx, existing, 'NewTopic');
      }
      const inserted = await tx.topics.insert(topicName, topicHash(topicName));
      if (inserted === undefined)
        return rotate(deps, ctx, tx, await topicOrThrow(tx, topicName, true), 'NewTopic');
      const fingerprint = await storeNewTopicKey(deps, tx, inserted.id, 1);
      await audit(tx, ctx, {
        operation: 'NewTopic',
        subjectKind: 'topic',
        subject: topicName,
        keyVersion: 1,
        keyFingerprint: fingerprint,
      });
      await tx.journal.event({ type: 'topic.created', topic: topicName, keyVersion: 1 });
      return { created: true, keyVersion: 1, fingerprint, members: 0 };
    },
    lockResourceOf('topic', topicName),
  );
}

/**
 * Our explicit rotation: like NewTopic on an existing topic, but a missing topic is an error.
 * @throws C2Error `C2_NOT_FOUND`, `C2_VALIDATION`, `C2_CONFLICT`
 */
export async function rotateTopicKey(
  deps: DomainDeps,
  ctx: RequestContext,
  name: unknown,
): Promise<TopicKeyResult> {
  const topicName = checkTopicName(name);
  return await mutate(
    deps,
    ctx,
    'RotateTopicKey',
    { topic: topicName },
    async (tx) => rotate(deps, ctx, tx, await topicOrThrow(tx, topicName, true), 'RotateTopicKey'),
    lockResourceOf('topic', topicName),
  );
}

/**
 * RemoveTopic: deletes the topic and, unlike the reference, revokes its key on every member
 * device (RemoveTopic command), so removed topics cannot be read with a lingering key.
 * @throws C2Error `C2_NOT_FOUND`
 */
export async function removeTopic(
  deps: DomainDeps,
  ctx: RequestContext,
  name: unknown,
): Promise<{ readonly revoked: number }> {
  const topicName = checkTopicName(name);
  return await mutate(
    deps,
    ctx,
    'RemoveTopic',
    { topic: topicName },
    async (tx) => {
      const topic = await topicOrThrow(tx, topicName, true);
      const revoked = await tx.memberships.revokeAll(topic.id, 'topic-removed');
      await tx.topics.delete(topic.id);
      await audit(tx, ctx, {
        operation: 'RemoveTopic',
        subjectKind: 'topic',
        subject: topicName,
        details: { revoked },
      });
      await tx.journal.event({ type: 'topic.removed', topic: topicName, details: { revoked } });
      return { revoked };
    },
    lockResourceOf('topic', topicName),
  );
}

/**
 * NewTopicClient: makes the client a member; its current topic key is delivered (SetTopicKey).
 * Attaching an existing member again is a no-op.
 * @throws C2Error `C2_NOT_FOUND`, `C2_VALIDATION`
 */
export async function newTopicClient(
  deps: DomainDeps,
  ctx: RequestContext,
  clientName: unknown,
  name: unknown,
): Promise<{ readonly keyVersion: number }> {
  const client = checkClientName(clientName);
  const topicName = checkTopicName(name);
  return await mutate(deps, ctx, 'NewTopicClient', { client, topic: topicName }, async (tx) => {
    const row = await activeClient(tx, client);
    // Lock the topic so a rotation cannot slip between reading its version and the membership.
    const topic = await topicOrThrow(tx, topicName, true);
    const current = await tx.memberships.get(row.id, topic.topicHash, true);
    if (current?.topicId === topic.id && current.desiredVersion > 0)
      return { keyVersion: topic.keyVersion };
    await tx.memberships.upsert(row.id, topic.topicHash, topic.id, topic.keyVersion);
    await tx.journal.enqueue(row.id, 'member-added');
    await audit(tx, ctx, {
      operation: 'NewTopicClient',
      subjectKind: 'membership',
      subject: `${client} ${topicName}`,
      keyVersion: topic.keyVersion,
    });
    await tx.journal.event({
      type: 'client.subscribed',
      clientName: client,
      topic: topicName,
      keyVersion: topic.keyVersion,
    });
    return { keyVersion: topic.keyVersion };
  });
}

/**
 * RemoveTopicClient: ends a membership and revokes the key on the device (RemoveTopic).
 * @throws C2Error `C2_NOT_FOUND` when the client, the topic or the membership does not exist
 */
export async function removeTopicClient(
  deps: DomainDeps,
  ctx: RequestContext,
  clientName: unknown,
  name: unknown,
): Promise<{ readonly removed: true }> {
  const client = checkClientName(clientName);
  const topicName = checkTopicName(name);
  return await mutate(deps, ctx, 'RemoveTopicClient', { client, topic: topicName }, async (tx) => {
    const row = await activeClient(tx, client);
    const topic = await topicOrThrow(tx, topicName, true);
    const current = await tx.memberships.get(row.id, topic.topicHash, true);
    if (current?.topicId !== topic.id || current.desiredVersion === 0) {
      throw new C2Error('C2_NOT_FOUND', 'client is not a member of the topic', {
        details: { client, topic: topicName },
      });
    }
    await tx.memberships.revoke(row.id, topic.topicHash);
    await tx.journal.enqueue(row.id, 'member-removed');
    await audit(tx, ctx, {
      operation: 'RemoveTopicClient',
      subjectKind: 'membership',
      subject: `${client} ${topicName}`,
    });
    await tx.journal.event({ type: 'client.unsubscribed', clientName: client, topic: topicName });
    return { removed: true } as const;
  });
}
