/**
 * The console's behaviour in a DOM (jsdom) against a fake HTTP API: what it lists, what it sends
 * (the bearer token, idempotency keys), the live event stream with resume, and that every name is
 * shown as text, never interpreted as HTML.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { JSDOM } from 'jsdom';
import { startConsole } from '../console.js';

const PAGE = readFileSync(new URL('../index.html', import.meta.url), 'utf8');

interface Call {
  readonly method: string;
  readonly path: string;
  readonly headers: Record<string, string>;
}

/** A fake API: canned JSON per path, and an event stream the test writes to. */
class FakeApi {
  readonly calls: Call[] = [];
  readonly topics = new Map<string, number>([
    ['plant/a', 3],
    ['<img src=x onerror=alert(1)>', 1],
  ]);
  #stream: ReadableStreamDefaultController<Uint8Array> | undefined;
  #streams = 0;

  readonly fetch = (input: string | URL | Request, init?: RequestInit): Promise<Response> => {
    const path = typeof input === 'string' ? input : input instanceof URL ? input.href : input.url;
    const headers = Object.fromEntries(
      Object.entries((init?.headers ?? {}) as Record<string, string>).map(([k, v]) => [
        k.toLowerCase(),
        v,
      ]),
    );
    const method = init?.method ?? 'GET';
    this.calls.push({ method, path, headers });
    if (path === '/readyz') return Promise.resolve(Response.json({ ready: true }));
    if (path.startsWith('/v1/topics?'))
      return Promise.resolve(
        Response.json({
          topics: [...this.topics].map(([name, keyVersion]) => ({ name, keyVersion })),
          nextCursor: '',
        }),
      );
    if (path.startsWith('/v1/clients?'))
      return Promise.resolve(
        Response.json({
          clients: [{ name: 'sensor-1', keyVersion: 2, deliveryState: 'failed' }],
          nextCursor: '',
        }),
      );
    const rollout = /^\/v1\/topics\/([^/]+)\/rollout$/.exec(path);
    if (rollout?.[1] !== undefined) {
      const name = decodeURIComponent(rollout[1]);
      return Promise.resolve(
        Response.json({
          topic: name,
          keyVersion: this.topics.get(name) ?? 0,
          rollout: { members: 4, delivered: 3, confirmed: 2, pending: 1, failed: 0 },
        }),
      );
    }
    const rotate = /^\/v1\/topics\/([^/]+)\/rotate$/.exec(path);
    if (rotate?.[1] !== undefined && method === 'POST') {
      const name = decodeURIComponent(rotate[1]);
      this.topics.set(name, (this.topics.get(name) ?? 0) + 1);
      return Promise.resolve(Response.json({ keyVersion: this.topics.get(name) }));
    }
    if (path === '/v1/events/stream') {
      this.#streams += 1;
      const body = new ReadableStream<Uint8Array>({
        start: (controller) => {
          this.#stream = controller;
        },
      });
      init?.signal?.addEventListener('abort', () => {
        this.#stream?.error(new Error('aborted'));
      });
      return Promise.resolve(
        new Response(body, { headers: { 'content-type': 'text/event-stream' } }),
      );
    }
    return Promise.resolve(Response.json({ error: { code: 'C2_NOT_FOUND' } }, { status: 404 }));
  };

  /** Sends SSE text on the open stream. */
  send(text: string): void {
    this.#stream?.enqueue(new TextEncoder().encode(text));
  }

  /** Ends the open stream (the node went away). */
  drop(): void {
    this.#stream?.close();
  }

  get streams(): number {
    return this.#streams;
  }
}

async function until(check: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (check()) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  assert.fail(`timed out waiting for ${what}`);
}

function cells(document: Document, tbody: string): string[][] {
  return [...document.querySelectorAll(`#${tbody} tr`)].map((tr) =>
    [...tr.querySelectorAll('td')].map((td) => td.textContent),
  );
}

/** A console on a fresh page against a fake API; `storage` holds the saved token, if any. */
function openConsole(storage = new Map<string, string>()): {
  document: Document;
  api: FakeApi;
  close: () => void;
} {
  const dom = new JSDOM(PAGE);
  const { document } = dom.window;
  const api = new FakeApi();
  const stop = startConsole({
    document,
    fetch: api.fetch,
    storage: {
      getItem: (k: string) => storage.get(k) ?? null,
      setItem: (k: string, v: string) => {
        storage.set(k, v);
      },
      removeItem: (k: string) => {
        storage.delete(k);
      },
    },
    confirm: () => true,
  });
  return {
    document,
    api,
    close: () => {
      stop();
      dom.window.close();
    },
  };
}

void describe('the web console', () => {
  void it('lists topics with their rollout and clients, as text, with the stored token', async () => {
    const { document, api, close } = openConsole(new Map([['e4c2-token', 'tok-123']]));
    try {
      await until(() => cells(document, 'topics').length === 2, 'the topic rows');
      assert.deepEqual(cells(document, 'topics'), [
        ['plant/a', '3', '4', '3', '2', '1', '0', 'Rotate'],
        ['<img src=x onerror=alert(1)>', '1', '4', '3', '2', '1', '0', 'Rotate'],
      ]);
      assert.equal(document.querySelectorAll('#topics img').length, 0, 'a name is never HTML');
      await until(() => cells(document, 'clients').length === 1, 'the client row');
      assert.deepEqual(cells(document, 'clients'), [['sensor-1', '2', 'failed', 'Resync']]);
      const apiCalls = api.calls.filter((c) => c.path.startsWith('/v1/'));
      assert.ok(apiCalls.length > 0);
      for (const call of apiCalls)
        assert.equal(call.headers['authorization'], 'Bearer tok-123', call.path);
      await until(() => document.getElementById('health')?.textContent === 'ready', 'health');
    } finally {
      close();
    }
  });

  void it('rotates after confirmation, with an idempotency key, and refreshes the row', async () => {
    const { document, api, close } = openConsole();
    try {
      await until(() => cells(document, 'topics').length === 2, 'the topic rows');
      const button = document.querySelector<HTMLButtonElement>('#topics tr button');
      assert.ok(button !== null);
      button.click();
      await until(() => cells(document, 'topics')[0]?.[1] === '4', 'the rotated version');
      const rotate = api.calls.find((c) => c.method === 'POST');
      assert.equal(rotate?.path, '/v1/topics/plant%2Fa/rotate');
      assert.match(rotate.headers['idempotency-key'] ?? '', /^[0-9a-f-]{36}$/);
      assert.equal(rotate.headers['authorization'], undefined, 'no token, no header');
    } finally {
      close();
    }
  });

  void it('shows live events and resumes after a drop with Last-Event-ID', async () => {
    const { document, api, close } = openConsole();
    try {
      await until(() => api.streams === 1, 'the event stream');
      api.send(
        'retry: 20\n\nid: 41\nevent: topic.rotated\ndata: {"seq":"41","at":"t","type":"topic.rotated","topic":"plant/a","keyVersion":4}\n\n',
      );
      await until(() => document.querySelectorAll('#events li').length === 1, 'the event');
      assert.equal(
        document.querySelector('#events li')?.textContent,
        '#41 t topic.rotated plant/a v4',
      );
      assert.equal(document.getElementById('stream')?.textContent, 'live');
      api.drop();
      await until(() => api.streams === 2, 'the reconnection');
      const resumed = api.calls.filter((c) => c.path === '/v1/events/stream').at(-1);
      assert.equal(resumed?.headers['last-event-id'], '41');
    } finally {
      close();
    }
  });
});
