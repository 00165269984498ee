/**
 * The C2 use-cases behind one object: every reference operation plus our own. API adapters
 * (gRPC, HTTP) call this and nothing else; it never touches a socket.
 */
import * as clients from './client-ops.ts';
import * as c2keys from './c2key-ops.ts';
import * as messages from './message-ops.ts';
import * as peers from './peer-ops.ts';
import type { DomainDeps, RequestContext } from './ports.ts';
import * as queries from './queries.ts';
import * as topics from './topic-ops.ts';

/** The C2 service. Methods validate their input and throw `C2Error` with a stable code. */
export class C2Service {
  /** @param deps - storage, key vault, mode and limits (see {@link DomainDeps}) */
  constructor(readonly deps: DomainDeps) {}

  /** The deployment's crypto mode. */
  get mode(): DomainDeps['mode'] {
    return this.deps.mode;
  }

  /** Creates the first C2 key in public-key mode; call once at start-up. */
  init(): Promise<number> {
    return c2keys.ensureC2Key(this.deps);
  }

  newClient(
    ctx: RequestContext,
    name: unknown,
    key: unknown,
  ): ReturnType<typeof clients.newClient> {
    return clients.newClient(this.deps, ctx, name, key);
  }
  removeClient(
    ctx: RequestContext,
    name: unknown,
    options?: { reset?: boolean },
  ): ReturnType<typeof clients.removeClient> {
    return clients.removeClient(this.deps, ctx, name, options);
  }
  resetClient(ctx: RequestContext, name: unknown): ReturnType<typeof clients.resetClient> {
    return clients.resetClient(this.deps, ctx, name);
  }
  /** Reference NewClientKey and our RotateClientKey. */
  rotateClientKey(
    ctx: RequestContext,
    name: unknown,
    publicKey?: unknown,
  ): ReturnType<typeof clients.rotateClientKey> {
    return clients.rotateClientKey(this.deps, ctx, name, publicKey);
  }
  resyncClient(ctx: RequestContext, name: unknown): ReturnType<typeof clients.resyncClient> {
    return clients.resyncClient(this.deps, ctx, name);
  }

  newTopic(ctx: RequestContext, topic: unknown): ReturnType<typeof topics.newTopic> {
    return topics.newTopic(this.deps, ctx, topic);
  }
  rotateTopicKey(ctx: RequestContext, topic: unknown): ReturnType<typeof topics.rotateTopicKey> {
    return topics.rotateTopicKey(this.deps, ctx, topic);
  }
  removeTopic(ctx: RequestContext, topic: unknown): ReturnType<typeof topics.removeTopic> {
    return topics.removeTopic(this.deps, ctx, topic);
  }
  newTopicClient(
    ctx: RequestContext,
    client: unknown,
    topic: unknown,
  ): ReturnType<typeof topics.newTopicClient> {
    return topics.newTopicClient(this.deps, ctx, client, topic);
  }
  removeTopicClient(
    ctx: RequestContext,
    client: unknown,
    topic: unknown,
  ): ReturnType<typeof topics.removeTopicClient> {
    return topics.removeTopicClient(this.deps, ctx, client, topic);
  }

  linkClient(
    ctx: RequestContext,
    source: unknown,
    target: unknown,
  ): ReturnType<typeof peers.linkClient> {
    return peers.linkClient(this.deps, ctx, source, target);
  }
  unlinkClient(
    ctx: RequestContext,
    source: unknown,
    target: unknown,
  ): ReturnType<typeof peers.unlinkClient> {
    return peers.unlinkClient(this.deps, ctx, source, target);
  }
  sendClientPubKey(
    ctx: RequestContext,
    source: unknown,
    target: unknown,
  ): ReturnType<typeof peers.sendClientPubKey> {
    return peers.sendClientPubKey(this.deps, ctx, source, target);
  }
  removeClientPubKey(
    ctx: RequestContext,
    source: unknown,
    target: unknown,
  ): ReturnType<typeof peers.removeClientPubKey> {
    return peers.removeClientPubKey(this.deps, ctx, source, target);
  }
  resetClientPubKeys(
    ctx: RequestContext,
    target: unknown,
  ): ReturnType<typeof peers.resetClientPubKeys> {
    return peers.resetClientPubKeys(this.deps, ctx, target);
  }
  newC2Key(ctx: RequestContext, force: unknown): ReturnType<typeof c2keys.newC2Key> {
    return c2keys.newC2Key(this.deps, ctx, force);
  }

  protectMessage(topic: unknown, data: unknown): Promise<Uint8Array> {
    return messages.protectMessage(this.deps, topic, data);
  }
  unprotectMessage(topic: unknown, data: unknown): Promise<Uint8Array> {
    return messages.unprotectMessage(this.deps, topic, data);
  }

  countClients(): Promise<number> {
    return queries.countClients(this.deps);
  }
  getClients(offset: unknown, count: unknown): Promise<string[]> {
    return queries.getClients(this.deps, offset, count);
  }
  countTopics(): Promise<number> {
    return queries.countTopics(this.deps);
  }
  getTopics(offset: unknown, count: unknown): Promise<string[]> {
    return queries.getTopics(this.deps, offset, count);
  }
  countTopicsForClient(client: unknown): Promise<number> {
    return queries.countTopicsForClient(this.deps, client);
  }
  getTopicsForClient(client: unknown, offset: unknown, count: unknown): Promise<string[]> {
    return queries.getTopicsForClient(this.deps, client, offset, count);
  }
  countClientsForTopic(topic: unknown): Promise<number> {
    return queries.countClientsForTopic(this.deps, topic);
  }
  getClientsForTopic(topic: unknown, offset: unknown, count: unknown): Promise<string[]> {
    return queries.getClientsForTopic(this.deps, topic, offset, count);
  }
  countLinkedClients(client: unknown): Promise<number> {
    return queries.countLinkedClients(this.deps, client);
  }
  getLinkedClients(client: unknown, offset: unknown, count: unknown): Promise<string[]> {
    return queries.getLinkedClients(this.deps, client, offset, count);
  }
  getClient(name: unknown): Promise<queries.ClientDetails> {
    return queries.getClient(this.deps, name);
  }
  getTopic(name: unknown): Promise<queries.TopicDetails> {
    return queries.getTopic(this.deps, name);
  }
  rotationStatus(topic: unknown, version?: unknown): ReturnType<typeof queries.rotationStatus> {
    return queries.rotationStatus(this.deps, topic, version);
  }
  listClients(cursor: unknown, limit: unknown): ReturnType<typeof queries.listClients> {
    return queries.listClients(this.deps, cursor, limit);
  }
  listTopics(cursor: unknown, limit: unknown): ReturnType<typeof queries.listTopics> {
    return queries.listTopics(this.deps, cursor, limit);
  }
  /** The current C2 public key (public-key mode). */
  c2PublicKey(): ReturnType<typeof queries.c2PublicKey> {
    return queries.c2PublicKey(this.deps);
  }
  /** Events after a sequence number, for resumable subscribers. */
  eventsAfter(
    seq: string,
    limit: number,
  ): ReturnType<DomainDeps['store']['read']['journal']['eventsAfter']> {
    return this.deps.store.read.journal.eventsAfter(seq, limit);
  }
}
