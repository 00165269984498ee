/**
 * An mqtt-packet parser that refuses ill-formed UTF-8 strings.
 *
 * mqtt-packet decodes every string of a packet (topic, client id, user name, will topic,
 * properties) with `Buffer#toString`, which replaces bytes that are not UTF-8 with U+FFFD: a
 * PUBLISH to the bytes `a/\xff` would reach the policy and the broker as `a/\uFFFD`, a topic the
 * client never named. MQTT (3.1.1 §1.5.3, 5 §1.5.4) says a receiver of ill-formed UTF-8 closes
 * the network connection, so this parser checks the bytes of every string it decodes and turns an
 * ill-formed one into the parser's `error` event, which closes the connection like any other
 * malformed packet.
 */
import mqttPacket from 'mqtt-packet';

type Parser = ReturnType<typeof mqttPacket.parser>;

/** The parser internals the check relies on (mqtt-packet 9's `parser.js`). */
interface ParserInternals {
  _parseString: (this: ParserInternals) => string | null;
  _pos: number;
  _list: { slice: (start: number, end: number) => Buffer };
  _emitError: (err: Error) => void;
}

const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

/** True when `bytes` are well-formed UTF-8. */
function isWellFormed(bytes: Buffer): boolean {
  try {
    strictUtf8.decode(bytes);
    return true;
  } catch {
    return false;
  }
}

/**
 * A parser for `protocolVersion` whose strings must be well-formed UTF-8.
 *
 * @throws Error when the installed mqtt-packet no longer has the internals the check wraps (a
 *   dependency upgrade must not silently turn the check off).
 */
export function strictUtf8Parser(protocolVersion: 4 | 5): Parser {
  const parser = mqttPacket.parser({ protocolVersion });
  const internals = parser as unknown as ParserInternals;
  const decode = internals._parseString;
  if (typeof decode !== 'function' || typeof internals._emitError !== 'function') {
    throw new Error('mqtt-packet parser internals changed: cannot check UTF-8 strings');
  }
  internals._parseString = function strictParseString(this: ParserInternals) {
    const start = this._pos;
    const result = decode.call(this);
    // Buffer#toString turns ill-formed bytes into U+FFFD, so only then are the bytes read again
    // (a well-formed string may contain U+FFFD itself: the bytes decide).
    if (result === null || !result.includes('\uFFFD')) return result;
    // The string's bytes follow its two-byte length.
    if (isWellFormed(this._list.slice(start + 2, this._pos))) return result;
    this._emitError(new Error('string is not well-formed UTF-8'));
    return null;
  };
  return parser;
}
