/**
 * `topic ...` (reference: create, remove, list, list-clients; ours: show, rotate) and `status`,
 * the rollout of one topic key version.
 */
import { status as GrpcStatus } from '@grpc/grpc-js';
import type { Rollout, RotationStatus, TopicDetails } from '../api.ts';
import { isGrpcStatusError } from '../errors.ts';
import { renderFields, renderTable } from '../output.ts';
import { UINT32_MAX, type CommandSpec } from '../spec.ts';
import { listPaged, PAGING_FLAGS, TOPIC_NAME } from './shared.ts';

/**
 * `topic create` through our NewTopic, which says whether the topic was created; a server
 * without it (the reference C2, an earlier release) is sent the reference NewTopic, which does
 * the same without saying which: `created` is then null.
 */
const create: CommandSpec = {
  path: ['topic', 'create'],
  summary: 'Create a topic, or rotate its key if it exists, and send the key to its clients',
  description:
    'Creates a topic with a fresh key; on an existing topic this rotates the key (the ' +
    'reference NewTopic is an upsert) and the new key goes to every client of the topic, and ' +
    'the output says which was done. "topic rotate" rotates only a topic that exists.',
  calls: ['e4c2.v1.C2Admin/NewTopic', 'pb.C2/NewTopic (fallback)'],
  flags: [TOPIC_NAME],
  examples: ['topic create --name sensors/temp', 'topic create --name sensors/temp --json'],
  async run(ctx) {
    const topic = ctx.flags.string('name');
    let result;
    try {
      result = await ctx.api.admin('NewTopic', { name: topic, request_id: ctx.globals.requestId });
    } catch (err) {
      if (!isGrpcStatusError(err) || err.code !== GrpcStatus.UNIMPLEMENTED) throw err;
      await ctx.api.reference('NewTopic', { topic }, { idempotencyKey: ctx.globals.requestId });
      ctx.out.result(
        { topic, created: null },
        `Topic ${topic} created, or its key rotated if it existed (this server does not say which)\n`,
      );
      return;
    }
    ctx.out.result(
      { topic, ...result },
      result.created
        ? `Topic ${topic} created successfully\n`
        : `Topic ${topic} already existed: its key was rotated to version ${result.key_version} (fingerprint ${result.fingerprint}, ${result.members} members)\n`,
    );
  },
};

const remove: CommandSpec = {
  path: ['topic', 'remove'],
  summary: 'Remove a topic and its client links (no command reaches the clients)',
  calls: ['pb.C2/RemoveTopic'],
  flags: [TOPIC_NAME],
  examples: ['topic remove --name sensors/temp'],
  async run(ctx) {
    const topic = ctx.flags.string('name');
    await ctx.api.reference('RemoveTopic', { topic }, { idempotencyKey: ctx.globals.requestId });
    ctx.out.result({ topic, removed: true }, `Topic ${topic} removed successfully\n`);
  },
};

const list: CommandSpec = {
  path: ['topic', 'list'],
  summary: 'List topics, one per line',
  calls: ['pb.C2/CountTopics', 'pb.C2/GetTopics'],
  flags: PAGING_FLAGS,
  examples: ['topic list'],
  run: (ctx) =>
    listPaged(
      ctx,
      'topics',
      () => ctx.api.reference('CountTopics', {}),
      async (offset, count) => (await ctx.api.reference('GetTopics', { offset, count })).topics,
    ),
};

const listClients: CommandSpec = {
  path: ['topic', 'list-clients'],
  summary: 'List the clients of a topic, one name per line',
  calls: ['pb.C2/CountClientsForTopic', 'pb.C2/GetClientsForTopic'],
  flags: [TOPIC_NAME, ...PAGING_FLAGS],
  examples: ['topic list-clients --name sensors/temp'],
  run(ctx) {
    const topic = ctx.flags.string('name');
    return listPaged(
      ctx,
      'clients',
      () => ctx.api.reference('CountClientsForTopic', { topic }),
      async (offset, count) =>
        (await ctx.api.reference('GetClientsForTopic', { topic, offset, count })).clients.map(
          (c) => c.name,
        ),
    );
  },
};

function rolloutText(rollout: Rollout | null): string {
  if (rollout === null) return '-';
  return `${rollout.members} members: ${rollout.delivered} delivered (${rollout.confirmed ?? 0} confirmed by receipts), ${rollout.pending} pending, ${rollout.failed} failed`;
}

/** The human view of `topic show`. */
export function renderTopic(details: TopicDetails): string {
  const fields = renderFields([
    ['name', details.name],
    ['topic hash', details.topic_hash],
    ['key version', String(details.key_version)],
    ['rollout', rolloutText(details.rollout)],
  ]);
  const keys = renderTable(
    ['key version', 'fingerprint', 'created'],
    details.keys.map((k) => [String(k.version), k.fingerprint, k.created_at]),
  );
  return `${fields}\n${keys}`;
}

/** The human view of `status`. */
export function renderStatus(status: RotationStatus): string {
  const r = status.rollout ?? { members: 0, delivered: 0, pending: 0, failed: 0 };
  return renderFields([
    ['topic', status.topic],
    ['key version', String(status.key_version)],
    ['members', String(r.members)],
    ['delivered', `${r.delivered} (accepted by the broker)`],
    ['confirmed', `${r.confirmed ?? 0} (acknowledged by devices that send receipts)`],
    ['pending', String(r.pending)],
    ['failed', String(r.failed)],
  ]);
}

const show: CommandSpec = {
  path: ['topic', 'show'],
  summary: 'Show a topic: key versions and fingerprints, rollout of the current key',
  calls: ['e4c2.v1.C2Admin/GetTopic'],
  flags: [TOPIC_NAME],
  examples: ['topic show --name sensors/temp'],
  async run(ctx) {
    const details = await ctx.api.admin('GetTopic', { name: ctx.flags.string('name') });
    ctx.out.result(details, renderTopic(details));
  },
};

const rotate: CommandSpec = {
  path: ['topic', 'rotate'],
  summary: 'Rotate the key of a topic; prints the new key version',
  description:
    'Rotates the key of an existing topic (e4c2.v1 RotateTopicKey) and prints the new version. ' +
    'A retried call with the same --request-id returns the same version instead of rotating ' +
    'twice. Follow the rollout with "status --topic".',
  calls: ['e4c2.v1.C2Admin/RotateTopicKey'],
  flags: [TOPIC_NAME],
  examples: ['topic rotate --name sensors/temp', 'topic rotate --name sensors/temp --json'],
  async run(ctx) {
    const topic = ctx.flags.string('name');
    const response = await ctx.api.admin('RotateTopicKey', {
      name: topic,
      request_id: ctx.globals.requestId,
    });
    ctx.out.result(
      { topic, ...response },
      `Topic ${topic} key rotated to version ${response.key_version} (fingerprint ${response.fingerprint}, ${response.members} members)\n`,
    );
  },
};

const status: CommandSpec = {
  path: ['status'],
  summary: 'Rollout of a topic key: members, delivered, pending, failed',
  description:
    'Shows how far the delivery of a topic key version has come (default: the current ' +
    'version): how many member devices have it, how many are still pending, how many failed.',
  calls: ['e4c2.v1.C2Admin/GetRotationStatus'],
  flags: [
    { name: 'topic', kind: 'string', value: 'TOPIC', description: 'the topic', required: true },
    {
      name: 'version',
      kind: 'integer',
      value: 'V',
      min: 1,
      max: UINT32_MAX,
      description: 'key version (default: the current one)',
    },
  ],
  examples: ['status --topic sensors/temp', 'status --topic sensors/temp --version 2 --json'],
  async run(ctx) {
    const response = await ctx.api.admin('GetRotationStatus', {
      name: ctx.flags.string('topic'),
      version: ctx.flags.integer('version', 0),
    });
    ctx.out.result(response, renderStatus(response));
  },
};

const traffic: CommandSpec = {
  path: ['topic', 'traffic'],
  summary: 'What traffic monitoring saw on a topic: messages by key version and class',
  description:
    'Needs traffic monitoring on the C2 (E4C2_MONITORING). Classes: current, previous_key (the ' +
    'sender has not applied a rotation), stale (replayed or skewed clock), forged, unencrypted. ' +
    'In public-key mode also lists the devices by the key version they were last seen using, ' +
    'oldest first.',
  calls: ['e4c2.v1.C2Admin/GetTopicTraffic'],
  flags: [
    { name: 'name', kind: 'string', value: 'TOPIC', description: 'the topic', required: true },
  ],
  examples: ['topic traffic --name sensors/temp', 'topic traffic --name sensors/temp --json'],
  async run(ctx) {
    const t = await ctx.api.admin('GetTopicTraffic', { name: ctx.flags.string('name') });
    const counts = renderTable(
      ['version', 'class', 'messages', 'last seen'],
      t.counts.map((c) => [String(c.key_version), c.class, String(c.messages), c.last_at]),
    );
    const devices =
      t.devices.length === 0
        ? ''
        : '\n' +
          renderTable(
            ['device', 'version', 'last seen'],
            t.devices.map((d) => [d.client, String(d.key_version), d.last_at]),
          );
    ctx.out.result(
      t,
      `topic ${t.topic}, current key version ${t.key_version}\n${counts}${devices}`,
    );
  },
};

/** The `topic` verbs and `status`. */
export const TOPIC_COMMANDS: readonly CommandSpec[] = [
  create,
  remove,
  list,
  listClients,
  show,
  rotate,
  traffic,
  status,
];
