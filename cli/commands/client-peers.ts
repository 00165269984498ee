/**
 * `client ...` verbs between clients (reference API): links, and in public-key mode the
 * commands that give one device another's public key.
 */
import type { ReferenceRpcs } from '../api.ts';
import type { CommandSpec } from '../spec.ts';
import { CLIENT_NAME, listPaged, PAGING_FLAGS, SOURCE_TARGET_FLAGS } from './shared.ts';

type PairRpc = {
  [M in keyof ReferenceRpcs]: ReferenceRpcs[M]['request'] extends {
    sourceClient: unknown;
    targetClient: unknown;
  }
    ? M
    : never;
}[keyof ReferenceRpcs];

function pairCommand(
  verb: string,
  rpc: PairRpc,
  summary: string,
  done: (source: string, target: string) => string,
  action: string,
): CommandSpec {
  return {
    path: ['client', verb],
    summary,
    calls: [`pb.C2/${rpc}`],
    flags: SOURCE_TARGET_FLAGS,
    examples: [`client ${verb} --source sensor-1 --target gateway-1`],
    async run(ctx) {
      const source = ctx.flags.string('source');
      const target = ctx.flags.string('target');
      await ctx.api.reference(
        rpc,
        { sourceClient: { name: source }, targetClient: { name: target } },
        { idempotencyKey: ctx.globals.requestId },
      );
      ctx.out.result({ source, target, [action]: true }, done(source, target));
    },
  };
}

const linkClient = pairCommand(
  'link-client',
  'LinkClient',
  'Link client --source to client --target (one way; nothing is sent)',
  (s, t) => `successfully linked client ${s} on client ${t}\n`,
  'linked',
);

const unlinkClient = pairCommand(
  'unlink-client',
  'UnlinkClient',
  'Remove the link from client --source to client --target',
  (s, t) => `successfully unlinked client ${s} from client ${t}\n`,
  'unlinked',
);

const sendPubkey = pairCommand(
  'send-pubkey',
  'SendClientPubKey',
  "Send client --source's public key to client --target (public-key mode)",
  (s, t) => `Client ${s} pubkey successfully sent to client ${t}\n`,
  'sent',
);

const removePubkey = pairCommand(
  'remove-pubkey',
  'RemoveClientPubKey',
  "Tell client --target to forget client --source's public key (public-key mode)",
  (s, t) => `Command to remove client ${s} pubkey successfully sent to client ${t}\n`,
  'removed',
);

const resetPubkeys: CommandSpec = {
  path: ['client', 'reset-pubkeys'],
  summary: 'Tell client --target to forget every public key it holds (public-key mode)',
  calls: ['pb.C2/ResetClientPubKeys'],
  flags: SOURCE_TARGET_FLAGS.filter((f) => f.name === 'target'),
  examples: ['client reset-pubkeys --target gateway-1'],
  async run(ctx) {
    const target = ctx.flags.string('target');
    await ctx.api.reference(
      'ResetClientPubKeys',
      { targetClient: { name: target } },
      { idempotencyKey: ctx.globals.requestId },
    );
    ctx.out.result(
      { target, reset: true },
      `Command to reset pubkeys successfully sent to client ${target}\n`,
    );
  },
};

const listLinkedClients: CommandSpec = {
  path: ['client', 'list-linked-clients'],
  summary: 'List the clients linked to a client, one per line',
  calls: ['pb.C2/CountLinkedClients', 'pb.C2/GetLinkedClients'],
  flags: [CLIENT_NAME, ...PAGING_FLAGS],
  examples: ['client list-linked-clients --name gateway-1'],
  run(ctx) {
    const client = { name: ctx.flags.string('name') };
    return listPaged(
      ctx,
      'clients',
      () => ctx.api.reference('CountLinkedClients', { client }),
      async (offset, count) =>
        (await ctx.api.reference('GetLinkedClients', { client, offset, count })).clients.map(
          (c) => c.name,
        ),
    );
  },
};

/** The `client` verbs between clients. */
export const CLIENT_PEER_COMMANDS: readonly CommandSpec[] = [
  linkClient,
  unlinkClient,
  listLinkedClients,
  sendPubkey,
  removePubkey,
  resetPubkeys,
];
