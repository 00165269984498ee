/**
 * The console against a fake HTTP API in a DOM (jsdom): canned JSON per path, an event stream
 * the test writes to, and knobs for the failures the console must survive.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { JSDOM } from 'jsdom';
import { startConsole, type ConsoleTiming } from '../../console.js';

const PAGE = readFileSync(new URL('../../index.html', import.meta.url), 'utf8');

export interface Call {
  readonly method: string;
  readonly path: string;
  readonly headers: Record<string, string>;
}

const error = (
  status: number,
  code: string,
  message: string,
  details?: Record<string, unknown>,
): Promise<Response> =>
  Promise.resolve(Response.json({ error: { code, message, details } }, { status }));

export interface Rollout {
  members: number;
  delivered: number;
  confirmed: number;
  pending: number;
  failed: number;
}

/** A fake API: canned JSON per path, and an event stream the test writes to. */
export class FakeApi {
  readonly calls: Call[] = [];
  readonly topics = new Map<string, number>([
    ['plant/a', 3],
    ['<img src=x onerror=alert(1)>', 1],
  ]);
  readonly clients = ['sensor-1'];
  /** Topics per page of `GET /v1/topics` (the cursor is the index of the next one). */
  topicPage = 50;
  /** The members every rollout reports. */
  members = 4;
  /** Rollouts of topics that differ from the default (`members`, 3 delivered, 2, 1 pending, 0). */
  readonly rollouts = new Map<string, Partial<Rollout>>();
  /** Topics whose rollout answers 500. */
  readonly failing = new Set<string>();
  /** Delay of each rollout answer, ms. */
  rolloutDelayMs = 0;
  /** Delay of one topic's rollout answers, ms (overrides `rolloutDelayMs`). */
  readonly rolloutDelays = new Map<string, number>();
  /** Topics `GET /v1/clients/{name}` reports, per client (none by default). */
  readonly clientTopics = new Map<string, Array<Record<string, unknown>>>();
  /** Attempts, last error and last rejection `GET /v1/clients/{name}` reports, per client. */
  readonly clientDelivery = new Map<
    string,
    {
      attempts: number;
      error: string;
      lastRejectedAt?: string;
      lastRejectionReason?: string;
      lastRejectedCommand?: string;
    }
  >();
  /** Rollout requests running now, and the most that ran at once, per topic. */
  readonly rolloutsRunning = new Map<string, number>();
  readonly rolloutsMostAtOnce = new Map<string, number>();
  /** Delivery state per client (default `failed`); a resync makes it `pending`. */
  readonly clientStates = new Map<string, string>();
  /** What `POST /v1/clients/{name}/resync` answers as `keysResent`. */
  keysResent: string[] = [];
  /** The node's maximum page size (`E4C2_MAX_PAGE_SIZE`); `limitMessage` is its refusal. */
  maxPageSize = 1000;
  limitMessage = (max: number): string => `limit must be at most ${max}`;
  /** What `GET /v1/admin/restore-status` answers: a status, or an HTTP error status. */
  restore: { pending: boolean; restoredPosition: string } | number = {
    pending: false,
    restoredPosition: '',
  };
  /** The next this many list requests (`/v1/topics`, `/v1/clients`) answer 503. */
  listFailures = 0;
  /** Requests by path (`/v1/topics`, ...) answered once their promise is: the first one only. */
  readonly held = new Map<string, Promise<void>>();
  /** `/readyz` accepts the request and never answers (a hung node). */
  readyHangs = false;
  /** Statuses of the next stream requests (then 200): 401 and 500 answer an API error body. */
  readonly streamStatuses: number[] = [];
  #stream: ReadableStreamDefaultController<Uint8Array> | undefined;
  #streams = 0;

  readonly fetch = (input: string | URL | Request, init?: RequestInit): Promise<Response> => {
    const raw = typeof input === 'string' ? input : input instanceof URL ? input.href : input.url;
    // As a browser does: relative to the page, dot segments resolved (`%2E%2E` too).
    const url = new URL(raw, 'https://c2.test/console/');
    const path = url.pathname + url.search;
    const headers = Object.fromEntries(
      Object.entries((init?.headers ?? {}) as Record<string, string>).map(([k, v]) => [
        k.toLowerCase(),
        v,
      ]),
    );
    const method = init?.method ?? 'GET';
    this.calls.push({ method, path, headers });
    const held = this.held.get(url.pathname);
    if (held === undefined) return this.#answer(url, method, init);
    this.held.delete(url.pathname);
    return held.then(() => this.#answer(url, method, init));
  };

  #answer(url: URL, method: string, init: RequestInit | undefined): Promise<Response> {
    const path = url.pathname + url.search;
    if (path === '/readyz')
      return this.readyHangs
        ? new Promise((_, reject) => {
            // A hung node: no answer until the caller's signal (its timeout) gives up.
            init?.signal?.addEventListener('abort', () => {
              reject(init.signal?.reason as Error);
            });
          })
        : Promise.resolve(Response.json({ ready: true }));
    const limit = Number(url.searchParams.get('limit') ?? 0);
    if (
      (url.pathname === '/v1/topics' || url.pathname === '/v1/clients') &&
      this.listFailures > 0
    ) {
      this.listFailures -= 1;
      return error(503, 'C2_UNAVAILABLE', 'database not reachable');
    }
    if (
      (url.pathname === '/v1/topics' || url.pathname === '/v1/clients') &&
      limit > this.maxPageSize
    )
      return error(400, 'C2_VALIDATION', this.limitMessage(this.maxPageSize), { field: 'limit' });
    const pageSize = limit || Math.min(100, this.maxPageSize);
    if (url.pathname === '/v1/topics') {
      const from = Number(url.searchParams.get('cursor') || 0);
      const names = [...this.topics].slice(from, from + Math.min(this.topicPage, pageSize));
      const next = from + names.length;
      return Promise.resolve(
        Response.json({
          topics: names.map(([name, keyVersion]) => ({ name, keyVersion })),
          nextCursor: next < this.topics.size ? String(next) : '',
        }),
      );
    }
    if (url.pathname === '/v1/clients') {
      const from = Number(url.searchParams.get('cursor') || 0);
      const names = this.clients.slice(from, from + pageSize);
      const next = from + names.length;
      return Promise.resolve(
        Response.json({
          clients: names.map((name) => ({
            name,
            keyVersion: 2,
            deliveryState: this.clientStates.get(name) ?? 'failed',
          })),
          nextCursor: next < this.clients.length ? String(next) : '',
        }),
      );
    }
    if (path === '/v1/admin/restore-status') {
      if (typeof this.restore === 'number')
        return error(this.restore, 'C2_PERMISSION_DENIED', 'the role read-only is needed');
      return Promise.resolve(Response.json(this.restore));
    }
    const client = /^\/v1\/clients\/([^/]+)(\/resync)?$/.exec(path);
    if (client?.[1] !== undefined) {
      const name = decodeURIComponent(client[1]);
      if (!this.clients.includes(name)) return error(404, 'C2_NOT_FOUND', `no client ${name}`);
      if (client[2] !== undefined && method === 'POST') {
        this.clientStates.set(name, 'pending');
        return Promise.resolve(Response.json({ keysResent: this.keysResent }));
      }
      return Promise.resolve(
        Response.json({
          name,
          keyVersion: 2,
          delivery: {
            state: this.clientStates.get(name) ?? 'failed',
            ...(this.clientDelivery.get(name) ?? { attempts: 0 }),
          },
          topics: this.clientTopics.get(name) ?? [],
        }),
      );
    }
    const rollout = /^\/v1\/topics\/([^/]+)\/rollout$/.exec(path);
    if (rollout?.[1] !== undefined)
      return this.#rollout(decodeURIComponent(rollout[1]), init?.signal ?? undefined);
    const rotate = /^\/v1\/topics\/([^/]+)\/rotate$/.exec(path);
    if (rotate?.[1] !== undefined && method === 'POST') {
      const name = decodeURIComponent(rotate[1]);
      this.topics.set(name, (this.topics.get(name) ?? 0) + 1);
      return Promise.resolve(Response.json({ keyVersion: this.topics.get(name) }));
    }
    if (path === '/v1/events/stream') {
      this.#streams += 1;
      const status = this.streamStatuses.shift() ?? 200;
      if (status === 401) return error(401, 'C2_UNAUTHENTICATED', 'a bearer token is required');
      if (status !== 200) return error(status, 'C2_UNAVAILABLE', 'the database is unreachable');
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
    return error(404, 'C2_NOT_FOUND', `no route for ${method} ${path}`);
  }

  async #rollout(name: string, signal: AbortSignal | undefined): Promise<Response> {
    const running = (this.rolloutsRunning.get(name) ?? 0) + 1;
    this.rolloutsRunning.set(name, running);
    this.rolloutsMostAtOnce.set(name, Math.max(running, this.rolloutsMostAtOnce.get(name) ?? 0));
    try {
      const delay = this.rolloutDelays.get(name) ?? this.rolloutDelayMs;
      if (delay > 0) {
        // As fetch does: the caller's signal (its timeout) ends the wait with the signal's reason.
        await new Promise((resolve, reject) => {
          const timer = setTimeout(resolve, delay);
          signal?.addEventListener('abort', () => {
            clearTimeout(timer);
            reject(signal.reason as Error);
          });
        });
      }
      if (this.failing.has(name)) return await error(500, 'C2_INTERNAL', 'the rollout failed');
      if (!this.topics.has(name)) return await error(404, 'C2_NOT_FOUND', `no topic ${name}`);
      return Response.json({
        topic: name,
        keyVersion: this.topics.get(name),
        rollout: {
          members: this.members,
          delivered: 3,
          confirmed: 2,
          pending: 1,
          failed: 0,
          ...this.rollouts.get(name),
        },
      });
    } finally {
      this.rolloutsRunning.set(name, running - 1);
    }
  }

  /** The requests made so far to `path` (and method). */
  count(path: string, method = 'GET'): number {
    return this.calls.filter((c) => c.path === path && c.method === method).length;
  }

  /** Sends one event (an SSE frame with its id) on the open stream. */
  event(seq: number, type: string, fields: Record<string, unknown> = {}): void {
    this.send(
      `id: ${seq}\ndata: ${JSON.stringify({ seq: String(seq), at: 't', type, ...fields })}\n\n`,
    );
  }

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

export async function until(check: () => boolean, what: string, ms = 2000): Promise<void> {
  for (let i = 0; i < ms / 10; i++) {
    if (check()) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  assert.fail(`timed out waiting for ${what}`);
}

/** Lets pending answers land (for checks that something did not happen). */
export const settle = (ms = 100): Promise<void> => new Promise((r) => setTimeout(r, ms));

export function cells(document: Document, tbody: string): string[][] {
  return [...document.querySelectorAll(`#${tbody} tr`)].map((tr) =>
    [...tr.querySelectorAll('td')].map((td) => td.textContent),
  );
}

/**
 * A console on a fresh page against a fake API; `storage` holds the saved token, if any, and
 * `setup` adjusts the API before the console starts.
 */
export function openConsole(
  storage = new Map<string, string>(),
  setup: (api: FakeApi) => void = () => undefined,
  timing?: Partial<ConsoleTiming>,
  confirm: (message: string) => boolean = () => true,
): {
  document: Document;
  window: JSDOM['window'];
  api: FakeApi;
  close: () => void;
} {
  const dom = new JSDOM(PAGE);
  const { document } = dom.window;
  const api = new FakeApi();
  setup(api);
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
    confirm,
    ...(timing === undefined ? {} : { timing }),
  });
  return {
    document,
    window: dom.window,
    api,
    close: () => {
      stop();
      dom.window.close();
    },
  };
}
