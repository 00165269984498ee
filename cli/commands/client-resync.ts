/**
 * `client resync`: sends a client everything it should hold again, for one client (`--name`) or
 * for the whole fleet (`--all`). The fleet form is what an operator needs after a broker lost the
 * commands it had accepted for offline devices (a restart without persistence, devices moved to
 * another broker): the C2 recorded them delivered and will not send them again by itself.
 */
import { createHash } from 'node:crypto';
import { CliError, ExitCode } from '../errors.ts';
import type { CommandContext, CommandSpec } from '../spec.ts';
import { countOf } from './shared.ts';

/** The delivery states `--state` accepts (ListClients' `delivery_state`). */
const STATES = ['idle', 'pending', 'failed', 'unreachable'] as const;
type DeliveryState = (typeof STATES)[number];

/**
 * What `--all` resyncs without `--state`: every state but `unreachable`. Such a device holds a
 * key the C2 does not have (after a restore): everything sent to it would be refused by the
 * device and still be acknowledged by the broker, and a resync would end the state that says so.
 */
const DEFAULT_STATES: readonly DeliveryState[] = ['idle', 'pending', 'failed'];

/** Clients per ListClients page (the server's default page cap is 1,000). */
const LIST_PAGE = 500;

/** Calls in flight at once unless `--concurrency` says otherwise. */
const DEFAULT_CONCURRENCY = 8;

/** A per-client call refused with `ABORTED` (a concurrent change) is tried this often in all. */
const ABORTED_TRIES = 3;

/** At most one progress line per this many milliseconds. */
const PROGRESS_EVERY_MS = 2000;

/** gRPC status names that concern the one client called, not the whole run. */
const PER_CLIENT_REFUSALS = ['NOT_FOUND', 'FAILED_PRECONDITION', 'INVALID_ARGUMENT', 'ABORTED'];

function keysResentText(resent: readonly string[]): string {
  if (resent.length === 0) return '';
  const are = resent.length > 1 ? 's are' : ' is';
  return `; the ${resent.join(' and ')} key${are} re-sent under the one before (a device that missed one rotation)`;
}

async function resyncOne(ctx: CommandContext, name: string): Promise<void> {
  const response = await ctx.api.admin('ResyncClient', {
    name,
    request_id: ctx.globals.requestId,
  });
  const resent = response.keys_resent ?? [];
  ctx.out.result(
    { client: name, resync: true, keys_resent: resent },
    `Client ${name} resync queued: its current keys will be delivered again${keysResentText(resent)}\n`,
  );
}

/**
 * The idempotency key of one client's resync within a run: derived from the run's `--request-id`
 * and the name, so that the same command run again with the same `--request-id` (after an
 * interruption) gets the stored outcome of every client already done instead of resyncing it
 * twice. At most 128 characters, as the server requires.
 */
export function clientRequestId(runRequestId: string, name: string): string {
  const digest = createHash('sha256').update(`${runRequestId}\n${name}`).digest('hex');
  return `${runRequestId.slice(0, 100)}:${digest.slice(0, 24)}`;
}

function parseStates(text: string | undefined): ReadonlySet<DeliveryState> {
  if (text === undefined) return new Set(DEFAULT_STATES);
  const states = new Set<DeliveryState>();
  for (const word of text.split(',')) {
    const state = STATES.find((s) => s === word.trim());
    if (state === undefined) {
      throw CliError.input(
        `--state: unknown delivery state "${word.trim()}" (expected ${STATES.join(', ')}, comma-separated)`,
      );
    }
    states.add(state);
  }
  return states;
}

/** The fleet's clients in name order, a page at a time, with their delivery state. */
async function* everyClient(
  ctx: CommandContext,
): AsyncGenerator<{ readonly name: string; readonly state: string }> {
  let cursor = '';
  do {
    const page = await ctx.api.admin('ListClients', { cursor, limit: LIST_PAGE });
    for (const c of page.clients) yield { name: c.name, state: c.delivery_state };
    cursor = page.next_cursor;
  } while (cursor !== '' && !ctx.signal.aborted);
}

/** What a fleet resync did. */
interface Tally {
  /** Clients listed so far. */
  listed: number;
  /** Resyncs queued by the server. */
  queued: number;
  /** Of those, resyncs that re-sent a rotated key under the one before it. */
  keysResent: number;
  /** Clients removed between the listing and their resync. */
  readonly gone: string[];
  /** Clients the server refused, with its message. */
  readonly failed: { readonly client: string; readonly error: string }[];
  /** Clients listed in a state left out by `--state`, by state. */
  readonly leftAlone: Map<string, number>;
}

function progressLine(tally: Tally, total: number, startedAt: number): string {
  const seconds = Math.round((Date.now() - startedAt) / 1000);
  const failed = tally.failed.length === 0 ? '' : `, ${tally.failed.length} refused`;
  return `resync: ${tally.queued.toLocaleString('en-US')} of about ${total.toLocaleString('en-US')} clients queued${failed} (${seconds} s)`;
}

function summaryText(tally: Tally): string {
  const lines = [
    `Resync queued for ${tally.queued.toLocaleString('en-US')} client${tally.queued === 1 ? '' : 's'}` +
      (tally.keysResent === 0
        ? ''
        : ` (${tally.keysResent} with a rotated key re-sent under the one before)`),
  ];
  if (tally.gone.length > 0) lines.push(`${tally.gone.length} removed meanwhile, skipped`);
  for (const [state, n] of tally.leftAlone) {
    lines.push(
      state === 'unreachable'
        ? `${n} unreachable left alone: they hold a key the C2 does not have; re-provision them (client create --key, or --state unreachable to resync them anyway)`
        : `${n} ${state} left alone (--state)`,
    );
  }
  for (const f of tally.failed) lines.push(`refused: ${f.client}: ${f.error}`);
  return `${lines.join('\n')}\n`;
}

/**
 * Resyncs every listed client in the chosen states, `concurrency` calls at a time, and reports
 * what was done. A refusal that concerns one client (removed meanwhile, a precondition) is
 * reported and the run goes on; any other failure (the server unreachable, the token refused,
 * Ctrl-C) stops it after the calls in flight, with how far it got.
 */
async function resyncFleet(ctx: CommandContext): Promise<void> {
  const states = parseStates(ctx.flags.optionalString('state'));
  const concurrency = ctx.flags.integer('concurrency', DEFAULT_CONCURRENCY);
  const runRequestId = ctx.globals.requestId;
  const total = countOf(await ctx.api.reference('CountClients', {}));
  const tally: Tally = {
    listed: 0,
    queued: 0,
    keysResent: 0,
    gone: [],
    failed: [],
    leftAlone: new Map(),
  };
  const startedAt = Date.now();
  let lastProgress = startedAt;
  let fatal: CliError | undefined;

  const resyncListed = async (name: string): Promise<void> => {
    for (let attempt = 1; ; attempt++) {
      try {
        const response = await ctx.api.admin('ResyncClient', {
          name,
          request_id: clientRequestId(runRequestId, name),
        });
        tally.queued++;
        if ((response.keys_resent ?? []).length > 0) tally.keysResent++;
        return;
      } catch (err) {
        const failure = ctx.toCliError(err);
        const status = failure.grpcCode?.split(',')[0] ?? '';
        if (status === 'ABORTED' && attempt < ABORTED_TRIES) continue;
        if (status === 'NOT_FOUND') tally.gone.push(name);
        else if (failure.exitCode === ExitCode.Refused && PER_CLIENT_REFUSALS.includes(status))
          tally.failed.push({ client: name, error: failure.message });
        else fatal ??= failure;
        return;
      }
    }
  };

  const inFlight = new Set<Promise<void>>();
  for await (const client of everyClient(ctx)) {
    if (fatal !== undefined || ctx.signal.aborted) break;
    tally.listed++;
    if (!states.has(client.state as DeliveryState)) {
      tally.leftAlone.set(client.state, (tally.leftAlone.get(client.state) ?? 0) + 1);
      continue;
    }
    const call: Promise<void> = resyncListed(client.name).finally(() => inFlight.delete(call));
    inFlight.add(call);
    if (inFlight.size >= concurrency) await Promise.race(inFlight);
    if (Date.now() - lastProgress >= PROGRESS_EVERY_MS) {
      lastProgress = Date.now();
      ctx.out.progress(progressLine(tally, total, startedAt));
    }
  }
  await Promise.all(inFlight);

  if (fatal === undefined && ctx.signal.aborted) {
    fatal = new CliError(ExitCode.Interrupted, 'interrupted');
  }
  if (fatal !== undefined) {
    throw new CliError(
      fatal.exitCode,
      `${fatal.message}; stopped after queuing ${tally.queued} of about ${total} clients`,
      {
        cause: fatal,
        ...(fatal.grpcCode === undefined ? {} : { grpcCode: fatal.grpcCode }),
        ...(fatal.hint === undefined ? {} : { hint: fatal.hint }),
      },
    );
  }
  ctx.out.result(
    {
      resynced: tally.queued,
      keys_resent: tally.keysResent,
      removed_meanwhile: tally.gone,
      refused: tally.failed,
      left_alone: Object.fromEntries(tally.leftAlone),
    },
    summaryText(tally),
  );
  if (tally.failed.length > 0) {
    throw new CliError(
      ExitCode.Refused,
      `the server refused the resync of ${tally.failed.length} client${tally.failed.length === 1 ? '' : 's'} (listed above)`,
    );
  }
}

/** `client resync --name N` or `client resync --all`. */
export const resync: CommandSpec = {
  path: ['client', 'resync'],
  summary: "Deliver a client's current keys again; --all: every client's",
  description:
    'Sends a client everything it should hold again (after a device was restored or replaced, or was offline too long). --all does it for every client, for instance after the broker restarted without persistence and lost the commands it held for offline devices: clients are resynced in name order, --concurrency at a time, with progress on stderr every 2 s. Unreachable clients (they hold a key the C2 does not have) are left alone unless --state names them. If the run stops (Ctrl-C, the server unreachable), the same command with the --request-id it prints continues without resyncing anyone twice.',
  calls: ['e4c2.v1.C2Admin/ResyncClient', 'e4c2.v1.C2Admin/ListClients', 'pb.C2/CountClients'],
  flags: [
    { name: 'name', kind: 'string', value: 'NAME', description: 'the client name' },
    { name: 'all', kind: 'boolean', description: 'every client (see --state)' },
    {
      name: 'state',
      kind: 'string',
      value: 'STATES',
      description: `with --all: only clients in these delivery states, comma-separated (${STATES.join(', ')}; default ${DEFAULT_STATES.join(',')})`,
    },
    {
      name: 'concurrency',
      kind: 'integer',
      value: 'N',
      min: 1,
      max: 64,
      description: `with --all: calls in flight at once (default ${DEFAULT_CONCURRENCY})`,
    },
  ],
  constraints: [
    { kind: 'exactly-one', flags: ['name', 'all'] },
    { kind: 'only-with', flag: 'state', with: 'all' },
    { kind: 'only-with', flag: 'concurrency', with: 'all' },
  ],
  examples: [
    'client resync --name sensor-1',
    'client resync --all',
    'client resync --all --state failed,pending --concurrency 16',
  ],
  run(ctx) {
    const name = ctx.flags.optionalString('name');
    return name === undefined ? resyncFleet(ctx) : resyncOne(ctx, name);
  },
};
