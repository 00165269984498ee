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

const TOKEN = 'e4c2-token';

/** @returns {Record<string, string>} */
function authHeaders() {
  const token = env.storage.getItem(TOKEN);
  return token ? { authorization: `Bearer ${token}` } : {};
}

/** Shows an API failure; the message comes from the server's error body. @param {string} text */
function showError(text) {
  const box = byId('error');
  box.textContent = text;
  box.hidden = text === '';
}

/**
 * Clears the banner only while it still shows `text`: a later, other failure stays.
 * @param {string} text
 */
function clearError(text) {
  if (text !== '' && byId('error').textContent === text) showError('');
}

/** @param {unknown} err */
const message = (err) => String(/** @type {Error} */ (err)?.message ?? err);

/** A refused call: the API's error code (or the HTTP status) and message, and the status. */
class ApiError extends Error {
  /** @param {Response} res @param {any} body */
  constructor(res, body) {
    const error = body?.error ?? {};
    super(`${error.code ?? res.status}: ${error.message ?? res.statusText}`);
    this.status = res.status;
  }
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
  if (!res.ok) throw new ApiError(res, body);
  return body;
}

let topicCursor = '';
let clientCursor = '';
/** Counts refreshes: a load started before the latest refresh drops its answer (no duplicates). */
let generation = 0;

/**
 * A name as one URL path segment. A browser resolves the segments `.` and `..` (percent-encoded
 * too: `%2E%2E` is `..` to the URL parser) before sending, so `/v1/topics/../rollout` would reach
 * `/v1/rollout`: such a name cannot be addressed from a page at all, and is refused here rather
 * than sent to another resource.
 * @param {string} name
 */
function segment(name) {
  if (name === '.' || name === '..')
    throw new Error(`the name "${name}" cannot be used in a browser URL; use the API directly`);
  return encodeURIComponent(name);
}

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
      .catch((err) => showError(message(err)))
      .finally(() => {
        b.disabled = false;
      });
  });
  return b;
}

/**
 * The row of topic `name`, or undefined when the topic is gone (removed since it was listed).
 * Any other failure is shown on the row itself: one topic must not hide the others.
 * @param {string} name @returns {Promise<HTMLTableRowElement | undefined>}
 */
async function topicRow(name) {
  let status;
  try {
    status = await api('GET', `/v1/topics/${segment(name)}/rollout`);
  } catch (err) {
    if (err instanceof ApiError && err.status === 404) return undefined;
    const tr = row([name, message(err)]);
    const cell = /** @type {HTMLTableCellElement} */ (tr.children[1]);
    cell.colSpan = 6;
    cell.className = 'failed';
    tr.dataset['topic'] = name;
    return tr;
  }
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
      await refreshTopic(name);
    }),
  );
  tr.dataset['topic'] = name;
  return tr;
}

/** @param {string} name */
const findTopicRow = (name) =>
  [...byId('topics').querySelectorAll('tr')].find((tr) => tr.dataset['topic'] === name);

/**
 * The latest fetch of each topic's row: an older answer that arrives later must not land.
 * @type {Map<string, object>}
 */
const rowFetches = new Map();

/**
 * Fetches the row of a listed topic again; removes it when the topic is gone.
 * @param {string} name
 */
async function refreshTopic(name) {
  if (findTopicRow(name) === undefined) return;
  const ticket = {};
  rowFetches.set(name, ticket);
  const gen = generation;
  const tr = await topicRow(name);
  if (rowFetches.get(name) !== ticket || gen !== generation) return;
  rowFetches.delete(name);
  // Looked up again: a refresh of the whole list may have replaced it meanwhile.
  const current = findTopicRow(name);
  if (tr === undefined) current?.remove();
  else current?.replaceWith(tr);
}

/** @param {string} id */
const moreButton = (id) => /** @type {HTMLButtonElement} */ (byId(id));

async function loadTopics(reset = false) {
  const gen = generation;
  const more = moreButton('more-topics');
  if (reset) {
    topicCursor = '';
    byId('topics').replaceChildren();
    more.hidden = true;
  }
  // Disabled while loading: a second click would load the same page again.
  more.disabled = true;
  try {
    const page = await api(
      'GET',
      `/v1/topics?limit=${PAGE}&cursor=${encodeURIComponent(topicCursor)}`,
    );
    // The rollouts of a page are fetched together; rows keep the page's order.
    const rows = await Promise.all(
      (page.topics ?? []).map((/** @type {{ name: string }} */ t) => topicRow(t.name)),
    );
    if (gen !== generation) return;
    byId('topics').append(...rows.filter((tr) => tr !== undefined));
    topicCursor = page.nextCursor ?? '';
    more.hidden = topicCursor === '';
  } finally {
    if (gen === generation) more.disabled = false;
  }
}

async function loadClients(reset = false) {
  const gen = generation;
  const more = moreButton('more-clients');
  if (reset) {
    clientCursor = '';
    byId('clients').replaceChildren();
    more.hidden = true;
  }
  more.disabled = true;
  try {
    const page = await api(
      'GET',
      `/v1/clients?limit=${PAGE}&cursor=${encodeURIComponent(clientCursor)}`,
    );
    if (gen !== generation) return;
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
    more.hidden = clientCursor === '';
  } finally {
    if (gen === generation) more.disabled = false;
  }
}

/**
 * Runs a load, showing its failure unless a refresh superseded it.
 * @param {() => Promise<void>} load
 */
function run(load) {
  const gen = generation;
  load().catch((err) => {
    if (gen === generation) showError(message(err));
  });
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
  // Any event that names a topic may change its row (members come and go with client.subscribed
  // and client.unsubscribed); a removed topic's row goes, with its Rotate button.
  if (e.topic) {
    const topic = e.topic;
    if (e.type === 'topic.removed') findTopicRow(topic)?.remove();
    else refreshTopic(topic).catch((err) => showError(message(err)));
  }
}

/** @type {AbortController | undefined} */
let streamControl;

/**
 * Follows `/v1/events/stream`, reconnecting with Last-Event-ID so no event is missed or shown
 * twice across a disconnect. The position is the parser's last id, which the server's opening
 * frame sets too (`id:` without data): a connection that drops before its first event resumes
 * where it started, not at the end.
 */
async function followEvents() {
  streamControl?.abort();
  const control = new AbortController();
  streamControl = control;
  const badge = byId('stream');
  /** @type {string | undefined} */
  let lastId;
  let delay = 2000;
  /** The banner text of the last failure, cleared once the stream is live again. */
  let failure = '';
  while (!control.signal.aborted) {
    try {
      /** @type {Record<string, string>} */
      const headers = { accept: 'text/event-stream', ...authHeaders() };
      if (lastId !== undefined) headers['last-event-id'] = lastId;
      const res = await env.fetch('/v1/events/stream', { headers, signal: control.signal });
      if (!res.ok) {
        const refused = new ApiError(res, await res.json().catch(() => ({})));
        // Retrying cannot help until another token is given (the form restarts the stream).
        if (res.status === 401 || res.status === 403) {
          showError(`event stream: ${refused.message}`);
          badge.textContent = 'refused';
          badge.className = 'badge bad';
          return;
        }
        throw refused;
      }
      if (res.body === null) throw new Error('no body');
      badge.textContent = 'live';
      badge.className = 'badge ok';
      clearError(failure);
      const parser = new SseParser();
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        for (const event of parser.push(value)) {
          // Before showing it: an event the console cannot show is not asked for again.
          lastId = event.id ?? lastId;
          showEvent(JSON.parse(event.data));
        }
        lastId = parser.lastEventId ?? lastId; // also set by an id without data
        delay = parser.retryMs ?? delay;
      }
    } catch (err) {
      if (control.signal.aborted) return;
      failure = `event stream: ${message(err)}`;
      showError(failure);
    }
    badge.textContent = 'reconnecting';
    badge.className = 'badge bad';
    await new Promise((resolve) => setTimeout(resolve, delay));
  }
}

function refresh() {
  generation += 1;
  showError('');
  void checkHealth();
  run(() => loadTopics(true));
  run(() => loadClients(true));
  void followEvents();
}

/** Says whether a token is in use, never which (the field is emptied once it is stored). */
function showTokenState() {
  const input = /** @type {HTMLInputElement} */ (byId('token'));
  input.value = '';
  input.placeholder = env.storage.getItem(TOKEN)
    ? 'token stored (submit empty to clear)'
    : 'none (open API)';
}

/**
 * Starts the console on `environment`: loads the lists, follows the events, checks health.
 * @param {ConsoleEnvironment} environment
 * @returns {() => void} stops the event stream, the health timer and the loads
 */
export function startConsole(environment) {
  env = environment;
  byId('auth').addEventListener('submit', (event) => {
    event.preventDefault();
    const token = /** @type {HTMLInputElement} */ (byId('token')).value.trim();
    if (token) env.storage.setItem(TOKEN, token);
    else env.storage.removeItem(TOKEN);
    showTokenState();
    refresh();
  });
  byId('more-topics').addEventListener('click', () => run(() => loadTopics()));
  byId('more-clients').addEventListener('click', () => run(() => loadClients()));
  const health = setInterval(() => void checkHealth(), 10_000);
  showTokenState();
  refresh();
  return () => {
    clearInterval(health);
    streamControl?.abort();
    generation += 1; // loads still running drop their answers
  };
}
