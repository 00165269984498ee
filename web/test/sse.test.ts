/** The console's server-sent-events parser. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { SseParser, type SseEvent } from '../sse.js';

const STREAM =
  'retry: 2000\n\n: heartbeat\n\nid: 1\nevent: topic.rotated\ndata: {"seq":"1"}\n\n' +
  'id: 2\r\nevent: client.created\r\ndata: line one\r\ndata: line two\r\n\r\n' +
  'data: no id or type\r\r\n';

const EXPECTED: SseEvent[] = [
  { id: '1', event: 'topic.rotated', data: '{"seq":"1"}' },
  { id: '2', event: 'client.created', data: 'line one\nline two' },
  { id: '2', event: 'message', data: 'no id or type' },
];

void describe('SseParser', () => {
  void it('parses ids, types, multi-line data, comments and retry with LF, CRLF and CR', () => {
    const parser = new SseParser();
    assert.deepEqual(parser.push(STREAM), EXPECTED);
    assert.equal(parser.retryMs, 2000);
    assert.equal(parser.lastEventId, '2');
  });

  void it('gives the same events however the stream is cut into chunks', () => {
    fc.assert(
      fc.property(fc.uniqueArray(fc.integer({ min: 1, max: STREAM.length - 1 })), (cuts) => {
        const parser = new SseParser();
        const points = [0, ...cuts.sort((a, b) => a - b), STREAM.length];
        const events = points
          .slice(1)
          .flatMap((end, i) => parser.push(STREAM.slice(points[i] ?? 0, end)));
        assert.deepEqual(events, EXPECTED);
      }),
    );
  });

  void it('holds an unfinished event until its blank line', () => {
    const parser = new SseParser();
    assert.deepEqual(parser.push('id: 7\ndata: x\n'), []);
    assert.deepEqual(parser.push('\n'), [{ id: '7', event: 'message', data: 'x' }]);
  });

  void it('takes an id without data as the position, dispatching nothing', () => {
    // The server's opening frame: a reconnect before any event resumes from there.
    const parser = new SseParser();
    assert.deepEqual(parser.push('retry: 2000\nid: 40\n: stream after 40\n\n'), []);
    assert.equal(parser.lastEventId, '40');
  });

  void it('survives arbitrary text without throwing', () => {
    fc.assert(
      fc.property(fc.string(), (text) => {
        const events = new SseParser().push(text);
        assert.ok(Array.isArray(events));
      }),
    );
  });
});
