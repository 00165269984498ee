// @ts-check
/**
 * A server-sent-events parser for streams read with fetch(): EventSource cannot send an
 * Authorization header, and the console authenticates with a bearer token.
 * Follows the HTML "event stream interpretation" rules for the fields the C2 sends
 * (id, event, data, retry; comment lines ignored; CRLF, CR or LF line ends).
 */

/**
 * @typedef {{ id: string | undefined, event: string, data: string }} SseEvent
 */

/** Incremental parser: feed it text chunks, get whole events back. */
export class SseParser {
  /** @type {string} */ #buffer = '';
  /** @type {string[]} */ #data = [];
  /** @type {string} */ #event = '';
  /** @type {string | undefined} */ #id = undefined;
  /** The last id seen (what a reconnect sends as Last-Event-ID). @type {string | undefined} */
  lastEventId = undefined;
  /** The reconnection delay the server asked for, in ms. @type {number | undefined} */
  retryMs = undefined;

  /**
   * @param {string} chunk - text as it arrived (may split lines anywhere)
   * @returns {SseEvent[]} the events completed by this chunk
   */
  push(chunk) {
    this.#buffer += chunk;
    /** @type {SseEvent[]} */
    const events = [];
    for (;;) {
      const match = /\r\n|\r|\n/.exec(this.#buffer);
      if (match === null) break;
      // A lone CR at the very end may be the first half of CRLF: wait for more.
      if (match[0] === '\r' && match.index === this.#buffer.length - 1) break;
      const line = this.#buffer.slice(0, match.index);
      this.#buffer = this.#buffer.slice(match.index + match[0].length);
      const event = this.#line(line);
      if (event !== undefined) events.push(event);
    }
    return events;
  }

  /** @param {string} line @returns {SseEvent | undefined} */
  #line(line) {
    if (line === '') return this.#dispatch();
    if (line.startsWith(':')) return undefined;
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'data') this.#data.push(value);
    else if (field === 'event') this.#event = value;
    else if (field === 'id' && !value.includes('\0')) this.#id = value;
    else if (field === 'retry' && /^\d+$/.test(value)) this.retryMs = Number(value);
    return undefined;
  }

  /** @returns {SseEvent | undefined} */
  #dispatch() {
    if (this.#id !== undefined) this.lastEventId = this.#id;
    if (this.#data.length === 0) {
      this.#event = '';
      return undefined;
    }
    const event = {
      id: this.lastEventId,
      event: this.#event || 'message',
      data: this.#data.join('\n'),
    };
    this.#data = [];
    this.#event = '';
    return event;
  }
}
