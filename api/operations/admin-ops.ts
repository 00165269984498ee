/**
 * Our API (`e4c2.v1.C2Admin`) on the C2 service, as transport-free operations on proto-loader
 * messages, shared by the gRPC server and the `/v1/...` HTTP routes.
 */
import type {
  C2Service,
  IssuedSinceBackup,
  IssuedSubject,
  KeyVersionInfo,
} from '../../cluster/domain/index.ts';
import { C2Error } from '../../cluster/errors.ts';
import type { CallContext } from '../api-types.ts';
import type { ProtoMessage } from '../codec/protos.ts';
import { eventRecord } from '../events/event-records.ts';
import { boolField, bytesField, numberField, stringField } from './message-fields.ts';
import { newTopicAsRoleAllows, requestContext, type UnaryOperation } from './reference-ops.ts';

/** The unary RPCs of `e4c2.v1.C2Admin` (StreamEvents is served by the gRPC layer). */
export const ADMIN_UNARY_RPCS = [
  'GetClient',
  'ListClients',
  'RemoveClient',
  'RotateClientKey',
  'ResyncClient',
  'GetTopic',
  'ListTopics',
  'RotateTopicKey',
  'NewTopic',
  'GetRotationStatus',
  'GetC2PublicKey',
  'ListEvents',
  'ReconcileAfterRestore',
  'GetRestoreStatus',
  'GetTopicTraffic',
] as const;

/** Name of a unary admin RPC. */
export type AdminUnaryRpc = (typeof ADMIN_UNARY_RPCS)[number];

/**
 * The v1 idempotency key: the request's `request_id` field or the transport's key
 * (`idempotency-key` metadata, `Idempotency-Key` header); both given and different is an error.
 * @throws C2Error `C2_VALIDATION`
 */
function v1Context(req: ProtoMessage, ctx: CallContext): CallContext {
  const field = stringField(req, 'request_id');
  if (field === '') return ctx;
  if (ctx.idempotencyKey !== undefined && ctx.idempotencyKey !== field) {
    throw new C2Error(
      'C2_VALIDATION',
      'request_id and the idempotency key header differ; send one of them',
      { details: { field: 'request_id' } },
    );
  }
  return { ...ctx, idempotencyKey: field };
}

const keyVersions = (keys: readonly KeyVersionInfo[]): ProtoMessage[] =>
  keys.map((k) => ({ version: k.version, fingerprint: k.fingerprint, created_at: k.createdAt }));

/**
 * A valid `after_seq` ('' means 0).
 * @throws C2Error `C2_VALIDATION`
 */
export function checkAfterSeq(value: string, field = 'after_seq'): bigint {
  if (value === '') return 0n;
  if (!/^\d{1,19}$/.test(value) || BigInt(value) > 2n ** 63n - 1n) {
    throw new C2Error('C2_VALIDATION', `${field} must be an event sequence number`, {
      details: { field },
    });
  }
  return BigInt(value);
}

/**
 * Where the next page of an empty one starts: `after`, or the newest position when `after` lies
 * past it (a database restored from an earlier backup hands those positions out again; a client
 * told to resume there would never see another event).
 */
async function resumeAt(service: C2Service, after: bigint): Promise<string> {
  if (after === 0n) return '0';
  const latest = BigInt(await service.latestEventSeq());
  return (after > latest ? latest : after).toString();
}

/** The `IssuedSubject` list `key` of a request, by name (a name given twice keeps the highest). */
function issuedSubjects(req: ProtoMessage, key: string): Map<string, IssuedSubject> {
  const list = req[key];
  const found = new Map<string, IssuedSubject>();
  if (!Array.isArray(list)) return found;
  for (const item of list as ProtoMessage[]) {
    const name = stringField(item, 'name');
    if (name === '') {
      throw new C2Error('C2_VALIDATION', `every entry of ${key} needs a name`, {
        details: { field: key },
      });
    }
    const version = numberField(item, 'version');
    const created = stringField(item, 'created_seq');
    if (created !== '' && !/^\d{1,19}$/.test(created)) {
      throw new C2Error('C2_VALIDATION', `created_seq of ${key} entry ${name} must be a position`, {
        details: { field: `${key}.created_seq` },
      });
    }
    const before = found.get(name);
    const createdSeq = created === '' ? before?.createdSeq : BigInt(created);
    found.set(name, {
      version: Math.max(version, before?.version ?? 0),
      removed: boolField(item, 'removed'),
      ...(createdSeq === undefined ? {} : { createdSeq }),
    });
  }
  return found;
}

/** The request's `memberships` (MembershipChange): each with a client and a topic. */
function membershipChanges(
  req: ProtoMessage,
): Array<{ client: string; topic: string; attached: boolean }> {
  const list = req['memberships'];
  if (!Array.isArray(list)) return [];
  return (list as ProtoMessage[]).map((item) => {
    const client = stringField(item, 'client');
    const topic = stringField(item, 'topic');
    if (client === '' || topic === '') {
      throw new C2Error('C2_VALIDATION', 'every entry of memberships needs a client and a topic', {
        details: { field: 'memberships' },
      });
    }
    return { client, topic, attached: boolField(item, 'attached') };
  });
}

/** Builds the operations of every unary admin RPC. */
export function adminOperations(
  service: C2Service,
): Readonly<Record<AdminUnaryRpc, UnaryOperation>> {
  return {
    GetClient: async (req) => {
      const c = await service.getClient(stringField(req, 'name'));
      return {
        name: c.name,
        id: c.id,
        control_topic: c.controlTopic,
        key_version: c.keyVersion,
        delivered_key_version: c.deliveredKeyVersion,
        c2_key_version: c.c2KeyVersion ?? 0,
        keys: keyVersions(c.keys),
        delivery: {
          state: c.delivery.state,
          attempts: c.delivery.attempts,
          error: c.delivery.error ?? '',
          failed_at: c.delivery.failedAt ?? '',
          last_delivery_at: c.delivery.lastDeliveryAt ?? '',
          last_rejected_at: c.delivery.lastRejection?.at ?? '',
          last_rejection_reason: c.delivery.lastRejection?.reason ?? '',
          last_rejected_command: c.delivery.lastRejection?.command ?? '',
        },
        topics: c.topics.map((t) => ({
          topic: t.topic ?? '',
          topic_hash: t.topicHash,
          desired_version: t.desiredVersion,
          delivered_version: t.deliveredVersion,
          confirmed_version: t.confirmedVersion,
          state: t.state,
          observed_version: t.observed?.keyVersion ?? 0,
          observed_at: t.observed?.at ?? '',
          observed_behind: t.observed?.behind ?? false,
        })),
      };
    },
    ListClients: async (req) => {
      const page = await service.listClients(stringField(req, 'cursor'), numberField(req, 'limit'));
      return {
        clients: page.items.map((c) => ({
          name: c.name,
          key_version: c.keyVersion,
          delivery_state: c.deliveryState,
        })),
        next_cursor: page.nextCursor ?? '',
      };
    },
    RemoveClient: async (req, ctx) => {
      const result = await service.removeClient(
        requestContext(v1Context(req, ctx)),
        stringField(req, 'name'),
        { reset: boolField(req, 'reset') },
      );
      return { reset_pending: result.resetPending };
    },
    RotateClientKey: async (req, ctx) => {
      const result = await service.rotateClientKey(
        requestContext(v1Context(req, ctx)),
        stringField(req, 'name'),
        bytesField(req, 'public_key'),
      );
      return { key_version: result.keyVersion, fingerprint: result.fingerprint };
    },
    ResyncClient: async (req, ctx) => {
      const done = await service.resyncClient(
        requestContext(v1Context(req, ctx)),
        stringField(req, 'name'),
      );
      // `?? []`: a reply an earlier release stored for this idempotency key has no keysResent.
      return { keys_resent: [...(done.keysResent ?? [])] };
    },
    GetTopic: async (req) => {
      const t = await service.getTopic(stringField(req, 'name'));
      return {
        name: t.name,
        topic_hash: t.topicHash,
        key_version: t.keyVersion,
        keys: keyVersions(t.keys),
        rollout: { ...t.rollout },
      };
    },
    ListTopics: async (req) => {
      const page = await service.listTopics(stringField(req, 'cursor'), numberField(req, 'limit'));
      return {
        topics: page.items.map((t) => ({ name: t.name, key_version: t.keyVersion })),
        next_cursor: page.nextCursor ?? '',
      };
    },
    RotateTopicKey: async (req, ctx) => {
      const result = await service.rotateTopicKey(
        requestContext(v1Context(req, ctx)),
        stringField(req, 'name'),
      );
      return {
        key_version: result.keyVersion,
        fingerprint: result.fingerprint,
        members: result.members,
      };
    },
    // The reference NewTopic (same roles, same idempotency), saying what it did: whether the
    // topic was created, or existed and had its key rotated.
    NewTopic: async (req, ctx) => {
      const result = await newTopicAsRoleAllows(
        service,
        v1Context(req, ctx),
        stringField(req, 'name'),
      );
      return {
        created: result.created,
        key_version: result.keyVersion,
        fingerprint: result.fingerprint,
        members: result.members,
      };
    },
    GetRotationStatus: async (req) => {
      const version = numberField(req, 'version');
      const s = await service.rotationStatus(
        stringField(req, 'name'),
        version === 0 ? undefined : version,
      );
      return {
        topic: s.topic,
        key_version: s.keyVersion,
        rollout: {
          members: s.members,
          delivered: s.delivered,
          pending: s.pending,
          failed: s.failed,
          confirmed: s.confirmed,
        },
      };
    },
    GetC2PublicKey: async () => {
      const key = await service.c2PublicKey();
      return { version: key.version, public_key: key.publicKey, fingerprint: key.fingerprint };
    },
    GetRestoreStatus: async () => {
      const status = await service.restoreStatus();
      return { pending: status.pending, restored_position: status.restoredPosition ?? '' };
    },
    ReconcileAfterRestore: async (req, ctx) => {
      const margin = stringField(req, 'event_seq_margin');
      const archived = stringField(req, 'archive_last_seq');
      const c2KeyVersion = numberField(req, 'c2_key_version');
      const issued: IssuedSinceBackup = {
        topics: issuedSubjects(req, 'topics'),
        clients: issuedSubjects(req, 'clients'),
        ...(c2KeyVersion === 0 ? {} : { c2KeyVersion }),
        ...(archived === '' ? {} : { lastEventSeq: checkAfterSeq(archived, 'archive_last_seq') }),
        memberships: membershipChanges(req),
      };
      const versionMargin = numberField(req, 'version_margin');
      const r = await service.reconcileAfterRestore(requestContext(ctx), {
        issued,
        force: boolField(req, 'force'),
        ...(versionMargin === 0 ? {} : { versionMargin }),
        ...(margin === ''
          ? {}
          : { eventSeqMargin: Number(checkAfterSeq(margin, 'event_seq_margin')) }),
      });
      return {
        topics_rotated: r.topicsRotated,
        unreachable_clients: r.unreachableClients,
        missing_clients: r.missingClients,
        missing_topics: r.missingTopics,
        resurrected_clients: r.resurrectedClients,
        resurrected_topics: r.resurrectedTopics,
        c2_key_rotated_after_backup: r.c2KeyRotatedAfterBackup,
        archive_ends_before_backup: r.archiveEndsBeforeBackup,
        missing_memberships: r.missingMemberships.map((m) => ({ ...m })),
        resurrected_memberships: r.resurrectedMemberships.map((m) => ({ ...m })),
        event_seq_floor: r.eventSeqFloor,
      };
    },
    GetTopicTraffic: async (req) => {
      const t = await service.topicTraffic(stringField(req, 'name'));
      return {
        topic: t.topic,
        key_version: t.keyVersion,
        counts: t.counts.map((c) => ({
          key_version: c.keyVersion,
          class: c.class,
          messages: c.messages,
          first_at: c.firstAt.toISOString(),
          last_at: c.lastAt.toISOString(),
        })),
        devices: t.devices.map((d) => ({
          client: d.client,
          key_version: d.keyVersion,
          last_at: d.lastAt.toISOString(),
        })),
      };
    },
    ListEvents: async (req) => {
      const after = checkAfterSeq(stringField(req, 'after_seq'));
      const requested = numberField(req, 'limit');
      const max = service.deps.maxPageSize;
      if (requested > max) {
        throw new C2Error('C2_VALIDATION', `limit must be at most ${max}`, {
          details: { field: 'limit' },
        });
      }
      const limit = requested === 0 ? Math.min(100, max) : requested;
      // Positions are gapless and final: resuming after the page's last seq misses nothing.
      const events = await service.eventsAfter(after.toString(), limit);
      const last = events.at(-1)?.seq;
      return {
        events: events.map(eventRecord),
        next_after_seq: last ?? (await resumeAt(service, after)),
      };
    },
  };
}
