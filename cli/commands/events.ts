/**
 * `events`: the reference live event stream, or with `--after SEQ` our resumable event log.
 * Runs until the server ends the stream or the user presses Ctrl-C (which ends it with exit 0).
 */
import type { EventRecord, EventStream, ReferenceEvent } from '../api.ts';
import { CliError, ExitCode } from '../errors.ts';
import type { CommandContext, CommandSpec } from '../spec.ts';

/** A protobuf Timestamp as Go's `ptypes.TimestampString` prints it (RFC 3339, nanoseconds trimmed). */
export function formatTimestamp(ts: ReferenceEvent['timestamp']): string {
  if (ts === null) return '-';
  const seconds = Number(ts.seconds);
  if (!Number.isFinite(seconds)) return '-';
  const base = new Date(seconds * 1000).toISOString().slice(0, 19);
  const nanos = ts.nanos > 0 ? `.${String(ts.nanos).padStart(9, '0').replace(/0+$/, '')}` : '';
  return `${base}${nanos}Z`;
}

/** The reference line: `Received event: Type: ..., Source: ..., Target: ..., Timestamp: ...`. */
export function referenceEventLine(event: ReferenceEvent): string {
  return `Received event: Type: ${event.type}, Source: ${event.source}, Target: ${event.target}, Timestamp: ${formatTimestamp(event.timestamp)}`;
}

/** Our line: `<seq>  <at>  <type>  client=... topic=... version=... key=value...`. */
export function eventRecordLine(record: EventRecord): string {
  const facts = [
    ...(record.client === '' ? [] : [`client=${record.client}`]),
    ...(record.topic === '' ? [] : [`topic=${record.topic}`]),
    ...(record.key_version === 0 ? [] : [`version=${record.key_version}`]),
    ...Object.entries(record.details)
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([k, v]) => `${k}=${v}`),
  ];
  return [record.seq, record.at, record.type, facts.join(' ')].filter((p) => p !== '').join('  ');
}

/**
 * Prints every item of `stream` until it ends; Ctrl-C (the context's signal) cancels it and
 * returns normally. On a failure after some events, the hint says where to resume.
 */
async function follow<T>(
  ctx: CommandContext,
  stream: EventStream<T>,
  banner: string,
  print: (item: T) => void,
  resumeHint: () => string | undefined,
): Promise<void> {
  let bannerShown = false;
  const showBanner = (): void => {
    if (bannerShown) return;
    bannerShown = true;
    ctx.out.note(banner);
  };
  void stream.connected.then(showBanner);
  const stop = (): void => {
    stream.cancel();
  };
  ctx.signal.addEventListener('abort', stop, { once: true });
  try {
    for await (const item of stream) {
      showBanner();
      print(item);
    }
  } catch (err) {
    if (ctx.signal.aborted) return;
    const resume = resumeHint();
    if (resume === undefined) throw err;
    const failure = ctx.toCliError(err);
    // Resuming helps a stream that broke; a refusal (credentials, role, input) would recur.
    if (failure.exitCode === ExitCode.Refused) throw failure;
    throw new CliError(failure.exitCode, failure.message, {
      ...(failure.grpcCode === undefined ? {} : { grpcCode: failure.grpcCode }),
      hint: failure.hint === undefined ? resume : `${failure.hint}\n${resume}`,
      cause: err,
    });
  } finally {
    ctx.signal.removeEventListener('abort', stop);
  }
  // The server never ends a stream on its own but when it stops (a shutdown ends streams with
  // OK): a script must not read that as done, nor miss where to resume.
  if (!ctx.signal.aborted)
    throw new CliError(ExitCode.Unreachable, 'the C2 ended the event stream (a node stopping?)', {
      hint:
        resumeHint() ??
        'subscribe again: e4c2 events (this stream does not replay what it missed; events --after SEQ does)',
    });
}

const events: CommandSpec = {
  path: ['events'],
  summary: 'Stream events (with --after: the resumable e4c2.v1 event log, with sequence numbers)',
  description:
    'Without --after: subscribes to the reference live event stream and prints each event as ' +
    'the reference c2cli does. With --after SEQ: reads our event log from after sequence number ' +
    'SEQ (0 is the oldest kept) and then follows it live; each line starts with the sequence ' +
    'number, so a broken stream can be resumed with --after <last seq>. Ctrl-C ends it (exit 0).',
  calls: ['pb.C2/SubscribeToEventStream', 'e4c2.v1.C2Admin/StreamEvents (with --after)'],
  flags: [
    {
      name: 'after',
      kind: 'string',
      value: 'SEQ',
      description: 'resume the e4c2.v1 event log after this sequence number (0: from the start)',
    },
  ],
  examples: ['events', 'events --after 0 --json', 'events --after 1234'],
  async run(ctx) {
    const after = ctx.flags.optionalString('after');
    if (after === undefined) {
      await follow(
        ctx,
        ctx.api.referenceEvents(),
        'Subscribed to server event stream...\n',
        (event) => {
          ctx.out.event(
            {
              type: event.type,
              source: event.source,
              target: event.target,
              timestamp: formatTimestamp(event.timestamp),
            },
            referenceEventLine(event),
          );
        },
        () => undefined,
      );
      return;
    }
    // Positions are PostgreSQL bigints: a larger number would only be refused by the server,
    // after the banner.
    if (!/^\d{1,19}$/.test(after) || BigInt(after) > 9223372036854775807n) {
      throw CliError.usage(`--after needs a sequence number, got "${after}"`, ['events']);
    }
    let last = after;
    await follow(
      ctx,
      ctx.api.adminEvents(after),
      `Following the event log after sequence ${after}...\n`,
      (record) => {
        last = record.seq;
        ctx.out.event(record, eventRecordLine(record));
      },
      () => `resume with: e4c2 events --after ${last}`,
    );
  },
};

/** `events`. */
export const EVENT_COMMANDS: readonly CommandSpec[] = [events];
