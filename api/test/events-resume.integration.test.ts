/**
 * The event stream across two nodes on one database: a subscriber (gRPC StreamEvents, then the
 * server-sent events endpoint) disconnects mid-stream while both nodes keep committing changes,
 * resumes on the other node after the last seq it received, and ends with every event exactly
 * once, in order. And: no event carries key bytes.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { request, type ClientRequest } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { bindings } from '../../cluster/domain/index.ts';
import { PgC2Store } from '../../cluster/storage/index.ts';
import { eventually } from '../../cluster/test/support/eventually.ts';
import { GrpcTestClient, httpCall, type Message } from './support/api-harness.ts';
import { startTwoNodes, type TestNode, type TwoNodes } from './support/two-nodes.ts';

const ctx = { actor: 'events-test' };

/** What the producers wrote: the client keys they chose, and how far they got. */
interface Production {
  readonly clientKeys: Uint8Array[];
  done: number;
}

/**
 * Every kind of change, on node-private names (no rotation conflicts between nodes), `rounds`
 * times; each round leaves a few events.
 */
async function produce(node: TestNode, tag: string, rounds: number, out: Production) {
  for (let i = 0; i < rounds; i++) {
    const client = `ev-${tag}-c${i}`;
    const topic = `ev/${tag}/t${i}`;
    const key = new Uint8Array(randomBytes(32));
    out.clientKeys.push(key);
    await node.service.newClient(ctx, client, key);
    await node.service.newTopic(ctx, topic);
    await node.service.newTopicClient(ctx, client, topic);
    await node.service.rotateTopicKey(ctx, topic);
    await node.service.rotateClientKey(ctx, client);
    await node.service.removeTopicClient(ctx, client, topic);
    if (i % 2 === 0) {
      await node.service.removeTopic(ctx, topic);
      await node.service.removeClient(ctx, client);
    }
    out.done++;
  }
}

/** Every event in the journal, positioned, as (seq, type). */
async function journal(node: TestNode): Promise<Array<[number, string]>> {
  while ((await node.service.sequenceEvents()) > 0);
  const { rows } = await node.pool.query<{ stream_seq: string; type: string }>(
    'SELECT stream_seq, type FROM events ORDER BY stream_seq',
  );
  return rows.map((r) => [Number(r.stream_seq), r.type]);
}

/** A server-sent events connection that records its events. */
class SseReader {
  readonly events: Array<{ id: string; type: string; data: Record<string, unknown> }> = [];
  comments = 0;
  status = 0;
  /** The start position the opening frame announced (its `id:`, without data). */
  opened: string | undefined;
  #buffer = '';
  readonly #req: ClientRequest;
  readonly ended: Promise<void>;

  constructor(port: number, path: string, headers: Record<string, string> = {}) {
    let ended!: () => void;
    this.ended = new Promise((resolve) => {
      ended = resolve;
    });
    this.#req = request({ host: '127.0.0.1', port, path, headers, agent: false }, (res) => {
      this.status = res.statusCode ?? 0;
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        this.#buffer += chunk;
        for (;;) {
          const end = this.#buffer.indexOf('\n\n');
          if (end < 0) break;
          this.#frame(this.#buffer.slice(0, end));
          this.#buffer = this.#buffer.slice(end + 2);
        }
      });
      res.on('end', ended);
      res.on('close', ended);
    });
    this.#req.on('error', ended);
    this.#req.end();
  }

  #frame(text: string): void {
    const fields = new Map<string, string>();
    for (const line of text.split('\n')) {
      if (line.startsWith(':')) {
        this.comments++;
        continue;
      }
      const colon = line.indexOf(':');
      if (colon > 0) fields.set(line.slice(0, colon), line.slice(colon + 1).trimStart());
    }
    const data = fields.get('data');
    if (data === undefined) {
      this.opened ??= fields.get('id');
      return;
    }
    this.events.push({
      id: fields.get('id') ?? '',
      type: fields.get('event') ?? 'message',
      data: JSON.parse(data) as Record<string, unknown>,
    });
  }

  /** Drops the connection, as a network failure would. */
  disconnect(): void {
    this.#req.destroy();
  }
}

void describe('event stream across two nodes', { timeout: 120_000 }, () => {
  let t: TwoNodes;
  before(async () => {
    t = await startTwoNodes();
  });
  after(async () => {
    await t.close();
  });

  void it('a gRPC subscriber that disconnects and resumes on the other node gets every event once, in order', async () => {
    const [a, b] = t.nodes;
    assert.ok(a.wakeups.listening && b.wakeups.listening, 'both nodes LISTEN');
    const start = (await journal(a)).at(-1)?.[0] ?? 0;
    const out: Production = { clientKeys: [], done: 0 };
    const producing = Promise.all([produce(a, 'ga', 12, out), produce(b, 'gb', 12, out)]);
    const received: Message[] = [];

    // Phase 1: node A, from the start, until some events arrived; then the client goes away.
    const clientA = new GrpcTestClient(a.grpcTarget, 'e4c2.v1.C2Admin');
    const first = clientA.stream('StreamEvents', { after_seq: String(start) });
    let open = true;
    first.on('data', (m: Message) => {
      if (open) received.push(m);
    });
    first.on('error', () => undefined);
    await eventually(() => {
      assert.ok(received.length >= 15, `${received.length} events so far`);
    }, 30_000);
    open = false;
    first.cancel();
    clientA.close();
    const disconnectedAt = out.done;

    // Changes keep coming while nobody listens.
    await eventually(() => {
      assert.ok(out.done >= disconnectedAt + 4 || out.done === 24, 'producers went on');
    }, 30_000);

    // Phase 2: node B, after the last seq received.
    const last = received.at(-1)?.['seq'];
    assert.equal(typeof last, 'string');
    const clientB = new GrpcTestClient(b.grpcTarget, 'e4c2.v1.C2Admin');
    const second = clientB.stream('StreamEvents', { after_seq: last });
    second.on('data', (m: Message) => received.push(m));
    second.on('error', () => undefined);
    await producing;
    const expected = (await journal(a)).filter(([seq]) => seq > start);
    try {
      await eventually(() => {
        assert.equal(received.at(-1)?.['seq'], String(expected.at(-1)?.[0]));
      }, 30_000);
    } finally {
      second.cancel();
      clientB.close();
    }
    assert.deepEqual(
      received.map((m) => [Number(m['seq']), m['type']]),
      expected,
      'every event once, in stream order',
    );
    assert.deepEqual(
      expected.map(([seq]) => seq),
      expected.map((_, i) => start + i + 1),
      'stream positions are gapless',
    );
    const types = new Set(expected.map(([, type]) => type));
    for (const type of [
      'client.created',
      'client.removed',
      'client.key_rotated',
      'topic.created',
      'topic.rotated',
      'topic.removed',
      'client.subscribed',
      'client.unsubscribed',
    ])
      assert.ok(types.has(type), `an event of type ${type}`);
  });

  void it('an SSE subscriber that disconnects and resumes with Last-Event-ID on the other node gets every event once, in order', async () => {
    const [a, b] = t.nodes;
    const start = (await journal(a)).at(-1)?.[0] ?? 0;
    const out: Production = { clientKeys: [], done: 0 };
    const producing = Promise.all([produce(a, 'sa', 12, out), produce(b, 'sb', 12, out)]);

    const first = new SseReader(b.httpPort, `/v1/events/stream?after=${start}`);
    await eventually(() => {
      assert.ok(first.events.length >= 15, `${first.events.length} events so far`);
    }, 30_000);
    first.disconnect();
    await first.ended;
    const kept = [...first.events];
    const disconnectedAt = out.done;
    await eventually(() => {
      assert.ok(out.done >= disconnectedAt + 4 || out.done === 24, 'producers went on');
    }, 30_000);

    const lastId = kept.at(-1)?.id ?? '';
    // `?after=` is ignored when Last-Event-ID is present (a browser reconnect keeps the URL).
    const second = new SseReader(a.httpPort, `/v1/events/stream?after=${start}`, {
      'last-event-id': lastId,
    });
    await producing;
    const expected = (await journal(a)).filter(([seq]) => seq > start);
    try {
      await eventually(() => {
        assert.equal(second.events.at(-1)?.id, String(expected.at(-1)?.[0]));
      }, 30_000);
      // Checked while still connected: the catch-up can end before the first heartbeat is due.
      await eventually(() => {
        assert.ok(second.comments >= 2, 'the opening comment and heartbeats');
      }, 10_000);
    } finally {
      second.disconnect();
    }
    assert.equal(first.status, 200);
    assert.equal(second.status, 200);
    const all = [...kept, ...second.events];
    assert.deepEqual(
      all.map((e) => [Number(e.id), e.type]),
      expected,
      'every event once, in stream order',
    );
    for (const e of all) {
      assert.equal(e.data['seq'], e.id);
      assert.equal(e.data['type'], e.type);
    }
  });

  void it('announces its start, and starts a position past the newest event at the newest', async () => {
    const [a] = t.nodes;
    const newest = (await journal(a)).at(-1)?.[0] ?? 0;
    // A console's position from before a restore that moved the sequence back.
    const sse = new SseReader(a.httpPort, '/v1/events/stream', {
      'last-event-id': String(newest + 1000),
    });
    try {
      await eventually(() => {
        assert.equal(sse.opened, String(newest));
      }, 10_000);
      await a.service.newTopic(ctx, 'ev/after-clamp');
      await eventually(() => {
        assert.ok(
          sse.events.some((e) => e.data['topic'] === 'ev/after-clamp'),
          'the new event',
        );
      }, 30_000);
    } finally {
      sse.disconnect();
    }
    assert.equal(sse.status, 200);
  });

  void it('gRPC StreamEvents after a position past the newest event starts at the newest', async () => {
    const [a] = t.nodes;
    const newest = (await journal(a)).at(-1)?.[0] ?? 0;
    const client = new GrpcTestClient(a.grpcTarget, 'e4c2.v1.C2Admin');
    const stream = client.stream('StreamEvents', { after_seq: String(newest + 1000) });
    const received: Message[] = [];
    stream.on('data', (m: Message) => received.push(m));
    stream.on('error', () => undefined);
    try {
      // The stream is open once a change made now reaches it (the first one may predate it).
      await eventually(
        async () => {
          await a.service.newTopic(ctx, `ev/grpc-clamp-${received.length}-${Date.now()}`);
          assert.ok(received.length > 0, 'an event after the clamp');
        },
        20_000,
        500,
      ); // 40 changes at most: far fewer than the 1,000 the position lies ahead
    } finally {
      stream.cancel();
      client.close();
    }
    assert.ok(Number(received[0]?.['seq']) > newest, 'an event after the newest');
  });

  void it('ListEvents after a position past the newest event resumes at the newest', async () => {
    const [a] = t.nodes;
    const newest = (await journal(a)).at(-1)?.[0] ?? 0;
    type Page = { events: Array<{ seq: string; topic: string }>; nextAfterSeq: string };
    const page = async (after: string | number): Promise<Page> => {
      const res = await httpCall(a.httpPort, 'GET', `/v1/events?after=${after}&limit=1000`);
      assert.equal(res.status, 200, res.text);
      return res.json as Page;
    };
    const ahead = await page(newest + 1000);
    assert.deepEqual(ahead, { events: [], nextAfterSeq: String(newest) });
    // At the end, an empty page keeps its position.
    assert.deepEqual(await page(newest), { events: [], nextAfterSeq: String(newest) });
    await a.service.newTopic(ctx, 'ev/list-after-clamp');
    const next = await page(ahead.nextAfterSeq);
    assert.ok(
      next.events.some((e) => e.topic === 'ev/list-after-clamp'),
      'the polling client sees the new event',
    );
    // gRPC answers the same.
    const client = new GrpcTestClient(a.grpcTarget, 'e4c2.v1.C2Admin');
    try {
      const viaGrpc = await client.call('ListEvents', { after_seq: String(newest + 1000) });
      assert.equal(viaGrpc['next_after_seq'], next.nextAfterSeq);
    } finally {
      client.close();
    }
  });

  void it('rejects a malformed resume position with a typed error', async () => {
    const [a] = t.nodes;
    const res = await httpCall(a.httpPort, 'GET', '/v1/events/stream', {
      headers: { 'last-event-id': 'x1' },
    });
    assert.equal(res.status, 400);
    assert.match(res.text, /Last-Event-ID/);
  });

  void it('no event carries key bytes (hex, base64 or base64url of any key, sealed or not)', async () => {
    const [a, b] = t.nodes;
    const out: Production = { clientKeys: [], done: 0 };
    await Promise.all([produce(a, 'ka', 3, out), produce(b, 'kb', 3, out)]);
    const secrets: Uint8Array[] = [...out.clientKeys];
    // Every stored key of every kind, opened with the vault, plus the sealed forms.
    const store = new PgC2Store(a.pool);
    const { rows: topicKeys } = await a.pool.query<{ topic_id: string; version: number }>(
      'SELECT topic_id, version FROM topic_keys',
    );
    for (const row of topicKeys) {
      const key = await store.read.topics.key(row.topic_id, row.version);
      assert.ok(key !== undefined);
      secrets.push(key.sealed);
      secrets.push(await a.vault.open(key.sealed, bindings.topicKey(row.topic_id, row.version)));
    }
    const { rows: clientKeys } = await a.pool.query<{ client_id: string }>(
      'SELECT DISTINCT client_id FROM client_keys',
    );
    for (const row of clientKeys) {
      for (const key of await store.read.clients.keys(row.client_id)) {
        secrets.push(key.sealed);
        secrets.push(
          await a.vault.open(key.sealed, bindings.clientKey(row.client_id, key.version)),
        );
      }
    }
    assert.ok(topicKeys.length >= 6 && clientKeys.length >= 1, 'keys to look for');
    const encodings = secrets.flatMap((k) => {
      const buf = Buffer.from(k);
      return [buf.toString('hex'), buf.toString('base64'), buf.toString('base64url')].map((s) =>
        s.slice(0, 24),
      );
    });
    // Everything a subscriber can see: the table itself, ListEvents, SSE.
    const { rows } = await a.pool.query<{ row: string }>(
      'SELECT row_to_json(e)::text AS row FROM events e',
    );
    const list = await httpCall(a.httpPort, 'GET', '/v1/events?after=0&limit=1000');
    assert.equal(list.status, 200);
    const sse = new SseReader(b.httpPort, '/v1/events/stream?after=0');
    const total = rows.length;
    await eventually(() => {
      assert.equal(sse.events.length, total);
    }, 30_000);
    sse.disconnect();
    const seen = [
      ...rows.map((r) => r.row),
      list.text,
      ...sse.events.map((e) => JSON.stringify(e)),
    ].join('\n');
    assert.ok(total > 30, `${total} events`);
    for (const encoded of encodings)
      assert.ok(!seen.includes(encoded), 'an event carries key bytes');
  });
});
