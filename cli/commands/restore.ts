/**
 * `restore-reconcile`: run once after PostgreSQL was restored from a backup
 * (docs/operations.md, "Restore"). Reads the off-site event archive (the JSON lines of
 * `e4c2 events --after N --json`), summarises what was issued, and asks the server to rotate
 * every topic key above it, to report the clients that became unreachable, and to move the event
 * stream past every position handed out before the disaster.
 */
import type {
  EventRecord,
  IssuedSubject,
  MembershipChange,
  ReconcileAfterRestoreRequest,
} from '../api.ts';
import { CliError, ExitCode } from '../errors.ts';
import { UINT32_MAX, type CommandContext, type CommandSpec } from '../spec.ts';
import { readLocalFile } from './shared.ts';

/** What an archive says, as the request carries it. */
export type ArchiveSummary = Pick<
  ReconcileAfterRestoreRequest,
  'topics' | 'clients' | 'c2_key_version' | 'archive_last_seq' | 'memberships'
>;

/** The largest event position: asking for events after it answers with the newest position. */
const MAX_SEQ = '9223372036854775807';

const TOPIC_KEY_EVENTS = new Set(['topic.created', 'topic.rotated']);
const CLIENT_KEY_EVENTS = new Set(['client.key_rotated', 'client.key_replaced']);

/** What the archive says of one name so far. */
interface Seen {
  version: number;
  removed: boolean;
  /** Clients: where the name's last creation is (a new lifetime, another device's key). */
  createdSeq?: bigint;
}

function note(
  map: Map<string, Seen>,
  name: string,
  version: number,
  removed: boolean | undefined,
): void {
  const before = map.get(name) ?? { version: 0, removed: false };
  map.set(name, {
    ...before,
    version: Math.max(before.version, version),
    removed: removed ?? before.removed,
  });
}

/**
 * A client created (again): its key versions start over, and only this lifetime's say what the
 * device holds now (an older lifetime's higher version is another device's).
 */
function created(map: Map<string, Seen>, name: string, version: number, seq: bigint): void {
  map.set(name, { version, removed: false, createdSeq: seq });
}

/**
 * Summarises archive lines (JSON `EventRecord`s, in stream order; blank lines and lines that are
 * not JSON objects with a `seq` are refused, naming the line).
 * @throws CliError (usage) on a malformed line
 */
export function summarizeEventArchive(text: string, since = 0n, until?: bigint): ArchiveSummary {
  const topics = new Map<string, Seen>();
  const clients = new Map<string, Seen>();
  const memberships = new Map<string, MembershipChange>();
  let c2 = 0;
  let last = 0n;
  const lines = text.split('\n');
  for (const [index, raw] of lines.entries()) {
    const line = raw.trim();
    if (line === '') continue;
    let record: EventRecord;
    try {
      record = JSON.parse(line) as EventRecord;
      if (typeof record.seq !== 'string' || !/^\d+$/.test(record.seq)) throw new Error('no seq');
    } catch {
      throw CliError.usage(`archive line ${index + 1} is not an event record (JSON with a seq)`, [
        'restore-reconcile',
      ]);
    }
    const seq = BigInt(record.seq);
    if (seq > last) last = seq;
    // What the restored database has seen already says nothing the reconciliation needs (and
    // leaving it out keeps the request small whatever the fleet's size).
    if (seq <= since || (until !== undefined && seq >= until)) continue;
    if (record.type === 'client.subscribed' || record.type === 'client.unsubscribed') {
      const attached = record.type === 'client.subscribed';
      memberships.set(JSON.stringify([record.client, record.topic]), {
        client: record.client,
        topic: record.topic,
        attached,
      });
    }
    const version = typeof record.key_version === 'number' ? record.key_version : 0;
    if (TOPIC_KEY_EVENTS.has(record.type)) note(topics, record.topic, version, false);
    else if (record.type === 'topic.removed') note(topics, record.topic, 0, true);
    else if (record.type === 'client.created') created(clients, record.client, version, seq);
    else if (CLIENT_KEY_EVENTS.has(record.type)) note(clients, record.client, version, false);
    else if (record.type === 'client.removed') note(clients, record.client, 0, true);
    else if (record.type === 'c2key.rotated') c2 = Math.max(c2, version);
  }
  const list = (map: Map<string, Seen>): IssuedSubject[] =>
    [...map].map(([name, s]) => ({
      name,
      version: s.version,
      removed: s.removed,
      ...(s.createdSeq === undefined ? {} : { created_seq: s.createdSeq.toString() }),
    }));
  return {
    topics: list(topics),
    clients: list(clients),
    c2_key_version: c2,
    archive_last_seq: last === 0n ? '' : last.toString(),
    memberships: [...memberships.values()],
  };
}

/**
 * The restored position, as the server will judge the archive: the one restore.sh recorded (or
 * the first reconciliation kept), else the database's newest position.
 */
async function restoredPosition(
  ctx: CommandContext,
  status: { readonly restored_position: string },
): Promise<bigint> {
  if (/^\d{1,19}$/.test(status.restored_position)) return BigInt(status.restored_position);
  const newest = await ctx.api.admin('ListEvents', { after_seq: MAX_SEQ, limit: 1 });
  return BigInt(/^\d{1,19}$/.test(newest.next_after_seq) ? newest.next_after_seq : '0');
}

/** The pairs of a membership list, as `client on topic`. */
function pairs(list: readonly MembershipChange[] | undefined): string[] {
  return (list ?? []).map((m) => `${m.client} on ${m.topic}`);
}

/** One report line, or none for an empty list. */
function listed(title: string, names: readonly string[]): string[] {
  return names.length === 0 ? [] : [`${title}: ${names.join(', ')}`];
}

const reconcile: CommandSpec = {
  path: ['restore-reconcile'],
  summary: 'After a database restore: re-key every topic, report unreachable devices',
  description:
    'Run once after PostgreSQL was restored from a backup, before traffic is let back in. ' +
    'Every topic key is rotated to a version above anything issued since the backup (the ' +
    'restored version plus --version-margin, or above the highest version in --archive), the ' +
    'event stream position jumps past every position handed out before, and with --archive (the ' +
    'JSON lines of "events --after N --json" kept off-site) the clients whose identity key was ' +
    'rotated after the backup are reported and marked unreachable (sent nothing until re-provisioned), with the clients ' +
    'and topics created or removed after the backup.',
  calls: ['e4c2.v1.C2Admin/GetRestoreStatus', 'e4c2.v1.C2Admin/ReconcileAfterRestore'],
  flags: [
    {
      name: 'archive',
      kind: 'string',
      value: 'FILE',
      description: 'the off-site event archive (JSON lines of "events --json")',
    },
    {
      name: 'version-margin',
      kind: 'integer',
      value: 'N',
      min: 1,
      max: UINT32_MAX,
      description: 'versions every topic key jumps at least (default 1000)',
    },
    {
      name: 'force',
      kind: 'boolean',
      description: 'run on a database that is not marked as restored',
    },
  ],
  examples: ['restore-reconcile --archive events.jsonl', 'restore-reconcile --version-margin 5000'],
  async run(ctx) {
    const path = ctx.flags.optionalString('archive');
    const text =
      path === undefined
        ? undefined
        : new TextDecoder().decode(await readLocalFile(ctx, path, 'event archive'));
    // Every topic key jumps and the event stream skips a million positions: on a database that
    // was never restored (no mark of restore.sh or of the runbook, no earlier run kept) that is a
    // mistake, most likely the wrong endpoint. The server's state says no, not the command line:
    // exit 1 (refused), so that a script does not take it for a typo in its flags (exit 2).
    const status = await ctx.api.admin('GetRestoreStatus', {});
    if (!status.pending && status.restored_position === '' && !ctx.flags.boolean('force'))
      throw new CliError(
        ExitCode.Refused,
        `the C2 at ${ctx.globals.endpoint} is not marked as restored (restore-status: not pending, no earlier reconciliation): restore-reconcile would rotate every topic key and move the event stream for nothing; nothing was changed`,
        {
          hint: 'check the endpoint; run it after restore.sh, or mark the database as docs/operations.md "Restore" says; --force runs it anyway',
        },
      );
    let summary: ArchiveSummary = {
      topics: [],
      clients: [],
      c2_key_version: 0,
      archive_last_seq: '',
      memberships: [],
    };
    // Only what the archive has after the restored position is sent: the server judges the
    // archive against that position, and the rest would only make the request large.
    if (text !== undefined)
      summary = summarizeEventArchive(text, await restoredPosition(ctx, status));
    const r = await ctx.api.admin('ReconcileAfterRestore', {
      ...summary,
      version_margin: ctx.flags.integer('version-margin', 0),
      event_seq_margin: '',
      // The server refuses an unmarked database too (a caller other than this command); here
      // the check above has already said no unless --force.
      force: ctx.flags.boolean('force'),
    });
    const lines = [
      `Topic keys rotated: ${r.topics_rotated}`,
      `Event stream continues after: ${r.event_seq_floor}`,
      ...(r.archive_ends_before_backup === true
        ? [
            'WARNING: the archive ends before the backup: it cannot show what happened after it (was the archive stopped?); the lists below may be incomplete. Use a complete archive and run restore-reconcile again',
          ]
        : []),
      ...(r.c2_key_rotated_after_backup
        ? [
            'WARNING: the C2 key was rotated after the backup: public-key devices must be re-provisioned with the current C2 public key',
          ]
        : []),
      ...listed(
        'Unreachable (identity key rotated after the backup; re-provision)',
        r.unreachable_clients,
      ),
      ...listed('Clients created after the backup (create again)', r.missing_clients),
      ...listed('Topics created after the backup (create again)', r.missing_topics),
      ...listed('Clients removed after the backup (remove again)', r.resurrected_clients),
      ...listed('Topics removed after the backup (remove again)', r.resurrected_topics),
      ...listed('Attached after the backup (attach again)', pairs(r.missing_memberships)),
      ...listed('Detached after the backup (detach again)', pairs(r.resurrected_memberships)),
    ];
    ctx.out.result(r, `${lines.join('\n')}\n`);
  },
};

/** `restore-reconcile`. */
export const RESTORE_COMMANDS: readonly CommandSpec[] = [reconcile];
