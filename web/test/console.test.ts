/**
 * The console's behaviour in a DOM (jsdom) against a fake HTTP API: what it lists, what it sends
 * (the bearer token, idempotency keys), the live event stream with resume, and that every name is
 * shown as text, never interpreted as HTML.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { cells, openConsole, until } from './support/fake-api.ts';

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
      assert.deepEqual(cells(document, 'clients'), [['sensor-1', '2', 'failed', 'TopicsResync']]);
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
      // One numbering: the event's seq. A numbered list (`<ol reversed>`) put its own count
      // beside it (200, 199, … next to #41).
      const list = document.getElementById('events');
      assert.equal(list?.tagName, 'UL', 'a list without numbers of its own');
      assert.equal(list.hasAttribute('reversed'), false);
      api.drop();
      await until(() => api.streams === 2, 'the reconnection');
      const resumed = api.calls.filter((c) => c.path === '/v1/events/stream').at(-1);
      assert.equal(resumed?.headers['last-event-id'], '41');
    } finally {
      close();
    }
  });
});
