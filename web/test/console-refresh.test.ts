/**
 * The console keeping its rows current: rollouts still pending are polled (bounded, backing
 * off, not while the tab is hidden), bursts of events cost one fetch per row, clients are
 * refreshed after Resync and on their events, rows come and go with created and removed topics
 * and clients. Also: the restore banner, a node with a small maximum page size, event details,
 * names with leading or trailing spaces, and a banner that the next action to succeed clears of
 * an action's failure (only), or its Dismiss button.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { cells, openConsole, settle, until } from './support/fake-api.ts';

const ROLLOUT_A = '/v1/topics/plant%2Fa/rollout';
const banner = (document: Document, id = 'error'): string | null =>
  document.getElementById(id)?.hidden === false
    ? (document.getElementById(id)?.textContent ?? '')
    : null;
/** Timings of a test: fast polls; `coalesceMs` short so that waits stay short. */
const FAST = { rowPollMs: 30, restorePollMs: 30, coalesceMs: 30 };
const SLOW = { rowPollMs: 60_000, restorePollMs: 60_000, coalesceMs: 30 };

void describe('the web console, keeping rows current', () => {
  void it('polls a row while its rollout is pending, and stops once nothing is pending', async () => {
    const { document, api, close } = openConsole(
      new Map(),
      (api) => {
        api.rollouts.set('plant/a', { delivered: 0, confirmed: 0, pending: 4 });
        api.rollouts.set('<img src=x onerror=alert(1)>', { pending: 0 });
      },
      FAST,
    );
    try {
      await until(() => cells(document, 'topics')[0]?.[5] === '4', 'the pending row');
      // The broker accepts and one device fails: no event names the topic.
      api.rollouts.set('plant/a', { delivered: 3, confirmed: 0, pending: 0, failed: 1 });
      await until(() => cells(document, 'topics')[0]?.[5] === '0', 'the delivered rollout');
      assert.deepEqual(cells(document, 'topics')[0], [
        'plant/a',
        '3',
        '4',
        '3',
        '0',
        '0',
        '1',
        'Rotate',
      ]);
      const polled = api.count(ROLLOUT_A);
      await settle(200);
      assert.equal(api.count(ROLLOUT_A), polled, 'no poll once nothing is pending');
      assert.equal(api.count('/v1/topics/%3Cimg%20src%3Dx%20onerror%3Dalert(1)%3E/rollout'), 1);
    } finally {
      close();
    }
  });

  void it('polls nothing while the tab is hidden, and catches up when it is shown', async () => {
    const { document, window, api, close } = openConsole(new Map(), () => undefined, FAST);
    try {
      await until(() => cells(document, 'topics').length === 2, 'the topic rows');
      Object.defineProperty(document, 'visibilityState', { value: 'hidden', configurable: true });
      await settle(60);
      const before = api.count(ROLLOUT_A);
      api.members = 7;
      await settle(200);
      assert.equal(api.count(ROLLOUT_A), before, 'no poll while hidden');
      Object.defineProperty(document, 'visibilityState', { value: 'visible', configurable: true });
      document.dispatchEvent(new window.Event('visibilitychange'));
      await until(() => cells(document, 'topics')[0]?.[2] === '7', 'the refreshed row');
    } finally {
      close();
    }
  });

  void it('tries a failing row again, backing off', async () => {
    const { document, api, close } = openConsole(
      new Map(),
      (api) => {
        api.topics.set('broken', 2);
        api.failing.add('broken');
      },
      { rowPollMs: 20, coalesceMs: 10 },
    );
    try {
      await until(() => cells(document, 'topics').length === 3, 'the topic rows');
      await settle(700);
      const tries = api.count('/v1/topics/broken/rollout');
      // Every 20 ms that would be about 35; doubling waits (40, 80, 160, 320 ms) allow about 5.
      assert.ok(tries >= 2 && tries <= 7, `${tries} tries`);
      api.failing.delete('broken');
      await until(() => cells(document, 'topics')[2]?.[1] === '2', 'the row once it works', 3000);
    } finally {
      close();
    }
  });

  void it('refreshes the pending and failed rows on a delivery event that names no topic', async () => {
    const { document, api, close } = openConsole(new Map(), () => undefined, SLOW);
    try {
      await until(() => cells(document, 'topics').length === 2, 'the topic rows');
      await until(() => api.streams === 1, 'the event stream');
      api.rollouts.set('plant/a', { pending: 0, failed: 1 });
      api.event(1, 'delivery.failed', {
        client: 'sensor-1',
        details: { command: 'SetTopicKey', attempts: '5' },
      });
      await until(() => cells(document, 'topics')[0]?.[6] === '1', 'the failed count');
    } finally {
      close();
    }
  });

  void it('fetches a row once per burst of events, one request at a time', async () => {
    const { document, api, close } = openConsole(new Map(), () => undefined, SLOW);
    try {
      await until(() => cells(document, 'topics').length === 2, 'the topic rows');
      await until(() => api.streams === 1, 'the event stream');
      api.rolloutDelayMs = 50;
      const before = api.count(ROLLOUT_A);
      for (let burst = 0; burst < 5; burst++) {
        let text = '';
        for (let i = 0; i < 50; i++) {
          const seq = burst * 50 + i + 1;
          const e = {
            seq: String(seq),
            at: 't',
            type: 'client.subscribed',
            topic: 'plant/a',
            client: `d${seq}`,
          };
          text += `id: ${seq}\ndata: ${JSON.stringify(e)}\n\n`;
        }
        api.send(text);
        await settle(15);
      }
      api.members = 9;
      api.event(251, 'client.subscribed', { topic: 'plant/a', client: 'last' });
      await until(() => cells(document, 'topics')[0]?.[2] === '9', 'the row after the burst');
      await settle(150);
      const fetched = api.count(ROLLOUT_A) - before;
      assert.ok(fetched >= 1 && fetched <= 8, `${fetched} rollout requests for 251 events`);
      assert.equal(api.rolloutsMostAtOnce.get('plant/a'), 1, 'one request at a time');
    } finally {
      close();
    }
  });
});

void describe('the web console, clients', () => {
  void it('says what a resync re-sent and refreshes the row', async () => {
    const { document, api, close } = openConsole(
      new Map(),
      (api) => {
        api.keysResent = ['identity'];
      },
      SLOW,
    );
    try {
      await until(() => cells(document, 'clients').length === 1, 'the client row');
      assert.deepEqual(cells(document, 'clients')[0], ['sensor-1', '2', 'failed', 'TopicsResync']);
      document.querySelector<HTMLButtonElement>('#clients button.resync')?.click();
      await until(() => banner(document, 'client-notice') !== null, 'the resync result');
      assert.equal(
        banner(document, 'client-notice'),
        'resync of "sensor-1" queued; keys re-sent: identity',
      );
      await until(() => cells(document, 'clients')[0]?.[2] === 'pending', 'the refreshed row');
      assert.equal(api.count('/v1/clients/sensor-1'), 1);
      api.keysResent = [];
      document.querySelector<HTMLButtonElement>('#clients button.resync')?.click();
      await until(
        () => banner(document, 'client-notice') === 'resync of "sensor-1" queued; nothing re-sent',
        'the second result',
      );
    } finally {
      close();
    }
  });

  void it('adds created clients and topics, removes removed ones, and rows that are gone', async () => {
    const { document, api, close } = openConsole(
      new Map(),
      (api) => {
        api.clients.push('sensor-3');
      },
      SLOW,
    );
    try {
      await until(() => cells(document, 'clients').length === 2, 'the client rows');
      await until(() => api.streams === 1, 'the event stream');
      api.clients.push('sensor-2');
      api.clientStates.set('sensor-2', 'idle');
      api.event(1, 'client.created', { client: 'sensor-2', keyVersion: 1 });
      await until(() => cells(document, 'clients')[1]?.[2] === 'idle', 'the created client');
      assert.deepEqual(
        cells(document, 'clients').map((r) => r[0]),
        ['sensor-1', 'sensor-2', 'sensor-3'],
      );
      api.clients.splice(api.clients.indexOf('sensor-1'), 1);
      api.event(2, 'client.removed', { client: 'sensor-1' });
      await until(() => cells(document, 'clients').length === 2, 'the removed client');
      // Gone without its event reaching the console (another event about it finds it gone).
      api.clients.splice(api.clients.indexOf('sensor-3'), 1);
      api.event(3, 'client.key_rotated', { client: 'sensor-3', keyVersion: 3 });
      await until(() => cells(document, 'clients').length === 1, 'the client found gone');
      api.topics.set('plant/0', 1);
      api.event(4, 'topic.created', { topic: 'plant/0', keyVersion: 1 });
      await until(() => cells(document, 'topics')[0]?.[0] === 'plant/0', 'the created topic');
      await until(() => cells(document, 'topics')[0]?.[1] === '1', 'its rollout');
      assert.equal(cells(document, 'topics').length, 3);
      api.topics.delete('plant/0');
      api.event(5, 'topic.removed', { topic: 'plant/0' });
      await until(() => cells(document, 'topics').length === 2, 'the removed topic');
      assert.equal(banner(document), null);
    } finally {
      close();
    }
  });
});

void describe('the web console, node state and limits', () => {
  void it('shows a banner while a restore awaits its reconciliation', async () => {
    const { document, api, close } = openConsole(
      new Map(),
      (api) => {
        api.restore = { pending: true, restoredPosition: '1200' };
      },
      FAST,
    );
    try {
      await until(() => banner(document, 'restore') !== null, 'the restore banner');
      assert.match(
        banner(document, 'restore') ?? '',
        /deliveries are paused until restore-reconcile runs/,
      );
      assert.match(banner(document, 'restore') ?? '', /docs\/operations\.md/);
      assert.match(banner(document, 'restore') ?? '', /1200/);
      api.restore = { pending: false, restoredPosition: '' };
      await until(() => banner(document, 'restore') === null, 'the banner gone once reconciled');
    } finally {
      close();
    }
  });

  void it('shows no restore banner, and stops asking, when the token may not read it', async () => {
    const { document, api, close } = openConsole(
      new Map(),
      (api) => {
        api.restore = 403;
      },
      FAST,
    );
    try {
      await until(() => api.count('/v1/admin/restore-status') === 1, 'the restore check');
      await settle(200);
      assert.equal(api.count('/v1/admin/restore-status'), 1);
      assert.equal(banner(document, 'restore'), null);
      assert.equal(banner(document), null);
    } finally {
      close();
    }
  });

  void it('lists with the node maximum page size when it is below 50, learnt once per list', async () => {
    const { document, window, api, close } = openConsole(
      new Map(),
      (api) => {
        api.maxPageSize = 1;
        api.clients.push('sensor-2');
      },
      SLOW,
    );
    try {
      await until(() => cells(document, 'topics').length === 1, 'the first topic page');
      await until(() => cells(document, 'clients').length === 1, 'the first client page');
      assert.equal(banner(document), null);
      (document.getElementById('more-topics') as HTMLButtonElement).click();
      (document.getElementById('more-clients') as HTMLButtonElement).click();
      await until(() => cells(document, 'topics').length === 2, 'the second topic page');
      await until(() => cells(document, 'clients').length === 2, 'the second client page');
      // Sending the token form again reloads both lists, with the size learnt.
      const form = document.getElementById('auth') as HTMLFormElement;
      form.dispatchEvent(new window.Event('submit', { cancelable: true }));
      await until(() => api.count('/v1/clients?limit=1&cursor=') === 2, 'the reload');
      await until(() => cells(document, 'topics').length === 1, 'the reloaded topics');
      const lists = api.calls.filter((c) => /^\/v1\/(topics|clients)\?/.test(c.path));
      // One refusal per list, on the first load only: the two lists load independently (neither
      // waits for the other's answer), and the reload keeps the size learnt.
      assert.deepEqual(
        lists.map((c) => c.path.replace(/&cursor=.*/, '')).sort(),
        [
          '/v1/topics?limit=50',
          '/v1/clients?limit=50',
          ...Array<string>(3).fill('/v1/topics?limit=1'),
          ...Array<string>(3).fill('/v1/clients?limit=1'),
        ].sort(),
      );
    } finally {
      close();
    }
  });

  void it('loads the two lists independently: neither waits for the other to answer', async () => {
    for (const [slow, other] of [
      ['topics', 'clients'],
      ['clients', 'topics'],
    ] as const) {
      let answer = (): void => undefined;
      const { document, api, close } = openConsole(
        new Map(),
        (api) => {
          api.held.set(
            `/v1/${slow}`,
            new Promise((resolve) => {
              answer = resolve;
            }),
          );
        },
        SLOW,
      );
      try {
        await until(() => cells(document, other).length > 0, `the ${other}, ${slow} unanswered`);
        assert.equal(api.count(`/v1/${slow}?limit=50&cursor=`), 1, `${slow} asked at once`);
        assert.equal(cells(document, slow).length, 0);
        answer();
        await until(() => cells(document, slow).length > 0, `the ${slow} once answered`);
        assert.equal(banner(document), null);
      } finally {
        close();
      }
    }
  });

  void it('lists without a limit when the refusal names no maximum', async () => {
    const { document, api, close } = openConsole(
      new Map(),
      (api) => {
        api.maxPageSize = 20;
        api.limitMessage = () => 'limit is too large';
      },
      SLOW,
    );
    try {
      await until(() => cells(document, 'topics').length === 2, 'the topic rows');
      await until(() => cells(document, 'clients').length === 1, 'the client rows');
      assert.ok(api.calls.some((c) => c.path === '/v1/topics?cursor='));
      assert.equal(banner(document), null);
    } finally {
      close();
    }
  });
});

void describe('the web console, what it shows', () => {
  void it('shows the details of events, as text', async () => {
    const { document, api, close } = openConsole(new Map(), () => undefined, SLOW);
    try {
      await until(() => api.streams === 1, 'the event stream');
      api.event(1, 'client.resync', { client: 'sensor-1', details: { keysResent: 'identity,c2' } });
      api.event(2, 'delivery.rejected', {
        client: 'sensor-1',
        topic: 'plant/a',
        keyVersion: 3,
        details: { command: 'SetTopicKey', reason: 'unknown key <b>x</b>' },
      });
      api.event(3, 'delivery.failed', {
        client: 'sensor-1',
        details: { command: 'SetTopicKey', attempts: '5' },
      });
      await until(() => document.querySelectorAll('#events li').length === 3, 'the events');
      const lines = [...document.querySelectorAll('#events li')].map((li) => li.textContent);
      assert.deepEqual(lines, [
        '#3 t delivery.failed sensor-1 (command=SetTopicKey attempts=5)',
        '#2 t delivery.rejected plant/a sensor-1 v3 (command=SetTopicKey reason="unknown key <b>x</b>")',
        '#1 t client.resync sensor-1 (keysResent=identity,c2)',
      ]);
      assert.equal(document.querySelectorAll('#events b').length, 0, 'details are never HTML');
    } finally {
      close();
    }
  });

  void it('makes leading and trailing spaces of names visible, in cells and event lines', async () => {
    const { document, api, close } = openConsole(
      new Map(),
      (api) => {
        api.topics.clear();
        api.topics.set('plant/a', 1).set('plant/a ', 1).set(' plant/a', 1);
      },
      SLOW,
    );
    try {
      await until(() => cells(document, 'topics').length === 3, 'the topic rows');
      const names = [...document.querySelectorAll('#topics td.name')];
      assert.deepEqual(
        names.map((td) => td.textContent),
        ['plant/a', 'plant/a ', ' plant/a'],
      );
      assert.deepEqual(
        names.map((td) => [...td.querySelectorAll('.ws')].map((s) => s.textContent)),
        [[], [' '], [' ']],
      );
      // In Chromium the event line for client " spaced " read "client.resync  spaced ": its
      // trailing space could not be seen.
      await until(() => api.streams === 1, 'the event stream');
      api.event(4, 'client.subscribed', { topic: 'plant/a ', client: ' dev-1' });
      await until(() => document.querySelectorAll('#events li').length === 1, 'the event');
      const bdis = [...document.querySelectorAll('#events li bdi')];
      assert.deepEqual(
        bdis.map((bdi) => [...bdi.querySelectorAll('.ws')].map((s) => s.textContent)),
        [[' '], [' ']],
      );
      const css = readFileSync(new URL('../console.css', import.meta.url), 'utf8');
      assert.match(css, /td\.name\s*\{[^}]*white-space:\s*pre-wrap;/);
      assert.match(css, /#events\s*\{[^}]*white-space:\s*pre-wrap;/);
      // Marked everywhere, not only in cells: an event line's mark must not look like plain text.
      assert.match(css, /(^|\n)\.ws\s*\{[^}]*background:/);
    } finally {
      close();
    }
  });

  void it('clears an action failure when any action succeeds, and nothing else', async () => {
    const { document, api, close } = openConsole(new Map(), () => undefined, SLOW);
    try {
      await until(() => api.streams === 1, 'the event stream');
      await until(() => cells(document, 'topics').length === 2, 'the topic rows');
      api.send('retry: 20\n\n');
      await settle(20);
      api.streamStatuses.push(401);
      api.drop();
      const refused = 'event stream: C2_UNAUTHENTICATED: a bearer token is required';
      await until(() => banner(document) === refused, 'the stream refusal');
      const rotate = (): void =>
        document.querySelector<HTMLButtonElement>('#topics button')?.click();
      rotate();
      await until(() => api.count('/v1/topics/plant%2Fa/rotate', 'POST') === 1, 'the rotation');
      await settle();
      assert.equal(banner(document), refused, 'the stream failure stays');
      // A Resync that failed, then another action that worked (it stayed until the same button
      // worked): the failure goes.
      api.clients.splice(0, 1);
      document.querySelector<HTMLButtonElement>('#clients button.resync')?.click();
      await until(() => banner(document) === 'C2_NOT_FOUND: no client sensor-1', 'the failure');
      rotate();
      await until(() => api.count('/v1/topics/plant%2Fa/rotate', 'POST') === 2, 'the rotation');
      await until(() => banner(document) === null, 'the banner cleared');
      assert.equal(document.getElementById('error-box')?.hidden, true);
    } finally {
      close();
    }
  });

  void it('dismisses the banner with its button', async () => {
    const { document, api, close } = openConsole(new Map(), () => undefined, SLOW);
    try {
      await until(() => cells(document, 'clients').length === 1, 'the client row');
      api.clients.splice(0, 1);
      document.querySelector<HTMLButtonElement>('#clients button.resync')?.click();
      await until(() => banner(document) === 'C2_NOT_FOUND: no client sensor-1', 'the failure');
      const box = document.getElementById('error-box') as HTMLElement;
      const dismiss = document.getElementById('error-close') as HTMLButtonElement;
      assert.equal(box.hidden, false);
      assert.equal(dismiss.type, 'button', 'a button of its own, not a submit');
      assert.match(dismiss.getAttribute('aria-label') ?? '', /^Dismiss\b/);
      assert.equal(document.getElementById('error')?.getAttribute('role'), 'alert');
      assert.ok(box.contains(dismiss), 'beside the message it dismisses');
      assert.ok(!document.getElementById('error')?.contains(dismiss), 'not read as the alert');
      dismiss.click();
      assert.equal(banner(document), null);
      assert.equal(box.hidden, true);
    } finally {
      close();
    }
  });
});
