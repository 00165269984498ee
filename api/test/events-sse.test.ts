/** The server-sent events handler on fakes: resume position, framing, and the slow consumer. */
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { describe, it } from 'node:test';
import type { C2Service } from '../../cluster/domain/index.ts';
import type { ApiDeps } from '../api-types.ts';
import type { JournalEvent } from '../events/event-tail.ts';
import { eventStreamHandler } from '../http/event-sse.ts';
import { MemoryLogger } from './support/api-harness.ts';

/** One positioned event. */
const event = (seq: number): JournalEvent => ({
  seq: String(seq),
  at: new Date(0),
  type: 'topic.rotated',
  topic: 't',
  keyVersion: seq + 1,
  details: { members: 1 },
});

/** A journal of `count` positioned events; `add` positions one more. */
function journal(count: number) {
  const events: JournalEvent[] = Array.from({ length: count }, (_, i) => event(i + 1));
  return {
    afters: [] as string[],
    eventsAfter(seq: string, limit: number): Promise<JournalEvent[]> {
      this.afters.push(seq);
      return Promise.resolve(events.filter((e) => BigInt(e.seq) > BigInt(seq)).slice(0, limit));
    },
    latestEventSeq: () => Promise.resolve(String(events.length)),
    add(): void {
      events.push(event(events.length + 1));
    },
  };
}

/** A response that records what was written; `stuck` makes it a client that never reads. */
class FakeResponse extends EventEmitter {
  text = '';
  writableEnded = false;
  destroyed = false;
  writableLength = 0;
  status = 0;
  constructor(private readonly stuck: boolean) {
    super();
  }
  writeHead(status: number): this {
    this.status = status;
    return this;
  }
  write(chunk: string): boolean {
    this.text += chunk;
    if (this.stuck) this.writableLength += chunk.length;
    return !this.stuck;
  }
  end(): this {
    this.writableEnded = true;
    this.emit('close');
    return this;
  }
  destroy(): this {
    this.destroyed = true;
    this.emit('close');
    return this;
  }
}

function start(
  source: ReturnType<typeof journal>,
  res: FakeResponse,
  options: { headers?: Record<string, string>; query?: string; slowConsumerMs?: number } = {},
) {
  const log = new MemoryLogger();
  const deps = {
    service: source as unknown as C2Service,
    logger: log,
    eventPollIntervalMs: 10,
  } satisfies Partial<ApiDeps>;
  const closing = new AbortController();
  const handler = eventStreamHandler(deps, {
    pageSize: 2,
    maxBufferedBytes: 100,
    slowConsumerMs: options.slowConsumerMs ?? 60_000,
  });
  const done = handler(
    { headers: options.headers ?? {} } as unknown as IncomingMessage,
    res as unknown as ServerResponse,
    {
      actor: 'test',
      requestId: 'r1',
      query: new URLSearchParams(options.query ?? ''),
      closing: closing.signal,
    },
  );
  return { done, closing, log };
}

/** The ids of the events (not of the opening frame, which has no data). */
const ids = (text: string): string[] =>
  [...text.matchAll(/^id: (\d+)\nevent: /gm)].map((m) => m[1] ?? '');

/** The opening frame: everything before its blank line. */
const opening = (text: string): string => text.slice(0, text.indexOf('\n\n') + 1);

void describe('GET /v1/events/stream', { timeout: 20_000 }, () => {
  void it('resumes after Last-Event-ID rather than ?after, and frames each event', async () => {
    const source = journal(5);
    const res = new FakeResponse(false);
    const { done, closing } = start(source, res, {
      headers: { 'last-event-id': '3' },
      query: 'after=1',
    });
    while (ids(res.text).length < 2) await new Promise((r) => setTimeout(r, 5));
    closing.abort();
    await done;
    assert.equal(res.status, 200);
    assert.deepEqual(ids(res.text), ['4', '5']);
    assert.equal(opening(res.text), 'retry: 2000\nid: 3\n: stream after 3\n');
    assert.match(res.text, /^event: topic\.rotated$/m);
    const data = /^data: (.*)$/m.exec(res.text)?.[1] ?? '';
    assert.deepEqual(JSON.parse(data), {
      seq: '4',
      at: '1970-01-01T00:00:00.000Z',
      type: 'topic.rotated',
      client: '',
      topic: 't',
      keyVersion: 5,
      details: { members: '1' },
    });
    assert.ok(res.writableEnded, 'the response ends when the server closes');
  });

  void it('without a position starts at the current end', async () => {
    const source = journal(5);
    const res = new FakeResponse(false);
    const { done, closing } = start(source, res);
    while (source.afters.length < 1) await new Promise((r) => setTimeout(r, 5));
    closing.abort();
    await done;
    assert.deepEqual(ids(res.text), []);
    assert.equal(source.afters[0], '5');
    // Announced as an id, so a connection that drops before any event resumes from here.
    assert.equal(opening(res.text), 'retry: 2000\nid: 5\n: stream after 5\n');
  });

  void it('starts a position past the newest event (a restored journal) at the newest', async () => {
    for (const options of [{ headers: { 'last-event-id': '9' } }, { query: 'after=9' }]) {
      const source = journal(5);
      const res = new FakeResponse(false);
      const { done, closing, log } = start(source, res, options);
      try {
        while (source.afters.length < 1) await new Promise((r) => setTimeout(r, 5));
        assert.equal(source.afters[0], '5', JSON.stringify(options));
        assert.equal(opening(res.text), 'retry: 2000\nid: 5\n: stream after 5\n');
        source.add();
        while (ids(res.text).length < 1) await new Promise((r) => setTimeout(r, 5));
      } finally {
        closing.abort();
        await done;
      }
      assert.deepEqual(ids(res.text), ['6'], 'the next event arrives');
      assert.ok(
        log.lines.some((l) => l.obj['requested'] === '9'),
        'the clamp is logged',
      );
    }
  });

  void it('disconnects a client that leaves its buffer full, instead of buffering more', async () => {
    const source = journal(50);
    const res = new FakeResponse(true);
    const { done, log } = start(source, res, { query: 'after=0', slowConsumerMs: 50 });
    await done;
    assert.ok(res.destroyed, 'the connection is dropped');
    assert.deepEqual(ids(res.text), ['1', '2'], 'no page read after the stuck one');
    assert.ok(log.lines.some((l) => l.obj['reason'] === 'slow consumer'));
  });
});
