/**
 * The reference API (`pb.C2`) on the C2 service, as transport-free operations on proto-loader
 * messages. The gRPC server and the `/e4/...` HTTP routes both call these, as grpc-gateway called
 * the one gRPC service, so the two surfaces cannot drift apart.
 */
import type { C2Service, RequestContext, TopicKeyResult } from '../../cluster/domain/index.ts';
import { C2Error } from '../../cluster/errors.ts';
import type { CallContext } from '../api-types.ts';
import { roleAllows } from '../auth/roles.ts';
import type { ProtoMessage } from '../codec/protos.ts';
import {
  boolField,
  bytesField,
  clientNameField,
  int64Field,
  stringField,
} from './message-fields.ts';

/** One unary operation: a request message in, a response message out. */
export type UnaryOperation = (request: ProtoMessage, ctx: CallContext) => Promise<ProtoMessage>;

/** The 28 unary RPCs of `pb.C2` (SubscribeToEventStream is a stream, served by the gRPC layer). */
export const REFERENCE_UNARY_RPCS = [
  'NewClient',
  'RemoveClient',
  'ResetClient',
  'NewClientKey',
  'NewTopic',
  'RemoveTopic',
  'NewTopicClient',
  'RemoveTopicClient',
  'CountTopicsForClient',
  'GetTopicsForClient',
  'CountClientsForTopic',
  'GetClientsForTopic',
  'CountClients',
  'GetClients',
  'CountTopics',
  'GetTopics',
  'LinkClient',
  'UnlinkClient',
  'CountLinkedClients',
  'GetLinkedClients',
  'SendClientPubKey',
  'RemoveClientPubKey',
  'ResetClientPubKeys',
  'NewC2Key',
  'ProtectMessage',
  'UnprotectMessage',
  'HealthCheck',
  'GetCryptoMode',
] as const;

/** Name of a unary reference RPC. */
export type ReferenceUnaryRpc = (typeof REFERENCE_UNARY_RPCS)[number];

/** The domain's request context: the idempotency key is the domain's request id. */
export function requestContext(ctx: CallContext): RequestContext {
  if (ctx.idempotencyKey === undefined) return { actor: ctx.actor };
  return {
    actor: ctx.actor,
    requestId: ctx.idempotencyKey,
    ...(ctx.idempotencyScope === undefined ? {} : { idempotencyScope: ctx.idempotencyScope }),
  };
}

/**
 * NewTopic as the caller's role allows, on either API: an admin (or anyone on an API without
 * authentication) creates the topic or rotates the key of an existing one; a lesser role may
 * only rotate an existing one, since the reference rotates with NewTopic too, and creating a
 * topic stays an admin's.
 * @throws C2Error `C2_PERMISSION_DENIED` for a lesser role on a missing topic, and as
 *   `newTopic` and `rotateTopicKey` do
 */
export async function newTopicAsRoleAllows(
  service: C2Service,
  ctx: CallContext,
  topic: unknown,
): Promise<TopicKeyResult> {
  if (ctx.role === undefined || roleAllows(ctx.role, 'admin'))
    return await service.newTopic(requestContext(ctx), topic);
  return await service.rotateTopicKey(requestContext(ctx), topic).catch((err: unknown) => {
    if (!(err instanceof C2Error) || err.code !== 'C2_NOT_FOUND') throw err;
    throw new C2Error(
      'C2_PERMISSION_DENIED',
      `${ctx.actor} has role ${ctx.role ?? ''}; NewTopic rotates an existing topic for it, and creating one needs admin`,
      { details: { role: ctx.role ?? '', required: 'admin' } },
    );
  });
}

const empty = (): ProtoMessage => ({});
const clients = (names: readonly string[]): ProtoMessage => ({
  clients: names.map((name) => ({ name })),
});

/** Builds the operations of every unary reference RPC. */
export function referenceOperations(
  service: C2Service,
): Readonly<Record<ReferenceUnaryRpc, UnaryOperation>> {
  return {
    // Reference NewClient is an upsert; the domain decides between create and key replacement.
    NewClient: async (req, ctx) => {
      const name = clientNameField(req, 'client');
      await service.newClient(requestContext(ctx), name, bytesField(req, 'key'));
      return empty();
    },
    // Reference semantics: the record goes at once, the device is not reset (our v1 can).
    RemoveClient: async (req, ctx) => {
      await service.removeClient(requestContext(ctx), clientNameField(req, 'client'));
      return empty();
    },
    ResetClient: async (req, ctx) => {
      await service.resetClient(requestContext(ctx), clientNameField(req, 'client'));
      return empty();
    },
    NewClientKey: async (req, ctx) => {
      await service.rotateClientKey(requestContext(ctx), clientNameField(req, 'client'));
      return empty();
    },
    NewTopic: async (req, ctx) => {
      await newTopicAsRoleAllows(service, ctx, stringField(req, 'topic'));
      return empty();
    },
    RemoveTopic: async (req, ctx) => {
      await service.removeTopic(requestContext(ctx), stringField(req, 'topic'));
      return empty();
    },
    NewTopicClient: async (req, ctx) => {
      const name = clientNameField(req, 'client');
      await service.newTopicClient(requestContext(ctx), name, stringField(req, 'topic'));
      return empty();
    },
    RemoveTopicClient: async (req, ctx) => {
      const name = clientNameField(req, 'client');
      await service.removeTopicClient(requestContext(ctx), name, stringField(req, 'topic'));
      return empty();
    },
    CountTopicsForClient: async (req) => ({
      count: String(await service.countTopicsForClient(clientNameField(req, 'client'))),
    }),
    GetTopicsForClient: async (req) => ({
      topics: await service.getTopicsForClient(
        clientNameField(req, 'client'),
        int64Field(req, 'offset'),
        int64Field(req, 'count'),
      ),
    }),
    CountClientsForTopic: async (req) => ({
      count: String(await service.countClientsForTopic(stringField(req, 'topic'))),
    }),
    GetClientsForTopic: async (req) =>
      clients(
        await service.getClientsForTopic(
          stringField(req, 'topic'),
          int64Field(req, 'offset'),
          int64Field(req, 'count'),
        ),
      ),
    CountClients: async () => ({ count: String(await service.countClients()) }),
    GetClients: async (req) =>
      clients(await service.getClients(int64Field(req, 'offset'), int64Field(req, 'count'))),
    CountTopics: async () => ({ count: String(await service.countTopics()) }),
    GetTopics: async (req) => ({
      topics: await service.getTopics(int64Field(req, 'offset'), int64Field(req, 'count')),
    }),
    LinkClient: async (req, ctx) => {
      const source = clientNameField(req, 'sourceClient');
      const target = clientNameField(req, 'targetClient');
      await service.linkClient(requestContext(ctx), source, target);
      return empty();
    },
    UnlinkClient: async (req, ctx) => {
      const source = clientNameField(req, 'sourceClient');
      const target = clientNameField(req, 'targetClient');
      await service.unlinkClient(requestContext(ctx), source, target);
      return empty();
    },
    CountLinkedClients: async (req) => ({
      count: String(await service.countLinkedClients(clientNameField(req, 'client'))),
    }),
    GetLinkedClients: async (req) =>
      clients(
        await service.getLinkedClients(
          clientNameField(req, 'client'),
          int64Field(req, 'offset'),
          int64Field(req, 'count'),
        ),
      ),
    SendClientPubKey: async (req, ctx) => {
      requirePubkey(service, 'SendClientPubKey');
      const source = clientNameField(req, 'sourceClient');
      const target = clientNameField(req, 'targetClient');
      await service.sendClientPubKey(requestContext(ctx), source, target);
      return empty();
    },
    RemoveClientPubKey: async (req, ctx) => {
      requirePubkey(service, 'RemoveClientPubKey');
      const source = clientNameField(req, 'sourceClient');
      const target = clientNameField(req, 'targetClient');
      await service.removeClientPubKey(requestContext(ctx), source, target);
      return empty();
    },
    ResetClientPubKeys: async (req, ctx) => {
      requirePubkey(service, 'ResetClientPubKeys');
      await service.resetClientPubKeys(requestContext(ctx), clientNameField(req, 'targetClient'));
      return empty();
    },
    NewC2Key: async (req, ctx) => {
      await service.newC2Key(requestContext(ctx), boolField(req, 'force'));
      return empty();
    },
    ProtectMessage: async (req) => {
      const topic = stringField(req, 'topic');
      const wire = await service.protectMessage(topic, bytesField(req, 'binaryData'));
      return { topic, protectedBinaryData: Buffer.from(wire) };
    },
    UnprotectMessage: async (req) => {
      const topic = stringField(req, 'topic');
      const clear = await service.unprotectMessage(topic, bytesField(req, 'protectedBinaryData'));
      return { topic, binaryData: Buffer.from(clear) };
    },
    // Liveness only, as the reference; readiness is grpc.health.v1 and GET /readyz.
    HealthCheck: () => Promise.resolve({ Code: '0', Status: 'OK' }),
    GetCryptoMode: () =>
      Promise.resolve({
        CryptoMode: service.mode === 'pubkey' ? 'CRYPTOMODE_PUBKEY' : 'CRYPTOMODE_SYMKEY',
      }),
  };
}

/**
 * The check the domain makes, made before the arguments are looked at, so that in symmetric-key
 * mode these RPCs answer FAILED_PRECONDITION whatever else the request holds.
 * @throws C2Error `C2_CRYPTO_MODE`
 */
function requirePubkey(service: C2Service, operation: string): void {
  if (service.mode !== 'pubkey') {
    throw new C2Error('C2_CRYPTO_MODE', `${operation} is only available in public-key mode`, {
      details: { mode: service.mode },
    });
  }
}
