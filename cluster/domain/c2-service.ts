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
import * as restore from './restore-ops.ts';
import * as topics from './topic-ops.ts';
import * as traffic from './traffic-ops.ts';

/** Events a sequencer positions per transaction. */
const EVENT_SEQUENCE_BATCH = 5000;

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
  resyncClient(
    ctx: RequestContext,
    name: unknown,
    options?: clients.ResyncOptions,
  ): ReturnType<typeof clients.resyncClient> {
    return clients.resyncClient(this.deps, ctx, name, options);
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
  /** What traffic monitoring saw on a topic (key versions in use, plaintext, forgeries). */
  topicTraffic(topic: unknown): Promise<traffic.TopicTraffic> {
    return traffic.topicTraffic(this.deps, topic);
  }
  /** For the traffic monitor: a topic's newest keys, unsealed (the caller zeroes them). */
  monitoringKeys(topic: string, versions: number): Promise<traffic.MonitoringKeys | undefined> {
    return traffic.monitoringKeys(this.deps, topic, versions);
  }
  /** For the traffic monitor: stores a flush of its counters. */
  recordTraffic(
    counts: Parameters<typeof traffic.recordTraffic>[1],
    uses: Parameters<typeof traffic.recordTraffic>[2],
  ): Promise<void> {
    return traffic.recordTraffic(this.deps, counts, uses);
  }
  /** For the traffic monitor: a device's public key by E4 id (public-key mode). */
  devicePublicKey(e4Id: Uint8Array): Promise<Uint8Array | undefined> {
    return traffic.devicePublicKey(this.deps, e4Id);
  }
  listTopics(cursor: unknown, limit: unknown): ReturnType<typeof queries.listTopics> {
    return queries.listTopics(this.deps, cursor, limit);
  }
  /** The current C2 public key (public-key mode). */
  c2PublicKey(): ReturnType<typeof queries.c2PublicKey> {
    return queries.c2PublicKey(this.deps);
  }
  /**
   * After a restore from a backup: rotates every topic key above anything issued since the
   * backup, reports (and marks) the clients that became unreachable, moves the event stream past
   * every position handed out before. See {@link restore.reconcileAfterRestore}.
   */
  reconcileAfterRestore(
    ctx: RequestContext,
    options?: restore.RestoreOptions,
  ): ReturnType<typeof restore.reconcileAfterRestore> {
    return restore.reconcileAfterRestore(this.deps, ctx, options);
  }
  /** Whether a restore awaits its reconciliation, and where it left the event stream. */
  restoreStatus(): ReturnType<typeof restore.restoreStatus> {
    return restore.restoreStatus(this.deps);
  }
  /**
   * Events after a stream position, for resumable subscribers: every committed event is first
   * given its position (see {@link C2Service.sequenceEvents}), so the answer is up to date.
   */
  async eventsAfter(
    seq: string,
    limit: number,
  ): ReturnType<DomainDeps['store']['read']['journal']['eventsAfter']> {
    await this.sequenceEvents();
    return this.deps.store.read.journal.eventsAfter(seq, limit);
  }
  /**
   * Gives committed events their stream positions (one sequencer at a time, cluster-wide) and,
   * when there were any, notifies every node's subscribers. Cheap when there is nothing to do.
   * @returns how many events were positioned
   */
  async sequenceEvents(): Promise<number> {
    const journal = this.deps.store.read.journal;
    if (!(await journal.hasUnsequencedEvents())) return 0;
    return this.deps.store.transaction((tx) => tx.journal.sequenceEvents(EVENT_SEQUENCE_BATCH));
  }
  /**
   * The stream position of the last committed event ("0" when none): where a live-only stream
   * starts. Committed events are positioned first, so "from now on" excludes them.
   */
  async latestEventSeq(): Promise<string> {
    while ((await this.sequenceEvents()) === EVENT_SEQUENCE_BATCH);
    return this.deps.store.read.journal.latestEventSeq();
  }
}
