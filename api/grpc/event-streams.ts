/**
 * The two server streams over the event stream. Each stream follows the journal through an
 * {@link EventTail}: it reads when a NOTIFY says some node positioned events (so events
 * committed anywhere in the cluster reach every subscriber at once) and polls as a fallback,
 * and it survives a database hiccup (it retries with back-off). A stream ends when the client
 * cancels it or the server shuts down (then it completes with OK).
 */
import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import type { handleServerStreamingCall, ServerWritableStream } from '@grpc/grpc-js';
import type { ApiDeps, ApiLogger } from '../api-types.ts';
import type { ProtoMessage } from '../codec/protos.ts';
import { describeFailure } from '../errors-map.ts';
import { eventRecord, referenceEvent } from '../events/event-records.ts';
import {
  EventTail,
  latestEventSeq,
  pumpEvents,
  streamStart,
  type JournalEvent,
} from '../events/event-tail.ts';
import { checkAfterSeq } from '../operations/admin-ops.ts';
import { stringField } from '../operations/message-fields.ts';
import { callContext, logFailure, serviceError, trailers } from './grpc-calls.ts';

type Stream = ServerWritableStream<ProtoMessage, ProtoMessage>;

/** Open streams; aborting one ends it (used by the server's shutdown). */
export type StreamRegistry = Set<AbortController>;

async function write(call: Stream, message: ProtoMessage, signal: AbortSignal): Promise<void> {
  if (!call.write(message)) await once(call, 'drain', { signal });
}

function runStream(
  deps: ApiDeps,
  log: ApiLogger,
  streams: StreamRegistry,
  call: Stream,
  rpc: string,
  startAfter: () => Promise<bigint>,
  toMessage: (event: JournalEvent) => ProtoMessage | undefined,
): void {
  const requestId = randomUUID();
  const controller = new AbortController();
  const { signal } = controller;
  const onCancel = (): void => {
    controller.abort();
  };
  streams.add(controller);
  call.on('cancelled', onCancel);
  void (async () => {
    let actor: string | undefined;
    try {
      const ctx = await callContext(deps, call, requestId, rpc);
      actor = ctx.actor;
      const after = await startAfter();
      log.info(
        { requestId, rpc, actor: ctx.actor, after: after.toString() },
        'event stream opened',
      );
      const tail = new EventTail(deps.service, after);
      await pumpEvents({
        tail,
        intervalMs: deps.eventPollIntervalMs,
        ...(deps.eventWakeups === undefined ? {} : { wakeups: deps.eventWakeups }),
        signal,
        deliver: async (events) => {
          for (const event of events) {
            const message = toMessage(event);
            if (message !== undefined && !signal.aborted) await write(call, message, signal);
          }
        },
        onError: (err) => {
          log.warn({ err, requestId, rpc }, 'event poll failed; retrying');
        },
      });
      log.info({ requestId, rpc, position: tail.position }, 'event stream closed');
      if (!call.cancelled) call.end(trailers(requestId));
    } catch (err) {
      if (call.cancelled) return;
      const failure = describeFailure(err, requestId);
      logFailure(log, failure, err, { requestId, rpc, ...(actor === undefined ? {} : { actor }) });
      call.emit('error', serviceError(failure));
    } finally {
      streams.delete(controller);
      call.off('cancelled', onCancel);
    }
  })();
}

/**
 * `pb.C2/SubscribeToEventStream`: from the current end of the journal, every attach
 * (`CLIENT_SUBSCRIBED`) and detach (`CLIENT_UNSUBSCRIBED`), source = client, target = topic.
 */
export function subscribeToEventStream(
  deps: ApiDeps,
  log: ApiLogger,
  streams: StreamRegistry,
): handleServerStreamingCall<ProtoMessage, ProtoMessage> {
  return (call) => {
    runStream(
      deps,
      log,
      streams,
      call,
      'pb.C2/SubscribeToEventStream',
      () => latestEventSeq(deps.service),
      referenceEvent,
    );
  };
}

/**
 * `e4c2.v1.C2Admin/StreamEvents`: every event after `after_seq` (empty, or past the newest event
 * after a restore: from the current end), then live. Resume with the `seq` of the last event
 * received.
 */
export function streamEvents(
  deps: ApiDeps,
  log: ApiLogger,
  streams: StreamRegistry,
): handleServerStreamingCall<ProtoMessage, ProtoMessage> {
  return (call) => {
    const after = stringField(call.request, 'after_seq');
    runStream(
      deps,
      log,
      streams,
      call,
      'e4c2.v1.C2Admin/StreamEvents',
      async () =>
        (await streamStart(deps.service, after === '' ? null : checkAfterSeq(after))).after,
      eventRecord,
    );
  };
}
