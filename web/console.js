// @ts-check
/**
 * The web console: topics with their rollout, clients with their delivery state, a live event
 * feed, and the two everyday actions (rotate a topic key, resync a client). It talks to the
 * node's HTTP API only (`/v1`, `/readyz`), with the bearer token the operator types in; the token
 * lives in sessionStorage (gone when the tab closes) and is sent only to this origin.
 */
import { SseParser } from './sse.js';

/** Rows asked for per page (fewer when the node's maximum page size is smaller). */
const PAGE = 50;
const MAX_EVENTS = 200;
/** Row fetches of refreshes (not of page loads) that run at once. */
const ROW_FETCHES = 4;
/** The longest wait before a row whose fetch failed is tried again. */
const MAX_BACKOFF_MS = 60_000;
/** The longest details text shown on an event line. */
const MAX_DETAILS = 200;

/**
 * How often the console polls, how long it gathers events before refreshing a row, how long it
 * waits for the answer to an API call, and how long the event stream may stay silent.
 * @typedef {{ rowPollMs: number, restorePollMs: number, coalesceMs: number, callTimeoutMs: number,
 *   streamIdleMs: number }} ConsoleTiming
 */

/** @type {ConsoleTiming} */
const DEFAULT_TIMING = {
  rowPollMs: 2000,
  restorePollMs: 30_000,
  coalesceMs: 400,
  callTimeoutMs: 15_000,
  // Three of the heartbeats the node sends every 15 s on the event stream.
  streamIdleMs: 45_000,
};

/**
 * What the console runs against: the browser's objects (see main.js), or fakes in tests.
 * @typedef {{
 *   document: Document,
 *   fetch: typeof fetch,
 *   storage: Pick<Storage, 'getItem' | 'setItem' | 'removeItem'>,
 *   confirm: (message: string) => boolean,
 *   timing?: Partial<ConsoleTiming>,
 * }} ConsoleEnvironment
 */

/** @type {ConsoleEnvironment} */
let env;
/** @type {ConsoleTiming} */
let timing = DEFAULT_TIMING;

/** @param {string} id @returns {HTMLElement} */
function byId(id) {
  const element = env.document.getElementById(id);
  if (element === null) throw new Error(`missing #${id}`);
  return element;
}

/**
 * Timers of the running console (row polls, restore checks, coalesced refreshes).
 * @type {Set<ReturnType<typeof setTimeout>>}
 */
const timers = new Set();

/** Runs `task` after `ms`, unless the console stops first. @param {() => void} task @param {number} ms */
function later(task, ms) {
  const timer = setTimeout(() => {
    timers.delete(timer);
    task();
  }, ms);
  timers.add(timer);
}

/** The tab is in the background: polls wait until it is shown again. */
const pageHidden = () => env.document.visibilityState === 'hidden';

const TOKEN = 'e4c2-token';

/** @returns {Record<string, string>} */
function authHeaders() {
  const token = env.storage.getItem(TOKEN);
  return token ? { authorization: `Bearer ${token}` } : {};
}

/** Shows a text in a status line (`#error`, `#restore`, `#client-notice`); '' hides it. */
function showText(/** @type {string} */ id, /** @type {string} */ text) {
  const box = byId(id);
  box.textContent = text;
  box.hidden = text === '';
}

/**
 * Shows a failure in the banner, with its Dismiss button; '' hides both. The message comes from
 * the server's error body.
 * @param {string} text
 */
function showError(text) {
  showText('error', text);
  byId('error-box').hidden = text === '';
}

/** The failure of an action the banner shows, if any: the next action that succeeds clears it. */
let actionFailure = '';

/**
 * Clears the banner only while it still shows `text`: a later, other failure stays.
 * @param {string} text
 */
function clearError(text) {
  if (text !== '' && byId('error').textContent === text) showError('');
}

/** @param {unknown} err */
const message = (err) => String(/** @type {Error} */ (err)?.message ?? err);

/**
 * A failure of `fetch` itself (the browser's `TypeError: Failed to fetch`, `NetworkError when
 * attempting to fetch resource`, ...) in words an operator can act on; any other error as it is.
 * @param {unknown} err @param {string} [suffix] added to the message
 */
function networkError(err, suffix = '') {
  if (!(err instanceof TypeError)) return err;
  return new Error(`the node did not answer (connection failed: ${err.message})${suffix}`);
}

/** A refused call: the API's error code (or the HTTP status) and message, and the status. */
class ApiError extends Error {
  /** @param {Response} res @param {any} body */
  constructor(res, body) {
    const error = body?.error ?? {};
    super(`${error.code ?? res.status}: ${error.message ?? res.statusText}`);
    this.status = res.status;
    /** @type {string | undefined} */
    this.code = error.code;
    /** The server's own message, without the code. @type {string} */
    this.apiMessage = String(error.message ?? '');
    /** @type {Record<string, unknown>} */
    this.details = error.details ?? {};
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
  /** @type {Response} */
  let res;
  try {
    res = await env.fetch(path, {
      method,
      headers,
      signal: AbortSignal.timeout(timing.callTimeoutMs),
    });
  } catch (err) {
    const sent = method === 'GET' ? '' : ' (it may still be done: refresh to see)';
    if (/** @type {Error} */ (err)?.name !== 'TimeoutError') throw networkError(err, sent);
    throw new Error(`no answer from the node within ${timing.callTimeoutMs / 1000} s${sent}`);
  }
  const body = await res.json().catch(() => ({}));
  if (!res.ok) throw new ApiError(res, body);
  return body;
}

/** The page size asked for: PAGE, or the node's maximum once it refused PAGE; 0 asks for none. */
let pageSize = PAGE;

/**
 * The largest page a refusal of `limit` allows (`limit must be at most 20`): 0 (ask without a
 * limit: the node's default fits its maximum) when it names no number; undefined when `err` is
 * not such a refusal.
 * @param {unknown} err @returns {number | undefined}
 */
function allowedLimit(err) {
  if (!(err instanceof ApiError) || err.code !== 'C2_VALIDATION') return undefined;
  if (err.details['field'] !== 'limit' && !/^limit\b/.test(err.apiMessage)) return undefined;
  const max = Number(/at most (\d+)/.exec(err.apiMessage)?.[1]);
  return Number.isSafeInteger(max) && max >= 1 ? max : 0;
}

/**
 * One page of `/v1/topics` or `/v1/clients` after `cursor`, with the current page size. A node
 * whose maximum page size is below PAGE refuses it: the page is asked for again with the maximum
 * it names, which every later page of either list uses. The two lists load independently: on
 * such a node both first requests may be refused (one extra request each, once), rather than
 * one list waiting for the other's answer, which may be slow or never come.
 * @param {'topics' | 'clients'} list @param {string} cursor @returns {Promise<any>}
 */
async function listPage(list, cursor) {
  /** @param {number} limit */
  const path = (limit) =>
    `/v1/${list}?${limit > 0 ? `limit=${limit}&` : ''}cursor=${encodeURIComponent(cursor)}`;
  // The size this request asks for: the other list's refusal may change pageSize meanwhile.
  const asked = pageSize;
  try {
    return await api('GET', path(asked));
  } catch (err) {
    const allowed = allowedLimit(err);
    if (allowed === undefined || asked === 0 || (allowed !== 0 && allowed >= asked)) throw err;
    pageSize = allowed;
    return api('GET', path(allowed));
  }
}

let topicCursor = '';
let clientCursor = '';
/** Counts refreshes: a load started before the latest refresh drops its answer (no duplicates). */
let generation = 0;

/** A name that a browser cannot put in a URL path (see segment). */
class UnaddressableName extends Error {}

/**
 * A name as one URL path segment. A browser resolves the segments `.` and `..` (percent-encoded
 * too: `%2E%2E` is `..` to the URL parser) before sending, so `/v1/topics/../rollout` would reach
 * `/v1/rollout`: such a name cannot be addressed from a page at all, and is refused here rather
 * than sent to another resource.
 * @param {string} name
 */
function segment(name) {
  if (name === '.' || name === '..')
    throw new UnaddressableName(
      `the name "${name}" cannot be used in a browser URL; use the API directly`,
    );
  return encodeURIComponent(name);
}

/**
 * Characters that show nothing, or that reorder the text around them (bidirectional controls):
 * in a name or a detail they would make two names look alike, or make `abc<U+202E>gnp.exe` read
 * `abcexe.png`. Controls are here too.
 */
const HIDDEN_CHARS =
  /[\p{Cc}\u00ad\u061c\u115f\u1160\u180e\u200b-\u200f\u2028-\u202e\u2060-\u2064\u2066-\u206f\ufeff]/gu;

/** `U+202E` for a character. @param {string} c */
const codePoint = (c) => `U+${(c.codePointAt(0) ?? 0).toString(16).toUpperCase().padStart(4, '0')}`;

/**
 * `text` with each hidden or reordering character written as `⟨U+XXXX⟩`, for plain-text places
 * (event lines, dialogs, notices).
 * @param {string} text
 */
export function visible(text) {
  return text.replace(HIDDEN_CHARS, (c) => `⟨${codePoint(c)}⟩`);
}

/**
 * Appends `text` to `parent`, with each hidden or reordering character shown as a marked
 * `⟨U+XXXX⟩` (`span.ws`, named in its title) rather than acting.
 * @param {HTMLElement} parent @param {string} text
 */
function appendMarked(parent, text) {
  let at = 0;
  for (const match of text.matchAll(HIDDEN_CHARS)) {
    const index = match.index ?? 0;
    if (index > at) parent.append(text.slice(at, index));
    const span = env.document.createElement('span');
    span.className = 'ws';
    span.title = `invisible or direction character ${codePoint(match[0])}`;
    span.textContent = `⟨${codePoint(match[0])}⟩`;
    parent.append(span);
    at = index + match[0].length;
  }
  if (at < text.length) parent.append(text.slice(at));
}

/**
 * Appends a name to `parent`, as text. Leading and trailing spaces are kept (the CSS of names is
 * `white-space: pre-wrap`) and marked (`span.ws`): ` a` and `a` must not look the same, in a
 * cell or in an event line; so are characters that show nothing or reorder the text (see
 * {@link appendMarked}).
 * @param {HTMLElement} parent @param {string} name
 */
function appendName(parent, name) {
  const [, lead = '', core = name, trail = ''] = /^(\s*)(.*?)(\s*)$/su.exec(name) ?? [];
  /** @param {string} text */
  const spaces = (text) => {
    const span = env.document.createElement('span');
    span.className = 'ws';
    span.title = `${text.length} space character(s)`;
    span.textContent = text;
    return span;
  };
  if (lead !== '') parent.append(spaces(lead));
  appendMarked(parent, core);
  if (trail !== '') parent.append(spaces(trail));
}

/** A name's cell (see {@link appendName}). @param {string} name */
function nameCell(name) {
  const td = env.document.createElement('td');
  td.className = 'name';
  appendName(td, name);
  return td;
}

/**
 * A table row: the name, text cells (textContent only: names come from devices and operators)
 * and an action cell.
 * @param {string} name @param {Array<string | number>} cells @param {HTMLElement} [action]
 */
function row(name, cells, action) {
  const tr = env.document.createElement('tr');
  tr.append(nameCell(name));
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

/**
 * A row with one text across its `span` data columns: a failure to read the data (class
 * `failed`), or a row being loaded.
 * @param {string} name @param {string} text @param {number} span @param {string} className
 * @param {HTMLElement} [action]
 */
function spanRow(name, text, span, className, action) {
  const tr = row(name, [text], action);
  const cell = /** @type {HTMLTableCellElement} */ (tr.children[1]);
  cell.colSpan = span;
  cell.className = className;
  return tr;
}

/**
 * A button running an action; its failure is shown in the banner until an action (this one or
 * another) succeeds: what a load or the stream put there meanwhile stays.
 * @param {string} label @param {() => Promise<void>} run
 */
function button(label, run) {
  const b = env.document.createElement('button');
  b.textContent = label;
  b.className = label.toLowerCase();
  b.addEventListener('click', () => {
    b.disabled = true;
    run()
      .then(() => {
        clearError(actionFailure);
        actionFailure = '';
      })
      .catch((err) => {
        actionFailure = message(err);
        showError(actionFailure);
      })
      .finally(() => {
        b.disabled = false;
      });
  });
  return b;
}

/**
 * Row refreshes, coalesced per row: a row asked for again while its refresh waits joins it; one
 * asked for while its fetch runs is fetched once more afterwards (so what is shown is at least
 * as new as the request); at most ROW_FETCHES fetches run at once. A burst of events about one
 * topic costs a fetch or two, not one per event.
 */
class Refresher {
  /** @param {(key: string) => Promise<void>} fetchRow */
  constructor(fetchRow) {
    this.fetchRow = fetchRow;
    /** @type {Map<string, { queued: boolean, running: boolean, again: boolean }>} */
    this.rows = new Map();
    /** Keys whose wait is over, in order, waiting for a free fetch. @type {string[]} */
    this.ready = [];
    this.running = 0;
    this.stopped = false;
  }

  /** Refreshes `key` after `delay` ms (the events of that time share the fetch). */
  request(/** @type {string} */ key, delay = timing.coalesceMs) {
    if (this.stopped) return;
    let state = this.rows.get(key);
    if (state === undefined) {
      state = { queued: false, running: false, again: false };
      this.rows.set(key, state);
    }
    if (state.running) state.again = true;
    if (state.running || state.queued) return;
    state.queued = true;
    later(() => {
      this.ready.push(key);
      this.pump();
    }, delay);
  }

  pump() {
    while (!this.stopped && this.running < ROW_FETCHES && this.ready.length > 0) {
      const key = /** @type {string} */ (this.ready.shift());
      const state = this.rows.get(key);
      if (state === undefined) continue;
      state.queued = false;
      state.running = true;
      this.running += 1;
      this.fetchRow(key)
        .catch((err) => showError(message(err)))
        .finally(() => {
          this.running -= 1;
          state.running = false;
          if (state.again) {
            state.again = false;
            this.request(key);
          } else this.rows.delete(key);
          this.pump();
        });
    }
  }
}

/** @param {string} name */
const topicKey = (name) => `t${name}`;
/** @param {string} name */
const clientKey = (name) => `c${name}`;

/** @type {Refresher} */
let refresher;

/**
 * The wait before a fetch that failed `failures` times in a row is tried again: it doubles from
 * twice the poll interval, up to MAX_BACKOFF_MS.
 * @param {number} failures
 */
const retryWait = (failures) => Math.min(timing.rowPollMs * 2 ** failures, MAX_BACKOFF_MS);

/**
 * Failed refreshes per topic: the row is tried again after a wait that doubles with each failure.
 * @type {Map<string, { failures: number, until: number }>}
 */
const backoff = new Map();

/**
 * The row of topic `name`, or undefined when the topic is gone (removed since it was listed).
 * Any other failure is shown on the row itself: one topic must not hide the others. A row that
 * is still changing (`data-pending`) or whose fetch failed (`data-retry`) is polled.
 * @param {string} name @returns {Promise<HTMLTableRowElement | undefined>}
 */
async function topicRow(name) {
  let status;
  try {
    status = await api('GET', `/v1/topics/${segment(name)}/rollout`);
  } catch (err) {
    if (err instanceof ApiError && err.status === 404) return undefined;
    const tr = spanRow(name, message(err), 6, 'failed');
    tr.dataset['topic'] = name;
    if (!(err instanceof UnaddressableName)) tr.dataset['retry'] = '';
    return tr;
  }
  const r = status.rollout ?? {};
  const pending = Number(r.pending ?? 0);
  const failed = Number(r.failed ?? 0);
  const tr = row(
    name,
    [status.keyVersion ?? 0, r.members ?? 0, r.delivered ?? 0, r.confirmed ?? 0, pending, failed],
    button('Rotate', async () => {
      if (
        !env.confirm(
          `Rotate the key of topic ${JSON.stringify(visible(name))}? Every member receives a new key.`,
        )
      )
        return;
      await api('POST', `/v1/topics/${segment(name)}/rotate`);
      refresher.request(topicKey(name), 0);
    }),
  );
  tr.dataset['topic'] = name;
  if (pending > 0) tr.dataset['pending'] = String(pending);
  if (failed > 0) tr.dataset['failed'] = String(failed);
  return tr;
}

/** @param {string} id @returns {HTMLTableRowElement[]} */
const rowsOf = (id) => [.../** @type {HTMLTableSectionElement} */ (byId(id)).rows];

/** @param {string} name */
const findTopicRow = (name) => rowsOf('topics').find((tr) => tr.dataset['topic'] === name);

/** @param {string} name */
const findClientRow = (name) => rowsOf('clients').find((tr) => tr.dataset['client'] === name);

/**
 * Fetches the row of a listed topic again; removes it when the topic is gone.
 * @param {string} name
 */
async function refreshTopic(name) {
  if (findTopicRow(name) === undefined) return;
  const gen = generation;
  const tr = await topicRow(name);
  if (gen !== generation) return;
  if (tr?.dataset['retry'] !== undefined) {
    const failures = (backoff.get(name)?.failures ?? 0) + 1;
    backoff.set(name, { failures, until: Date.now() + retryWait(failures) });
  } else backoff.delete(name);
  // Looked up again: a refresh of the whole list may have replaced it meanwhile.
  const current = findTopicRow(name);
  if (tr === undefined) current?.remove();
  else current?.replaceWith(tr);
}

/**
 * Every `rowPollMs`, refreshes the rows on the page whose rollout is still pending (the broker's
 * acceptance and a delivery's failure come with no event naming the topic) or whose fetch failed
 * (after its backoff), and reads again a list whose first page failed (after its backoff). A row
 * that leaves the page is no longer polled; a hidden tab polls nothing.
 */
function pollRows() {
  if (!pageHidden()) {
    const now = Date.now();
    for (const [list, failed] of listRetry)
      if (!failed.running && now >= failed.until) loadFirstPage(list);
    for (const tr of rowsOf('topics')) {
      const name = tr.dataset['topic'];
      const due = tr.dataset['pending'] !== undefined || tr.dataset['retry'] !== undefined;
      if (name !== undefined && due && now >= (backoff.get(name)?.until ?? 0))
        refresher.request(topicKey(name), 0);
    }
  }
  later(pollRows, timing.rowPollMs);
}

/**
 * Puts a row created since the list was loaded in its place: before the first row whose name
 * sorts after it, or last when no page follows. When it sorts after every row and a page follows,
 * that page brings it. Returns whether it was put.
 * @param {string} tbody @param {HTMLTableRowElement} tr @param {string} name
 * @param {'topic' | 'client'} key @param {boolean} more
 */
function insertRow(tbody, tr, name, key, more) {
  const rows = rowsOf(tbody);
  if (rows.some((r) => r.dataset[key] === name)) return false;
  const next = rows.find((r) => (r.dataset[key] ?? '') > name);
  if (next !== undefined) next.before(tr);
  else if (!more) byId(tbody).append(tr);
  else return false;
  return true;
}

/**
 * What a client's row shows: its key version and delivery state, with (once the client itself
 * was fetched) the attempts, the last error and the last command the device rejected (its
 * delivery receipt); or why it could not be read.
 * @typedef {{ keyVersion: string | number, state: string, attempts?: number, error?: string,
 *   rejection?: string } | { failure: string }} ClientContent
 */

/** Delivery states an operator must look at: the row says so (class `state-<state>`). */
const ALARMING_STATES = new Set(['failed', 'unreachable', 'pending']);

/**
 * The delivery cell: the state, the attempts, and the last error and the last rejection each on
 * its own line (marked like names: errors quote names and device messages).
 * @param {{ state: string, attempts?: number, error?: string, rejection?: string }} delivery
 */
function deliveryCell(delivery) {
  const td = env.document.createElement('td');
  const state = delivery.state === '' ? 'idle' : delivery.state;
  if (ALARMING_STATES.has(state)) td.className = `state-${state}`;
  const attempts = delivery.attempts ?? 0;
  td.append(attempts > 0 ? `${state} (${attempts} attempt${attempts === 1 ? '' : 's'})` : state);
  if (delivery.error) {
    const why = env.document.createElement('div');
    why.className = 'why';
    appendMarked(why, delivery.error);
    td.append(why);
  }
  if (delivery.rejection) {
    const rejected = env.document.createElement('div');
    rejected.className = 'why';
    appendMarked(rejected, delivery.rejection);
    td.append(rejected);
  }
  return td;
}

/**
 * The last command a device rejected, as `client show` says it (`SetTopicKey (InvalidKey) at
 * …`), from `GET /v1/clients/{name}`'s delivery; empty when it rejected none.
 * @param {Record<string, any> | undefined} delivery
 */
function lastRejection(delivery) {
  const at = String(delivery?.lastRejectedAt ?? '');
  if (at === '') return '';
  const command = String(delivery?.lastRejectedCommand ?? '') || 'a command';
  const reason = String(delivery?.lastRejectionReason ?? '');
  return `last rejection: ${command}${reason === '' ? '' : ` (${reason})`} at ${at}`;
}

/** @param {string} name */
const unreachableWarning = (name) =>
  `Client ${JSON.stringify(visible(name))} is unreachable: after a restore it holds a key the C2 does not have, so it will refuse what a resync sends, and the resync ends the state that says so. Re-provision it instead (docs/operations.md, Restore). Resync anyway?`;

/**
 * The topics of a client as `client show` lists them: desired, delivered and confirmed key
 * version (confirmed: by the device's delivery receipt; `-` without one), state, and the version
 * traffic monitoring saw the device use (`behind` when that shows a lost command).
 * @param {Array<Record<string, any>>} topics
 */
function clientTopicsTable(topics) {
  const doc = env.document;
  const table = doc.createElement('table');
  table.className = 'client-topics';
  const head = doc.createElement('tr');
  for (const title of ['Topic', 'Desired', 'Delivered', 'Confirmed', 'State', 'Seen using']) {
    const th = doc.createElement('th');
    th.textContent = title;
    head.append(th);
  }
  table.append(head);
  for (const t of topics) {
    const observed = Number(t['observedVersion'] ?? 0);
    const confirmed = Number(t['confirmedVersion'] ?? 0);
    const tr = row(String(t['topic'] ?? ''), [
      Number(t['desiredVersion'] ?? 0),
      Number(t['deliveredVersion'] ?? 0),
      confirmed === 0 ? '-' : confirmed,
      String(t['state'] ?? ''),
      observed === 0
        ? '-'
        : `${observed}${t['observedBehind'] === true ? ' (behind: resync)' : ''}`,
    ]);
    tr.lastElementChild?.remove(); // no action cell
    table.append(tr);
  }
  if (topics.length === 0) {
    const tr = doc.createElement('tr');
    const td = doc.createElement('td');
    td.colSpan = 6;
    td.textContent = 'no topics';
    tr.append(td);
    table.append(tr);
  }
  return table;
}

/** The open topics row under a client's row, if any. @param {string} name */
const findTopicsRow = (name) => rowsOf('clients').find((tr) => tr.dataset['topicsOf'] === name);

/**
 * Shows (or replaces) the topics row under the row of client `name`.
 * @param {string} name @param {Array<Record<string, any>>} topics
 */
function showClientTopics(name, topics) {
  const owner = findClientRow(name);
  if (owner === undefined) return;
  const tr = env.document.createElement('tr');
  tr.dataset['topicsOf'] = name;
  const td = env.document.createElement('td');
  td.colSpan = 4;
  td.append(clientTopicsTable(topics));
  tr.append(td);
  const open = findTopicsRow(name);
  if (open !== undefined) open.replaceWith(tr);
  else owner.after(tr);
}

/**
 * A client's row: key version and delivery state (or why they could not be read), Topics (its
 * topics with their versions, under the row; again to close) and Resync. An unreachable client's
 * Resync asks first.
 * @param {string} name @param {ClientContent} content
 */
function clientRow(name, content) {
  const topics = button('Topics', async () => {
    if (findTopicsRow(name) !== undefined) {
      findTopicsRow(name)?.remove();
      return;
    }
    const client = await api('GET', `/v1/clients/${segment(name)}`);
    showClientTopics(name, client.topics ?? []);
  });
  const unreachable = 'state' in content && content.state === 'unreachable';
  const resync = button('Resync', async () => {
    if (unreachable && !env.confirm(unreachableWarning(name))) return;
    const answer = await api('POST', `/v1/clients/${segment(name)}/resync`);
    /** @type {string[]} */
    const keys = answer?.keysResent ?? [];
    showText(
      'client-notice',
      `resync of ${JSON.stringify(visible(name))} queued; ${keys.length > 0 ? `keys re-sent: ${keys.join(', ')}` : 'nothing re-sent'}`,
    );
    refresher.request(clientKey(name), 0);
  });
  const actions = env.document.createElement('span');
  actions.className = 'actions';
  actions.append(topics, resync);
  /** @type {HTMLTableRowElement} */
  let tr;
  if ('failure' in content) tr = spanRow(name, content.failure, 2, 'failed', actions);
  else {
    tr = row(name, [content.keyVersion], actions);
    tr.insertBefore(deliveryCell(content), tr.lastElementChild);
  }
  tr.dataset['client'] = name;
  return tr;
}

/** Removes the row of client `name` and its open topics row. @param {string} name */
function removeClientRow(name) {
  findTopicsRow(name)?.remove();
  findClientRow(name)?.remove();
}

/**
 * Fetches the row of a listed client again (`GET /v1/clients/{name}`); removes it when the
 * client is gone. A name a browser cannot address keeps its row as listed.
 * @param {string} name
 */
async function refreshClient(name) {
  if (findClientRow(name) === undefined) return;
  const gen = generation;
  /** @type {HTMLTableRowElement | undefined} */
  let tr;
  try {
    const client = await api('GET', `/v1/clients/${segment(name)}`);
    tr = clientRow(name, {
      keyVersion: client.keyVersion ?? 0,
      state: client.delivery?.state ?? '',
      attempts: Number(client.delivery?.attempts ?? 0),
      error: String(client.delivery?.error ?? ''),
      rejection: lastRejection(client.delivery),
    });
    // An open topics row shows the same fetch.
    if (gen === generation && findTopicsRow(name) !== undefined)
      showClientTopics(name, client.topics ?? []);
  } catch (err) {
    if (err instanceof UnaddressableName) return;
    if (!(err instanceof ApiError && err.status === 404))
      tr = clientRow(name, { failure: message(err) });
  }
  if (gen !== generation) return;
  if (tr === undefined) removeClientRow(name);
  else findClientRow(name)?.replaceWith(tr);
}

/** @param {string} key */
function refreshRow(key) {
  const name = key.slice(1);
  return key.startsWith('t') ? refreshTopic(name) : refreshClient(name);
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
    const page = await listPage('topics', topicCursor);
    if (gen !== generation) return;
    // Each topic gets its row at once ("loading…"), filled when its own rollout answers: a slow
    // rollout holds up its row, not the page. A row an event added meanwhile is not doubled.
    /** @type {Promise<void>[]} */
    const fills = [];
    for (const { name } of /** @type {{ name: string }[]} */ (page.topics ?? [])) {
      if (findTopicRow(name) !== undefined) continue;
      const placeholder = spanRow(name, 'loading…', 6, '');
      placeholder.dataset['topic'] = name;
      byId('topics').append(placeholder);
      fills.push(
        topicRow(name).then((tr) => {
          if (gen !== generation) return;
          if (tr === undefined) placeholder.remove();
          else placeholder.replaceWith(tr);
        }),
      );
    }
    topicCursor = page.nextCursor ?? '';
    more.hidden = topicCursor === '';
    await Promise.all(fills);
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
    const page = await listPage('clients', clientCursor);
    if (gen !== generation) return;
    for (const client of page.clients ?? []) {
      if (findClientRow(client.name) !== undefined) continue;
      const state = client.deliveryState ?? '';
      byId('clients').append(clientRow(client.name, { keyVersion: client.keyVersion ?? 0, state }));
      // The list gives the state only: why a client failed comes with the client itself.
      if (state === 'failed' || state === 'unreachable') refresher.request(clientKey(client.name));
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

/**
 * Lists whose first page could not be read (the node was away, its database failing over): each
 * is read again after a wait that doubles (see pollRows), and at once when the node is back.
 * Without this the page stayed empty under a stale error until the token form was sent again.
 * @type {Map<'topics' | 'clients', { failures: number, until: number, running: boolean,
 *   shown: string }>}
 */
const listRetry = new Map();

/**
 * Loads the first page of `list` (emptying it first). A failure is shown in the banner and
 * scheduled again; a later success clears that message (and only that one).
 * @param {'topics' | 'clients'} list
 */
function loadFirstPage(list) {
  const gen = generation;
  const failed = listRetry.get(list);
  if (failed !== undefined) failed.running = true;
  (list === 'topics' ? loadTopics(true) : loadClients(true))
    .then(() => {
      if (gen !== generation) return;
      listRetry.delete(list);
      if (failed !== undefined) clearError(failed.shown);
    })
    .catch((err) => {
      if (gen !== generation) return;
      const failures = (failed?.failures ?? 0) + 1;
      const shown = message(err);
      listRetry.set(list, {
        failures,
        until: Date.now() + retryWait(failures),
        running: false,
        shown,
      });
      showError(shown);
    });
}

/** A health check is running: the 10 s tick does not pile a second one on a node that hangs. */
let checkingHealth = false;

/**
 * Shows `/readyz` in the health badge. A node that accepts the connection and never answers (its
 * process hung) is `no answer` after `callTimeoutMs`: without a limit the badge kept saying
 * `ready` for as long as the node hung.
 */
async function checkHealth() {
  if (checkingHealth) return;
  checkingHealth = true;
  const badge = byId('health');
  try {
    const res = await env.fetch('/readyz', { signal: AbortSignal.timeout(timing.callTimeoutMs) });
    badge.textContent = res.ok ? 'ready' : 'not ready';
    badge.className = `badge ${res.ok ? 'ok' : 'bad'}`;
  } catch (err) {
    badge.textContent =
      /** @type {Error} */ (err)?.name === 'TimeoutError' ? 'no answer' : 'unreachable';
    badge.className = 'badge bad';
  } finally {
    checkingHealth = false;
  }
}

/** Whether the token may read the restore status (a refusal stops asking until the next token). */
let watchRestore = true;

/**
 * Shows a banner while a restored database awaits its reconciliation (`GET
 * /v1/admin/restore-status`): nothing is delivered until then. A token that may not read it
 * (401, 403) or a node without it (404) shows nothing; another failure leaves the banner as it is.
 */
async function checkRestore() {
  const gen = generation;
  /** @type {{ pending?: boolean, restoredPosition?: string }} */
  let status;
  try {
    status = await api('GET', '/v1/admin/restore-status');
  } catch (err) {
    if (gen !== generation) return;
    if (err instanceof ApiError && [401, 403, 404].includes(err.status)) {
      watchRestore = false;
      showText('restore', '');
    }
    return;
  }
  if (gen !== generation) return;
  const position = status.restoredPosition
    ? ` (restored event position ${status.restoredPosition})`
    : '';
  showText(
    'restore',
    status.pending === true
      ? `Restore pending${position}: deliveries are paused until restore-reconcile runs: see docs/operations.md, Restore.`
      : '',
  );
}

function pollRestore() {
  if (watchRestore && !pageHidden()) void checkRestore();
  later(pollRestore, timing.restorePollMs);
}

/**
 * A compact, one-line form of an event's details (`keysResent=identity,c2 attempts=5`); values
 * with spaces, or empty, are quoted. Cut at MAX_DETAILS characters.
 * @param {unknown} details
 */
function compactDetails(details) {
  if (details === null || typeof details !== 'object') return '';
  /** @param {unknown} value @returns {string} */
  const compact = (value) => {
    if (Array.isArray(value)) return value.length > 0 ? value.map(compact).join(',') : '""';
    if (value !== null && typeof value === 'object') return JSON.stringify(value);
    const text = String(value);
    return text === '' || /[\s"=]/.test(text) ? JSON.stringify(text) : text;
  };
  const text = Object.entries(details)
    .map(([key, value]) => `${key}=${compact(value)}`)
    .join(' ');
  return text.length > MAX_DETAILS ? `${text.slice(0, MAX_DETAILS - 1)}…` : text;
}

/**
 * @typedef {{ seq: string, at: string, type: string, client?: string, topic?: string,
 *   keyVersion?: number, details?: unknown }} ConsoleEvent
 */

/**
 * One event line. Names and details come from devices and operators: each is its own `<bdi>`
 * (a right-to-left name cannot carry the version or the next name along) with its hidden and
 * direction characters shown (see {@link appendMarked}), and a name's leading and trailing
 * spaces marked as in its cell (see {@link appendName}).
 * @param {ConsoleEvent} e
 */
function showEvent(e) {
  const li = env.document.createElement('li');
  /** @param {string} text @param {(parent: HTMLElement, text: string) => void} append */
  const isolated = (text, append) => {
    const bdi = env.document.createElement('bdi');
    append(bdi, text);
    return bdi;
  };
  li.append(`#${e.seq} ${e.at} ${e.type} `);
  const names = [e.topic, e.client].filter((n) => typeof n === 'string' && n !== '');
  for (const [i, name] of names.entries()) {
    if (i > 0) li.append(' ');
    li.append(isolated(String(name), appendName));
  }
  if (e.keyVersion) li.append(` v${e.keyVersion}`);
  const details = compactDetails(e.details);
  if (details) li.append(' (', isolated(details, appendMarked), ')');
  const list = byId('events');
  list.prepend(li);
  while (list.children.length > MAX_EVENTS) list.lastElementChild?.remove();
}

/**
 * What an event changes on the page. A topic's row is refreshed on any event naming the topic
 * (members come and go with client.subscribed and client.unsubscribed), a client's on any event
 * naming the client; created topics and clients get a row, removed ones lose it. An event about a
 * device's delivery that names no topic (delivery.failed, client.resync, …) may change the
 * counts of the rows still pending or failed: those are refreshed.
 * @param {ConsoleEvent} e
 */
function applyEvent(e) {
  const { type, topic, client } = e;
  if (topic) {
    if (type === 'topic.removed') findTopicRow(topic)?.remove();
    else if (type === 'topic.created' && findTopicRow(topic) === undefined) {
      const tr = spanRow(topic, 'loading…', 6, '');
      tr.dataset['topic'] = topic;
      if (insertRow('topics', tr, topic, 'topic', topicCursor !== ''))
        refresher.request(topicKey(topic), 0);
    } else if (findTopicRow(topic) !== undefined) refresher.request(topicKey(topic));
  }
  if (client) {
    if (type === 'client.removed') removeClientRow(client);
    else if (type === 'client.created' && findClientRow(client) === undefined) {
      const tr = clientRow(client, { keyVersion: e.keyVersion ?? 0, state: '…' });
      if (insertRow('clients', tr, client, 'client', clientCursor !== ''))
        refresher.request(clientKey(client), 0);
    } else if (findClientRow(client) !== undefined) refresher.request(clientKey(client));
    if (!topic)
      for (const tr of rowsOf('topics')) {
        const name = tr.dataset['topic'];
        if (name !== undefined && (tr.dataset['pending'] ?? tr.dataset['failed']) !== undefined)
          refresher.request(topicKey(name));
      }
  }
}

/**
 * The stream is live again after a failure: the node is back, so rows and lists whose fetch
 * failed meanwhile are fetched now rather than after their backoff (up to a minute), and the
 * health badge is checked now rather than at its next 10 s tick.
 */
function nodeBack() {
  backoff.clear();
  void checkHealth();
  for (const [list, failed] of listRetry) if (!failed.running) loadFirstPage(list);
  for (const tr of rowsOf('topics')) {
    const name = tr.dataset['topic'];
    if (name !== undefined && tr.dataset['retry'] !== undefined)
      refresher.request(topicKey(name), 0);
  }
}

/** @type {AbortController | undefined} */
let streamControl;

/**
 * Calls `onIdle` once `ms` pass without a `reset`. Started at once: connecting counts too.
 * @param {number} ms @param {() => void} onIdle
 */
function watchdog(ms, onIdle) {
  /** @type {ReturnType<typeof setTimeout> | undefined} */
  let timer;
  const reset = () => {
    clearTimeout(timer);
    timer = setTimeout(onIdle, ms);
  };
  reset();
  return { reset, stop: () => clearTimeout(timer) };
}

/**
 * Follows `/v1/events/stream`, reconnecting with Last-Event-ID so no event is missed or shown
 * twice across a disconnect. The position is the parser's last id, which the server's opening
 * frame sets too (`id:` without data): a connection that drops before its first event resumes
 * where it started, not at the end. A connection silent for `streamIdleMs` (the node sends a
 * heartbeat every 15 s) is dropped and made again: a node that hangs, or a path that dies
 * without closing the connection, would otherwise leave the stream `live` and empty for ever.
 */
async function followEvents() {
  streamControl?.abort();
  const control = new AbortController();
  streamControl = control;
  const badge = byId('stream');
  /** @type {string | undefined} */
  let lastId;
  let delay = 2000;
  /** Whether the stream was live before: a reconnection means the node may have been away. */
  let wasLive = false;
  while (!control.signal.aborted) {
    const connection = new AbortController();
    const stop = () => connection.abort();
    control.signal.addEventListener('abort', stop);
    let silent = false;
    const idle = watchdog(timing.streamIdleMs, () => {
      silent = true;
      connection.abort();
    });
    try {
      /** @type {Record<string, string>} */
      const headers = { accept: 'text/event-stream', ...authHeaders() };
      if (lastId !== undefined) headers['last-event-id'] = lastId;
      const res = await env.fetch('/v1/events/stream', { headers, signal: connection.signal });
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
      showText('stream-error', '');
      if (wasLive) nodeBack();
      wasLive = true;
      const parser = new SseParser();
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        idle.reset();
        for (const event of parser.push(value)) {
          // Before showing it: an event the console cannot show is not asked for again.
          lastId = event.id ?? lastId;
          /** @type {ConsoleEvent} */
          const record = JSON.parse(event.data);
          showEvent(record);
          applyEvent(record);
        }
        lastId = parser.lastEventId ?? lastId; // also set by an id without data
        delay = parser.retryMs ?? delay;
      }
    } catch (err) {
      if (control.signal.aborted) return;
      const why = silent
        ? `no data from the node for ${timing.streamIdleMs / 1000} s (it sends a heartbeat every 15 s)`
        : message(networkError(err));
      // Beside the stream's badge, not in the banner: the banner keeps what an action or a load
      // reported (a Resync's failure is not overwritten by the stream's retries).
      showText('stream-error', `event stream: ${why}`);
      wasLive = true;
    } finally {
      idle.stop();
      control.signal.removeEventListener('abort', stop);
    }
    badge.textContent = 'reconnecting';
    badge.className = 'badge bad';
    await new Promise((resolve) => setTimeout(resolve, delay));
  }
}

function refresh() {
  generation += 1;
  showError('');
  actionFailure = '';
  showText('client-notice', '');
  backoff.clear();
  watchRestore = true;
  void checkHealth();
  void checkRestore();
  listRetry.clear();
  loadFirstPage('topics');
  loadFirstPage('clients');
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
 * Starts the console on `environment`: loads the lists, follows the events, checks health and
 * the restore status, polls the rows still pending.
 * @param {ConsoleEnvironment} environment
 * @returns {() => void} stops the event stream, the timers and the loads
 */
export function startConsole(environment) {
  env = environment;
  timing = { ...DEFAULT_TIMING, ...environment.timing };
  pageSize = PAGE;
  const own = new Refresher(refreshRow);
  refresher = own;
  byId('auth').addEventListener('submit', (event) => {
    event.preventDefault();
    const token = /** @type {HTMLInputElement} */ (byId('token')).value.trim();
    if (token) env.storage.setItem(TOKEN, token);
    else env.storage.removeItem(TOKEN);
    showTokenState();
    refresh();
  });
  // The banner's Dismiss: a failure nothing will clear (a Rotate a read-only token may not do)
  // need not stay in the way.
  byId('error-close').addEventListener('click', () => showError(''));
  byId('more-topics').addEventListener('click', () => run(() => loadTopics()));
  byId('more-clients').addEventListener('click', () => run(() => loadClients()));
  // Back in the foreground: what was not polled meanwhile is checked at once.
  const shown = () => {
    if (pageHidden()) return;
    if (watchRestore) void checkRestore();
    for (const tr of rowsOf('topics'))
      if (tr.dataset['pending'] !== undefined && tr.dataset['topic'] !== undefined)
        own.request(topicKey(tr.dataset['topic']), 0);
  };
  env.document.addEventListener('visibilitychange', shown);
  const health = setInterval(() => void checkHealth(), 10_000);
  showTokenState();
  refresh();
  later(pollRows, timing.rowPollMs);
  later(pollRestore, timing.restorePollMs);
  return () => {
    clearInterval(health);
    for (const timer of timers) clearTimeout(timer);
    timers.clear();
    own.stopped = true;
    env.document.removeEventListener('visibilitychange', shown);
    streamControl?.abort();
    generation += 1; // loads still running drop their answers
  };
}
