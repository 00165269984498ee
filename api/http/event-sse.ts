/**
 * `GET /v1/events/stream`: the event stream as server-sent events, for the web console (an
 * `EventSource`) and for scripts (`curl -N`). Each event is
 *
 *     id: <seq>
 *     event: <type>
 *     data: {"seq":"…","at":"…","type":"…","client":"…","topic":"…","keyVersion":…,"details":{…}}
 *
 * Resume: a reconnecting `EventSource` sends `Last-Event-ID` (the last `id` it received); a first
 * connection may ask `?after=<seq>`; with neither, the stream starts at the current end.
 * Positions are gapless and final, so a resumed stream gets every later event once, in order.
 * A position past the newest event (the database was restored from a backup that ends earlier,
 * so those positions will be handed out again) starts at the newest instead: waiting for the
 * sequence to pass it would skip every event until then.
 *
 * The opening frame announces the start position as an `id:` without data: `EventSource` (and
 * the console's parser) takes it as the last event id without dispatching anything, so a
 * connection that drops before its first event still resumes from where it started.
 *
 * A comment line is sent every `heartbeatMs` so proxies and the browser keep the connection. The
 * stream reads the next page only after the previous one was handed to the connection; a client
 * that does not read for `slowConsumerMs` (the response's buffer stays above `maxBufferedBytes`)
 * is dropped rather than buffered without bound, and resumes with `Last-Event-ID`. Over HTTP/2
 * that buffer is the stream's, which fills once the client's flow-control window for the stream
 * (or the whole connection) is used up; only that stream is reset (`abortResponse`).
 */
import { once } from 'node:events';
import { C2Error } from '../../cluster/errors.ts';
import type { ApiDeps } from '../api-types.ts';
import { eventRecord } from '../events/event-records.ts';
import { EventTail, pumpEvents, streamStart, type JournalEvent } from '../events/event-tail.ts';
import { checkAfterSeq } from '../operations/admin-ops.ts';
import type { StreamHandler } from './routes.ts';
import { API_SECURITY_HEADERS } from './http-io.ts';
import { abortResponse, http1Connection } from './http-listener.ts';

/** Options of {@link eventStreamHandler}. */
export interface EventSseOptions {
  /** Pause between heartbeat comments. Default 15 s. */
  readonly heartbeatMs?: number;
  /** Bytes the socket may hold unsent before the stream waits for the client. Default 256 KiB. */
  readonly maxBufferedBytes?: number;
  /** How long a client may leave the buffer full before it is disconnected. Default 30 s. */
  readonly slowConsumerMs?: number;
  /** Events read per query. Default 500. */
  readonly pageSize?: number;
  /** Reconnection delay suggested to `EventSource` (`retry:`). Default 2000 ms. */
  readonly retryMs?: number;
}

/** The JSON `data` of one event (no key material: events never carry any). */
export function sseEventData(event: JournalEvent): string {
  const record = eventRecord(event);
  return JSON.stringify({
    seq: record['seq'],
    at: record['at'],
    type: record['type'],
    client: record['client'],
    topic: record['topic'],
    keyVersion: record['key_version'],
    details: record['details'],
  });
}

/** One SSE frame; event types are dotted words, data is one JSON line. */
function frame(event: JournalEvent): string {
  return `id: ${event.seq}\nevent: ${event.type.replace(/[\r\n]/g, '')}\ndata: ${sseEventData(event)}\n\n`;
}

/** The SSE handler over the deps' event stream. */
export function eventStreamHandler(
  deps: Pick<ApiDeps, 'service' | 'logger' | 'eventPollIntervalMs' | 'eventWakeups'>,
  options: EventSseOptions = {},
): StreamHandler {
  const heartbeatMs = options.heartbeatMs ?? 15_000;
  const maxBufferedBytes = options.maxBufferedBytes ?? 256 * 1024;
  const slowConsumerMs = options.slowConsumerMs ?? 30_000;
  const log = deps.logger;
  return async (req, res, ctx) => {
    checkStreamQuery(ctx.query);
    const lastEventId = req.headers['last-event-id'];
    const resumeFrom = typeof lastEventId === 'string' && lastEventId !== '' ? lastEventId : null;
    const requested =
      resumeFrom !== null
        ? checkAfterSeq(resumeFrom, 'Last-Event-ID')
        : ctx.query.has('after')
          ? checkAfterSeq(ctx.query.get('after') ?? '', 'after')
          : null;
    // One small read per connection (a live-only stream needed it anyway).
    const { after, clamped } = await streamStart(deps.service, requested);
    const controller = new AbortController();
    const { signal } = controller;
    // A function, not the property: a check before an await must not narrow the check after it.
    const aborted = (): boolean => signal.aborted;
    const stop = (): void => {
      controller.abort();
    };
    ctx.closing.addEventListener('abort', stop, { once: true });
    res.once('close', stop);
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache, no-transform',
      ...http1Connection(req, 'keep-alive'),
      'x-accel-buffering': 'no',
      ...API_SECURITY_HEADERS,
      'x-request-id': ctx.requestId,
    });
    const start = after.toString();
    res.write(`retry: ${options.retryMs ?? 2000}\nid: ${start}\n: stream after ${start}\n\n`);
    const heartbeat = setInterval(() => {
      if (res.writableLength <= maxBufferedBytes) res.write(': heartbeat\n\n');
    }, heartbeatMs);
    const tail = new EventTail(
      deps.service,
      after,
      options.pageSize === undefined ? {} : { pageSize: options.pageSize },
    );
    log.info(
      {
        requestId: ctx.requestId,
        rpc: 'GET /v1/events/stream',
        actor: ctx.actor,
        after: tail.position,
        // A clamped position says the journal moved back (a restore).
        ...(clamped && requested !== null ? { requested: requested.toString() } : {}),
      },
      'event stream opened',
    );
    let reason = 'closed';
    try {
      await pumpEvents({
        tail,
        intervalMs: deps.eventPollIntervalMs,
        ...(deps.eventWakeups === undefined ? {} : { wakeups: deps.eventWakeups }),
        signal,
        deliver: async (events) => {
          for (const event of events) {
            if (aborted()) return;
            res.write(frame(event));
          }
          if (res.writableLength <= maxBufferedBytes || aborted()) return;
          // Back-pressure: wait for the client, but not forever.
          const waited = AbortSignal.any([signal, AbortSignal.timeout(slowConsumerMs)]);
          try {
            await once(res, 'drain', { signal: waited });
          } catch {
            if (!aborted()) {
              reason = 'slow consumer';
              controller.abort();
            }
          }
        },
        onError: (err) => {
          log.warn({ err, requestId: ctx.requestId }, 'event poll failed; retrying');
        },
      });
    } finally {
      clearInterval(heartbeat);
      ctx.closing.removeEventListener('abort', stop);
      log.info(
        { requestId: ctx.requestId, position: tail.position, reason },
        'event stream closed',
      );
      if (reason === 'slow consumer') abortResponse(res);
      else if (!res.writableEnded) res.end();
    }
  };
}

/**
 * The stream takes one query parameter, `after`, at most once: like every other route, anything
 * else is refused rather than ignored. @throws C2Error `C2_VALIDATION`
 */
function checkStreamQuery(query: URLSearchParams): void {
  for (const key of new Set(query.keys())) {
    if (key !== 'after') {
      throw new C2Error('C2_VALIDATION', `unknown query parameter "${key}"`, {
        details: { field: key },
      });
    }
    if (query.getAll(key).length > 1) {
      throw new C2Error('C2_VALIDATION', `query parameter "${key}" is given more than once`, {
        details: { field: key },
      });
    }
  }
}
