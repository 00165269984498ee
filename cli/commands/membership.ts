/** `attach`, `detach` and `count` (reference API): clients on topics, and the four counts. */
import type { CommandSpec, FlagSpec } from '../spec.ts';
import { countOf } from './shared.ts';

const CLIENT_AND_TOPIC: readonly FlagSpec[] = [
  { name: 'client', kind: 'string', value: 'NAME', description: 'the client', required: true },
  { name: 'topic', kind: 'string', value: 'TOPIC', description: 'the topic', required: true },
];

const attach: CommandSpec = {
  path: ['attach'],
  summary: 'Add a client to a topic: the topic key is sent to the device',
  calls: ['pb.C2/NewTopicClient'],
  flags: CLIENT_AND_TOPIC,
  examples: ['attach --client sensor-1 --topic sensors/temp'],
  async run(ctx) {
    const client = ctx.flags.string('client');
    const topic = ctx.flags.string('topic');
    await ctx.api.reference(
      'NewTopicClient',
      { client: { name: client }, topic },
      { idempotencyKey: ctx.globals.requestId },
    );
    ctx.out.result(
      { client, topic, attached: true },
      `Successfully attached client ${client} to topic ${topic}\n`,
    );
  },
};

const detach: CommandSpec = {
  path: ['detach'],
  summary: 'Remove a client from a topic: the device is told to drop the topic key',
  calls: ['pb.C2/RemoveTopicClient'],
  flags: CLIENT_AND_TOPIC,
  examples: ['detach --client sensor-1 --topic sensors/temp'],
  async run(ctx) {
    const client = ctx.flags.string('client');
    const topic = ctx.flags.string('topic');
    await ctx.api.reference(
      'RemoveTopicClient',
      { client: { name: client }, topic },
      { idempotencyKey: ctx.globals.requestId },
    );
    ctx.out.result(
      { client, topic, detached: true },
      `Successfully detached client ${client} from topic ${topic}\n`,
    );
  },
};

const count: CommandSpec = {
  path: ['count'],
  summary: 'Count clients (of a topic) or topics (of a client)',
  calls: [
    'pb.C2/CountClients',
    'pb.C2/CountClientsForTopic',
    'pb.C2/CountTopics',
    'pb.C2/CountTopicsForClient',
  ],
  flags: [
    { name: 'clients', kind: 'boolean', description: 'count clients' },
    { name: 'topics', kind: 'boolean', description: 'count topics' },
    {
      name: 'topic',
      kind: 'string',
      value: 'TOPIC',
      description: 'with --clients: only the clients of this topic',
    },
    {
      name: 'client',
      kind: 'string',
      value: 'NAME',
      description: 'with --topics: only the topics of this client',
    },
  ],
  constraints: [
    { kind: 'exactly-one', flags: ['clients', 'topics'] },
    { kind: 'only-with', flag: 'topic', with: 'clients' },
    { kind: 'only-with', flag: 'client', with: 'topics' },
  ],
  examples: ['count --clients', 'count --clients --topic sensors/temp', 'count --topics'],
  async run(ctx) {
    const topic = ctx.flags.optionalString('topic');
    const client = ctx.flags.optionalString('client');
    let response: { readonly count: string };
    if (ctx.flags.boolean('clients')) {
      response =
        topic === undefined
          ? await ctx.api.reference('CountClients', {})
          : await ctx.api.reference('CountClientsForTopic', { topic });
    } else {
      response =
        client === undefined
          ? await ctx.api.reference('CountTopics', {})
          : await ctx.api.reference('CountTopicsForClient', { client: { name: client } });
    }
    const n = countOf(response);
    ctx.out.result({ count: n }, `${n}\n`);
  },
};

/** `attach`, `detach`, `count`. */
export const MEMBERSHIP_COMMANDS: readonly CommandSpec[] = [attach, detach, count];
