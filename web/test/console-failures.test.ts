/**
 * The console under the failures an operator meets: names a browser cannot put in a URL, a
 * failing row, double clicks, a refused token, a stream that drops early or fails, rows whose
 * topic changed or went away.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { cells, openConsole, settle, until } from './support/fake-api.ts';

const STREAM = '/v1/events/stream';
const banner = (document: Document, id = 'error'): string | null =>
  document.getElementById(id)?.hidden === false
    ? (document.getElementById(id)?.textContent ?? '')
    : null;

void describe('the web console, when things go wrong', () => {
  void it('shows every row when one fails or is named . or .., and never calls another URL', async () => {
    const { document, api, close } = openConsole(new Map(), (api) => {
      api.topics.set('..', 1).set('.', 1).set('broken', 2);
      api.failing.add('broken');
      api.clients.push('..');
    });
    try {
      await until(() => cells(document, 'topics').length === 5, 'the topic rows');
      const rows = cells(document, 'topics');
      assert.deepEqual(rows[0], ['plant/a', '3', '4', '3', '2', '1', '0', 'Rotate']);
      assert.match(rows[2]?.[1] ?? '', /"\.\." cannot be used in a browser URL/);
      assert.match(rows[3]?.[1] ?? '', /"\." cannot be used in a browser URL/);
      assert.deepEqual(rows[4], ['broken', 'C2_INTERNAL: the rollout failed', '']);
      await until(() => cells(document, 'clients').length === 2, 'the client rows');
      document.querySelectorAll<HTMLButtonElement>('#clients button.resync')[1]?.click();
      await until(() => /cannot be used in a browser URL/.test(banner(document) ?? ''), 'error');
      for (const call of api.calls)
        assert.match(
          call.path,
          /^\/(readyz|v1\/(topics|clients|events|admin\/restore-status)\b)/,
          call.path,
        );
      assert.ok(!api.calls.some((c) => c.method === 'POST'), 'no resync sent elsewhere');
    } finally {
      close();
    }
  });

  void it('resumes from the position the stream announced, before any event', async () => {
    const { api, close } = openConsole();
    try {
      await until(() => api.streams === 1, 'the event stream');
      api.send('retry: 20\nid: 40\n: stream after 40\n\n');
      await settle(20);
      api.drop();
      await until(() => api.streams === 2, 'the reconnection');
      const resumed = api.calls.filter((c) => c.path === STREAM).at(-1);
      assert.equal(resumed?.headers['last-event-id'], '40');
    } finally {
      close();
    }
  });

  void it('loads a page once however often More is clicked', async () => {
    const { document, api, close } = openConsole(new Map(), (api) => {
      api.topicPage = 1;
    });
    try {
      await until(() => cells(document, 'topics').length === 1, 'the first page');
      const more = document.getElementById('more-topics') as HTMLButtonElement;
      assert.equal(more.hidden, false);
      more.click();
      more.click();
      await until(() => cells(document, 'topics').length === 2, 'the second page');
      await settle();
      assert.equal(cells(document, 'topics').length, 2);
      assert.equal(api.calls.filter((c) => c.path.includes('cursor=1')).length, 1);
      assert.equal(more.hidden, true, 'no page after the last');
    } finally {
      close();
    }
  });

  void it('shows only the latest refresh when the token form is sent twice', async () => {
    const { document, window, close } = openConsole();
    try {
      const form = document.getElementById('auth') as HTMLFormElement;
      form.dispatchEvent(new window.Event('submit', { cancelable: true }));
      form.dispatchEvent(new window.Event('submit', { cancelable: true }));
      await until(() => cells(document, 'topics').length >= 2, 'the topic rows');
      await settle();
      assert.equal(cells(document, 'topics').length, 2);
      assert.equal(cells(document, 'clients').length, 1);
    } finally {
      close();
    }
  });

  void it('shows a refused stream with the API code and waits for another token', async () => {
    const tokens = new Map<string, string>();
    const { document, window, api, close } = openConsole(tokens);
    try {
      await until(() => api.streams === 1, 'the event stream');
      api.send('retry: 20\n\n');
      await settle(20);
      api.streamStatuses.push(401);
      api.drop();
      const refused = 'event stream: C2_UNAUTHENTICATED: a bearer token is required';
      await until(() => banner(document) === refused, 'the refusal');
      await settle(200);
      assert.equal(api.streams, 2, 'no retry with the same token');
      assert.equal(document.getElementById('stream')?.textContent, 'refused');
      (document.getElementById('token') as HTMLInputElement).value = 'tok-2';
      const form = document.getElementById('auth') as HTMLFormElement;
      form.dispatchEvent(new window.Event('submit', { cancelable: true }));
      await until(() => api.streams === 3, 'the stream with the new token');
      assert.equal(api.calls.at(-1)?.headers['authorization'], 'Bearer tok-2');
    } finally {
      close();
    }
  });

  void it('clears the stream error once the stream is live again', async () => {
    const { document, api, close } = openConsole();
    try {
      await until(() => api.streams === 1, 'the event stream');
      api.send('retry: 20\n\n');
      await settle(20);
      api.streamStatuses.push(500);
      api.drop();
      await until(
        () => /^event stream: C2_UNAVAILABLE/.test(banner(document, 'stream-error') ?? ''),
        'the failure beside the stream badge',
      );
      assert.equal(banner(document), null, 'the banner is for actions and loads');
      await until(() => api.streams === 3, 'the failed and the next connection');
      await until(() => document.getElementById('stream')?.textContent === 'live', 'live');
      assert.equal(banner(document, 'stream-error'), null);
      assert.equal(banner(document), null);
    } finally {
      close();
    }
  });

  void it('reads a list again when its first page failed, and clears that failure', async () => {
    // In Chromium, lists refused once (503 while the database failed over) left the page empty
    // under the error for good, although the node answered again a moment later.
    const { document, api, close } = openConsole(
      new Map(),
      (api) => {
        api.listFailures = 3;
      },
      { rowPollMs: 20 },
    );
    try {
      await until(
        () => banner(document) === 'C2_UNAVAILABLE: database not reachable',
        'the failure in the banner',
      );
      await until(() => cells(document, 'topics').length === 2, 'the topics, read again', 5000);
      await until(() => cells(document, 'clients').length === 1, 'the clients, read again', 5000);
      await until(() => banner(document) === null, 'the failure cleared');
      assert.equal(api.listFailures, 0);
      const lists = api.calls.filter((c) => /^\/v1\/(topics|clients)\?/.test(c.path));
      assert.equal(lists.length, 5, 'three refused, then each list once');
    } finally {
      close();
    }
  });

  void it('says the node does not answer when /readyz hangs, instead of keeping "ready"', async () => {
    // In Chromium, a node stopped with SIGSTOP (the kernel still accepts its connections) kept
    // the badge at "ready" for as long as it hung: the check had no time limit.
    const { document, close } = openConsole(
      new Map(),
      (api) => {
        api.readyHangs = true;
      },
      { callTimeoutMs: 50 },
    );
    try {
      const badge = () => document.getElementById('health');
      await until(() => badge()?.textContent === 'no answer', 'the health check to give up');
      assert.equal(badge()?.className, 'badge bad');
    } finally {
      close();
    }
  });

  void it('drops a silent stream and connects again; heartbeats keep it', async () => {
    // In Chromium, a node stopped with SIGSTOP left the stream "live" and empty for as long as
    // it hung: the fetch of a connection nobody closes never ends.
    const idleMs = 400;
    const { document, api, close } = openConsole(new Map(), () => undefined, {
      streamIdleMs: idleMs,
    });
    try {
      await until(() => api.streams === 1, 'the event stream');
      api.send('retry: 20\nid: 7\n\n');
      // Heartbeats for longer than the limit: the connection stays. (Only when this machine kept
      // them well apart from the limit: a check that a stalled test runner would fail is not
      // about the console.)
      let last = Date.now();
      let widest = 0;
      for (let i = 0; i < 20; i++) {
        await settle(30);
        api.send(': heartbeat\n\n');
        widest = Math.max(widest, Date.now() - last);
        last = Date.now();
      }
      if (widest < idleMs / 2) assert.equal(api.streams, 1, 'a stream that sends heartbeats stays');
      await until(
        () =>
          /^event stream: no data from the node for 0\.4 s/.test(
            banner(document, 'stream-error') ?? '',
          ),
        'the silence said beside the badge',
      );
      await until(() => api.streams === 2, 'a new connection');
      const resumed = api.calls.filter((c) => c.path === STREAM).at(-1);
      assert.equal(resumed?.headers['last-event-id'], '7', 'from where the silent one was');
      await until(() => document.getElementById('stream')?.textContent === 'live', 'live');
      assert.equal(banner(document, 'stream-error'), null);
      assert.equal(banner(document), null, 'the banner is for actions and loads');
    } finally {
      close();
    }
  });

  void it('refreshes a row on any event naming its topic and removes a removed topic', async () => {
    const { document, api, close } = openConsole();
    try {
      await until(() => cells(document, 'topics').length === 2, 'the topic rows');
      api.members = 5;
      api.send(
        'id: 1\ndata: {"seq":"1","at":"t","type":"client.subscribed","topic":"plant/a","client":"s"}\n\n',
      );
      await until(() => cells(document, 'topics')[0]?.[2] === '5', 'the new member count');
      api.topics.delete('<img src=x onerror=alert(1)>');
      api.send(
        'id: 2\ndata: {"seq":"2","at":"t","type":"topic.rotated","topic":"<img src=x onerror=alert(1)>"}\n\n',
      );
      await until(() => cells(document, 'topics').length === 1, 'the row of the gone topic');
      api.topics.delete('plant/a');
      api.send('id: 3\ndata: {"seq":"3","at":"t","type":"topic.removed","topic":"plant/a"}\n\n');
      await until(() => cells(document, 'topics').length === 0, 'the removed topic');
      await settle();
      assert.equal(banner(document), null);
    } finally {
      close();
    }
  });

  void it('shows that a token is stored, never the token', () => {
    const tokens = new Map([['e4c2-token', 'tok-123']]);
    const { document, window, close } = openConsole(tokens);
    try {
      const input = document.getElementById('token') as HTMLInputElement;
      assert.equal(input.placeholder, 'token stored (submit empty to clear)');
      // Wide enough to read it: Chromium's default field showed "token stored (submit emp".
      assert.ok(input.size >= input.placeholder.length, `size ${input.size}`);
      assert.equal(input.value, '');
      assert.ok(!document.documentElement.outerHTML.includes('tok-123'));
      const form = document.getElementById('auth') as HTMLFormElement;
      form.dispatchEvent(new window.Event('submit', { cancelable: true }));
      assert.equal(tokens.size, 0);
      assert.equal(input.placeholder, 'none (open API)');
    } finally {
      close();
    }
  });
});
