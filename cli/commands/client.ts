/**
 * `client ...`: the reference verbs on one client (create, remove, reset, new-key, list,
 * list-topics) and ours on `e4c2.v1` (show, rotate, resync, remove --reset).
 */
import {
  deriveSymKey,
  E4Error,
  ed25519KeyFromPassword,
  ed25519PublicKey,
  validateName,
} from '../../e4/index.ts';
import type { ClientDetails, ClientTopic } from '../api.ts';
import { CliError, ExitCode } from '../errors.ts';
import { orDash, renderFields, renderTable } from '../output.ts';
import type { CommandContext, CommandSpec } from '../spec.ts';
import { resync } from './client-resync.ts';
import { ed25519PublicKeyFromFile, locally, symKeyFromFile } from './key-file.ts';
import { CLIENT_NAME, listPaged, PAGING_FLAGS, readLocalFile } from './shared.ts';

function checkName(name: string): void {
  try {
    validateName(name);
  } catch (err) {
    if (err instanceof E4Error) throw CliError.input(`invalid name: ${err.message}`);
    throw err;
  }
}

interface ClientKey {
  readonly key: Uint8Array;
  readonly mode: 'symkey' | 'pubkey';
  readonly note: string;
}

/** The key `client create` sends, derived or read for the server's crypto mode. */
function clientKey(
  ctx: CommandContext,
  cryptoMode: string,
  source: 'key' | 'password',
  file: Uint8Array,
): ClientKey {
  if (source === 'password' && file.at(-1) === 0x0a) {
    ctx.out.warn(
      'the password file ends with a newline, which is part of the password (as in the reference c2cli)',
    );
  }
  switch (cryptoMode) {
    case 'CRYPTOMODE_SYMKEY': {
      if (source === 'password') {
        const key = locally('invalid password', () => deriveSymKey(file));
        return { key, mode: 'symkey', note: 'Derived symmetric key from password\n' };
      }
      return { key: symKeyFromFile(file), mode: 'symkey', note: '' };
    }
    case 'CRYPTOMODE_PUBKEY': {
      if (source === 'password') {
        const privateKey = locally('invalid password', () => ed25519KeyFromPassword(file));
        return {
          key: ed25519PublicKey(privateKey),
          mode: 'pubkey',
          note: 'Derived Ed25519 key from password\n',
        };
      }
      return { key: ed25519PublicKeyFromFile(file), mode: 'pubkey', note: '' };
    }
    default:
      throw new CliError(ExitCode.Refused, `unsupported crypto mode: ${cryptoMode}`);
  }
}

const create: CommandSpec = {
  path: ['client', 'create'],
  summary: 'Create a client (or replace its key) from a key file or a password file',
  description:
    'Creates a client, or replaces the key of an existing one (the reference NewClient is an ' +
    'upsert). Asks the server for its crypto mode first. With --password the key is derived ' +
    'locally (Argon2i, as e4go): a symmetric key, or in public-key mode an Ed25519 key pair of ' +
    'which only the public key is sent.',
  calls: ['pb.C2/GetCryptoMode', 'pb.C2/NewClient'],
  flags: [
    CLIENT_NAME,
    {
      name: 'key',
      kind: 'string',
      value: 'FILE',
      description:
        'key file: 32 raw bytes or 64 hex characters (public-key mode: the Ed25519 public key, or a 64-byte private key of which only the public half is sent)',
    },
    {
      name: 'password',
      kind: 'string',
      value: 'FILE',
      description: 'password file, read as is (at least 16 bytes; a final newline is part of it)',
    },
  ],
  constraints: [{ kind: 'exactly-one', flags: ['key', 'password'] }],
  examples: [
    'client create --name sensor-1 --key sensor-1.key',
    'client create --name sensor-2 --password sensor-2.pass',
  ],
  async run(ctx) {
    const name = ctx.flags.string('name');
    checkName(name);
    const keyPath = ctx.flags.optionalString('key');
    const source = keyPath === undefined ? 'password' : 'key';
    const path = keyPath ?? ctx.flags.string('password');
    const file = await readLocalFile(ctx, path, source);
    const { CryptoMode } = await ctx.api.reference('GetCryptoMode', {});
    const { key, mode, note } = clientKey(ctx, CryptoMode, source, file);
    await ctx.api.reference(
      'NewClient',
      { client: { name }, key },
      { idempotencyKey: ctx.globals.requestId },
    );
    ctx.out.result(
      { client: name, created: true, mode, key_source: source },
      `${note}Client ${name} created successfully\n`,
    );
  },
};

const remove: CommandSpec = {
  path: ['client', 'remove'],
  summary: 'Remove a client (--reset: also reset the device first)',
  description:
    'Removes a client and its topic links. Without --reset nothing is sent to the device ' +
    '(reference RemoveClient). With --reset (e4c2.v1 RemoveClient) the device is sent a reset ' +
    'command, so it forgets its topic keys, before the C2 forgets it.',
  calls: ['pb.C2/RemoveClient', 'e4c2.v1.C2Admin/RemoveClient (with --reset)'],
  flags: [
    CLIENT_NAME,
    {
      name: 'reset',
      kind: 'boolean',
      description: 'send the device a reset command before forgetting it',
    },
  ],
  examples: ['client remove --name sensor-1', 'client remove --name sensor-1 --reset'],
  async run(ctx) {
    const name = ctx.flags.string('name');
    if (!ctx.flags.boolean('reset')) {
      await ctx.api.reference(
        'RemoveClient',
        { client: { name } },
        { idempotencyKey: ctx.globals.requestId },
      );
      ctx.out.result({ client: name, removed: true }, `Client ${name} removed successfully\n`);
      return;
    }
    const response = await ctx.api.admin('RemoveClient', {
      name,
      reset: true,
      request_id: ctx.globals.requestId,
    });
    ctx.out.result(
      { client: name, removed: true, reset: true, reset_pending: response.reset_pending },
      `Client ${name} removed successfully${response.reset_pending ? '; reset command queued for delivery' : ''}\n`,
    );
  },
};

function simpleClientCall(
  verb: string,
  rpc: 'ResetClient' | 'NewClientKey',
  summary: string,
  done: (name: string) => string,
  jsonFacts: Record<string, boolean>,
): CommandSpec {
  return {
    path: ['client', verb],
    summary,
    calls: [`pb.C2/${rpc}`],
    flags: [CLIENT_NAME],
    examples: [`client ${verb} --name sensor-1`],
    async run(ctx) {
      const name = ctx.flags.string('name');
      await ctx.api.reference(rpc, { client: { name } }, { idempotencyKey: ctx.globals.requestId });
      ctx.out.result({ client: name, ...jsonFacts }, done(name));
    },
  };
}

const reset = simpleClientCall(
  'reset',
  'ResetClient',
  'Send a client the command to forget all its topic keys',
  (name) => `Client ${name} reset successfully\n`,
  { reset: true },
);

const newKey = simpleClientCall(
  'new-key',
  'NewClientKey',
  'Generate a new identity key for a client and send it to the device',
  (name) => `Client ${name} key regenerated successfully\n`,
  { new_key: true },
);

const list: CommandSpec = {
  path: ['client', 'list'],
  summary: 'List clients, one name per line',
  calls: ['pb.C2/CountClients', 'pb.C2/GetClients'],
  flags: PAGING_FLAGS,
  examples: ['client list', 'client list --offset 100 --count 50'],
  run: (ctx) =>
    listPaged(
      ctx,
      'clients',
      () => ctx.api.reference('CountClients', {}),
      async (offset, count) =>
        (await ctx.api.reference('GetClients', { offset, count })).clients.map((c) => c.name),
    ),
};

const listTopics: CommandSpec = {
  path: ['client', 'list-topics'],
  summary: 'List the topics of a client, one per line',
  calls: ['pb.C2/CountTopicsForClient', 'pb.C2/GetTopicsForClient'],
  flags: [CLIENT_NAME, ...PAGING_FLAGS],
  examples: ['client list-topics --name sensor-1'],
  run(ctx) {
    const client = { name: ctx.flags.string('name') };
    return listPaged(
      ctx,
      'topics',
      () => ctx.api.reference('CountTopicsForClient', { client }),
      async (offset, count) =>
        (await ctx.api.reference('GetTopicsForClient', { client, offset, count })).topics,
    );
  },
};

function deliveryText(details: ClientDetails): string {
  const d = details.delivery;
  if (d === null) return '-';
  const parts = [d.state === '' ? 'idle' : d.state];
  if (d.attempts > 0) parts.push(`${d.attempts} attempt${d.attempts === 1 ? '' : 's'}`);
  if (d.last_delivery_at !== '') parts.push(`last delivery ${d.last_delivery_at}`);
  return parts.join(', ');
}

/** The last command the device rejected (delivery receipts), or undefined if none. */
function rejectionText(details: ClientDetails): string | undefined {
  const d = details.delivery;
  if (d === null || d.last_rejected_at === '') return undefined;
  return `${d.last_rejected_command} rejected: ${d.last_rejection_reason} (at ${d.last_rejected_at})`;
}

/** The human view of `client show`. */
export function renderClient(details: ClientDetails): string {
  const fields: [string, string][] = [
    ['name', details.name],
    ['id', orDash(details.id)],
    ['control topic', orDash(details.control_topic)],
    ['key version', `${details.key_version} (delivered ${details.delivered_key_version})`],
    [
      'c2 key version',
      details.c2_key_version === 0 ? '- (symmetric-key mode)' : String(details.c2_key_version),
    ],
    ['delivery', deliveryText(details)],
  ];
  const error = details.delivery?.error ?? '';
  if (error !== '') {
    const at = details.delivery?.failed_at ?? '';
    fields.push(['last error', at === '' ? error : `${error} (at ${at})`]);
  }
  const rejection = rejectionText(details);
  if (rejection !== undefined) fields.push(['last rejection', rejection]);
  const keys = renderTable(
    ['key version', 'fingerprint', 'created'],
    details.keys.map((k) => [String(k.version), k.fingerprint, k.created_at]),
  );
  const topics =
    details.topics.length === 0
      ? 'no topics\n'
      : renderTable(
          ['topic', 'desired', 'delivered', 'confirmed', 'state', 'seen using'],
          details.topics.map((t) => [
            t.topic,
            String(t.desired_version),
            String(t.delivered_version),
            (t.confirmed_version ?? 0) === 0 ? '-' : String(t.confirmed_version),
            t.state,
            seenUsing(t),
          ]),
        );
  return `${renderFields(fields)}\n${keys}\n${topics}`;
}

/** The monitored key version of a topic, flagged when it shows the delivered key was lost. */
function seenUsing(t: ClientTopic): string {
  const version = t.observed_version ?? 0;
  if (version === 0) return '-';
  return t.observed_behind === true ? `${version} (behind: resync)` : String(version);
}

const show: CommandSpec = {
  path: ['client', 'show'],
  summary: 'Show a client: key versions and fingerprints, delivery state, topics',
  calls: ['e4c2.v1.C2Admin/GetClient'],
  flags: [CLIENT_NAME],
  examples: ['client show --name sensor-1', 'client show --name sensor-1 --json'],
  async run(ctx) {
    const details = await ctx.api.admin('GetClient', { name: ctx.flags.string('name') });
    ctx.out.result(details, renderClient(details));
  },
};

const rotate: CommandSpec = {
  path: ['client', 'rotate'],
  summary: 'Rotate the identity key of a client; prints the new key version',
  description:
    'Rotates the identity key of a client (e4c2.v1 RotateClientKey) and prints the new version ' +
    'and fingerprint. In public-key mode, --public-key gives the Ed25519 public key the device ' +
    'generated for itself, in any form client create --key takes (32 bytes, or a 64-byte ' +
    'private key of which only the public half is sent; raw or as hex).',
  calls: ['e4c2.v1.C2Admin/RotateClientKey'],
  flags: [
    CLIENT_NAME,
    {
      name: 'public-key',
      kind: 'string',
      value: 'FILE',
      description:
        "public-key mode: the device's new Ed25519 public key (as client create --key: the public key, or a 64-byte private key of which only the public half is sent)",
    },
  ],
  examples: ['client rotate --name sensor-1', 'client rotate --name sensor-1 --public-key new.pub'],
  async run(ctx) {
    const name = ctx.flags.string('name');
    const path = ctx.flags.optionalString('public-key');
    // The same forms as `client create --key` in public-key mode, through the same parser.
    const publicKey =
      path === undefined
        ? new Uint8Array(0)
        : ed25519PublicKeyFromFile(await readLocalFile(ctx, path, 'key'));
    const response = await ctx.api.admin('RotateClientKey', {
      name,
      public_key: publicKey,
      request_id: ctx.globals.requestId,
    });
    ctx.out.result(
      { client: name, key_version: response.key_version, fingerprint: response.fingerprint },
      `Client ${name} key rotated to version ${response.key_version} (fingerprint ${response.fingerprint})\n`,
    );
  },
};

/** The `client` verbs. */
export const CLIENT_COMMANDS: readonly CommandSpec[] = [
  create,
  remove,
  reset,
  newKey,
  list,
  listTopics,
  show,
  rotate,
  resync,
];
