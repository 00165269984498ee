// @ts-check
/**
 * The web console: topics with their rollout, clients with their delivery state, a live event
 * feed, and the two everyday actions (rotate a topic key, resync a client). It talks to the
 * node's HTTP API only (`/v1`, `/readyz`), with the bearer token the operator types in; the token
 * lives in sessionStorage (gone when the tab closes) and is sent only to this origin.
 */
import { SseParser } from './sse.js';

const PAGE = 50;
const MAX_EVENTS = 200;

/**
 * What the console runs against: the browser's objects (see main.js), or fakes in tests.
 * @typedef {{
 *   document: Document,
 *   fetch: typeof fetch,
 *   storage: Pick<Storage, 'getItem' | 'setItem' | 'removeItem'>,
 *   confirm: (message: string) => boolean,
 * }} ConsoleEnvironment
 */

/** @type {ConsoleEnvironment} */
let env;

/** @param {string} id @returns {HTMLElement} */
function byId(id) {
  const element = env.document.getElementById(id);
  if (element === null) throw new Error(`missing #${id}`);
  return element;
}

/** @returns {Record<string, string>} */
function authHeaders() {
  const token = env.storage.getItem('e4c2-token');
  return token ? { authorization: `Bearer ${token}` } : {};
}

/** Shows an API failure; the message comes from the server's error body. @param {string} text */
function showError(text) {
  const box = byId('error');
  box.textContent = text;
  box.hidden = text === '';
}

/**
 * One API call; throws with the server's error code and message.
 * @param {string} method @param {string} path @returns {Promise<any>}
 */
async function api(method, path) {
  /** @type {Record<string, string>} */
  const headers = { ...authHeaders() };
  if (method !== 'GET') headers['idempotency-key'] = crypto.randomUUID();
  const res = await env.fetch(path, { method, headers });
  const body = await res.json().catch(() => ({}));
  if (!res.ok) {
    const error = body?.error ?? {};
    throw new Error(`${error.code ?? res.status}: ${error.message ?? res.statusText}`);
  }
  return body;
}

/** @param {string} name */
const segment = (name) => encodeURIComponent(name);

/**
 * A table row of text cells (textContent only: names come from devices and operators).
 * @param {Array<string | number>} cells @param {HTMLElement} [action]
 */
function row(cells, action) {
  const tr = env.document.createElement('tr');
  for (const cell of cells) {
    const td = env.document.createElement('td');
    td.textContent = String(cell);
    tr.append(td);
  }
  const td = env.document.createElement('td');
  if (action) td.append(action);
  tr.append(td);
  return tr;
}

/** @param {string} label @param {() => Promise<void>} run */
function button(label, run) {
  const b = env.document.createElement('button');
  b.textContent = label;
  b.addEventListener('click', () => {
    b.disabled = true;
    run()
      .then(() => showError(''))
      .catch((err) => showError(String(err.message ?? err)))
      .finally(() => {
        b.disabled = false;
      });
  });
  return b;
}

/** @param {string} name @returns {Promise<HTMLTableRowElement>} */
async function topicRow(name) {
  const status = await api('GET', `/v1/topics/${segment(name)}/rollout`);
  const r = status.rollout ?? {};
  const tr = row(
    [
      name,
      status.keyVersion ?? 0,
      r.members ?? 0,
      r.delivered ?? 0,
      r.confirmed ?? 0,
      r.pending ?? 0,
      r.failed ?? 0,
    ],
    button('Rotate', async () => {
      if (!env.confirm(`Rotate the key of topic ${name}? Every member receives a new key.`)) return;
      await api('POST', `/v1/topics/${segment(name)}/rotate`);
      tr.replaceWith(await topicRow(name));
    }),
  );
  tr.dataset['topic'] = name;
  return tr;
}

let topicCursor = '';
let clientCursor = '';

async function loadTopics(reset = false) {
  if (reset) {
    topicCursor = '';
    byId('topics').replaceChildren();
  }
  const page = await api('GET', `/v1/topics?limit=${PAGE}&cursor=${segment(topicCursor)}`);
  // The rollouts of a page are fetched together; rows keep the page's order.
  const rows = await Promise.all(
    (page.topics ?? []).map((/** @type {{ name: string }} */ t) => topicRow(t.name)),
  );
  byId('topics').append(...rows);
  topicCursor = page.nextCursor ?? '';
  byId('more-topics').hidden = topicCursor === '';
}

async function loadClients(reset = false) {
  if (reset) {
    clientCursor = '';
    byId('clients').replaceChildren();
  }
  const page = await api('GET', `/v1/clients?limit=${PAGE}&cursor=${segment(clientCursor)}`);
  for (const client of page.clients ?? []) {
    const name = client.name;
    byId('clients').append(
      row(
        [name, client.keyVersion ?? 0, client.deliveryState ?? ''],
        button('Resync', async () => {
          await api('POST', `/v1/clients/${segment(name)}/resync`);
        }),
      ),
    );
  }
  clientCursor = page.nextCursor ?? '';
  byId('more-clients').hidden = clientCursor === '';
}

async function checkHealth() {
  const badge = byId('health');
  try {
    const res = await env.fetch('/readyz');
    badge.textContent = res.ok ? 'ready' : 'not ready';
    badge.className = `badge ${res.ok ? 'ok' : 'bad'}`;
  } catch {
    badge.textContent = 'unreachable';
    badge.className = 'badge bad';
  }
}

/** @param {{ seq: string, at: string, type: string, client?: string, topic?: string, keyVersion?: number }} e */
function showEvent(e) {
  const li = env.document.createElement('li');
  const subject = [e.topic, e.client].filter(Boolean).join(' ');
  li.textContent = `#${e.seq} ${e.at} ${e.type} ${subject}${e.keyVersion ? ` v${e.keyVersion}` : ''}`;
  const list = byId('events');
  list.prepend(li);
  while (list.children.length > MAX_EVENTS) list.lastElementChild?.remove();
  if (e.topic && e.type.startsWith('topic.')) {
    const topic = e.topic;
    const current = [...byId('topics').querySelectorAll('tr')].find(
      (tr) => tr.dataset['topic'] === topic,
    );
    if (current) void topicRow(topic).then((tr) => current.replaceWith(tr));
  }
}

/** @type {AbortController | undefined} */
let streamControl;

/**
 * Follows `/v1/events/stream`, reconnecting with Last-Event-ID so no event is missed or shown
 * twice across a disconnect.
 */
async function followEvents() {
  streamControl?.abort();
  const control = new AbortController();
  streamControl = control;
  const badge = byId('stream');
  /** @type {string | undefined} */
  let lastId;
  let delay = 2000;
  while (!control.signal.aborted) {
    try {
      /** @type {Record<string, string>} */
      const headers = { accept: 'text/event-stream', ...authHeaders() };
      if (lastId !== undefined) headers['last-event-id'] = lastId;
      const res = await env.fetch('/v1/events/stream', { headers, signal: control.signal });
      if (!res.ok || res.body === null) throw new Error(`event stream: HTTP ${res.status}`);
      badge.textContent = 'live';
      badge.className = 'badge ok';
      const parser = new SseParser();
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        for (const event of parser.push(value)) {
          lastId = event.id ?? lastId;
          showEvent(JSON.parse(event.data));
        }
        delay = parser.retryMs ?? delay;
      }
    } catch (err) {
      if (control.signal.aborted) return;
      showError(String(/** @type {Error} */ (err).message ?? err));
    }
    badge.textContent = 'reconnecting';
    badge.className = 'badge bad';
    await new Promise((resolve) => setTimeout(resolve, delay));
  }
}

function refresh() {
  showError('');
  void checkHealth();
  Promise.all([loadTopics(true), loadClients(true)]).catch((err) =>
    showError(String(err.message ?? err)),
  );
  void followEvents();
}

/**
 * Starts the console on `environment`: loads the lists, follows the events, checks health.
 * @param {ConsoleEnvironment} environment
 * @returns {() => void} stops the event stream and the health timer
 */
export function startConsole(environment) {
  env = environment;
  byId('auth').addEventListener('submit', (event) => {
    event.preventDefault();
    const token = /** @type {HTMLInputElement} */ (byId('token')).value.trim();
    if (token) env.storage.setItem('e4c2-token', token);
    else env.storage.removeItem('e4c2-token');
    refresh();
  });
  byId('more-topics').addEventListener('click', () => {
    loadTopics().catch((err) => showError(String(err.message)));
  });
  byId('more-clients').addEventListener('click', () => {
    loadClients().catch((err) => showError(String(err.message)));
  });
  const health = setInterval(() => void checkHealth(), 10_000);
  refresh();
  return () => {
    clearInterval(health);
    streamControl?.abort();
  };
}
