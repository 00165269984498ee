/**
 * The event stream's slow-consumer limit on real TLS connections (the handler's logic on fakes
 * is in events-sse.test.ts): over HTTP/2, a stream whose client stops reading (its flow-control
 * window closes) and a connection that stops reading altogether; over HTTP/1.1 on the same port,
 * a socket that stops reading. Each is dropped within a bound, logged as `slow consumer`, and
 * over HTTP/2 only its stream is reset: the connection's other streams go on.
 */
import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import { constants as http2Constants, type ClientHttp2Stream } from 'node:http2';
import { connect as tlsConnect } from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { eventually, pendingAfter } from '../../cluster/test/support/eventually.ts';
import { startApi, type ApiHarness } from './support/api-harness.ts';
import { Http2TestClient } from './support/http2-client.ts';
import { nodeCertificate, type NodeCertificate } from './support/node-certificate.ts';
import { STALLED_WINDOW_BYTES, stallableRelay, stalledStream } from './support/stallable-relay.ts';

/** Bytes of padding in each event's details: every SSE frame is at least this long. */
const PADDING = 2000;
/** Events in the journal: some 17 MB of frames, more than loopback's TCP buffers hold. */
const EVENTS = 8000;
/** The node's limits: small, so that a stuck client is found quickly. */
const MAX_BUFFERED_BYTES = 16 * 1024;
const SLOW_CONSUMER_MS = 500;
const HEARTBEAT_MS = 100;
/** How long a stuck client may take to be dropped: the limit plus room for a loaded machine. */
const DROP_BOUND_MS = SLOW_CONSUMER_MS + 5000;

/** The `event stream closed` line of a slow consumer, once there is one more than `before`. */
async function slowConsumerDrop(
  a: ApiHarness,
  before: number,
): Promise<{ position: number; afterMs: number }> {
  const started = Date.now();
  const drops = (): { obj: Record<string, unknown> }[] =>
    a.log.lines.filter(
      (l) => l.msg === 'event stream closed' && l.obj['reason'] === 'slow consumer',
    );
  const line = await eventually(() => {
    const found = drops()[before];
    assert.ok(found !== undefined, 'the slow consumer is dropped');
    return found;
  }, DROP_BOUND_MS);
  return { position: Number(line.obj['position']), afterMs: Date.now() - started };
}

/** How many slow consumers were dropped so far. */
function dropsSoFar(a: ApiHarness): number {
  return a.log.lines.filter((l) => l.obj['reason'] === 'slow consumer').length;
}

/** Resolves with the stream's RST_STREAM code once it closed (it may be paused). */
function resetCode(stream: ClientHttp2Stream): Promise<number> {
  return eventually(() => {
    assert.ok(stream.closed, 'the stream is closed');
    return stream.rstCode;
  }, DROP_BOUND_MS);
}

void describe('an event-stream client that stops reading, over TLS', { timeout: 60_000 }, () => {
  let tls: NodeCertificate;
  let a: ApiHarness;
  let port = 0;
  before(async () => {
    tls = await nodeCertificate();
    a = await startApi({
      api: {
        tls: { cert: tls.cert, key: tls.key },
        eventStream: {
          maxBufferedBytes: MAX_BUFFERED_BYTES,
          slowConsumerMs: SLOW_CONSUMER_MS,
          heartbeatMs: HEARTBEAT_MS,
        },
      },
    });
    port = a.api.httpAddress.port;
    await a.h.schema.pool.query(
      `INSERT INTO events (type, topic, details)
       SELECT 'topic.created', 'slow-' || g, jsonb_build_object('padding', repeat('x', $1::int))
       FROM generate_series(1, $2::int) g`,
      [PADDING, EVENTS],
    );
  });
  after(async () => {
    await a.close();
    await rm(tls.dir, { recursive: true, force: true });
  });

  void it('HTTP/2: resets only the stuck stream (CANCEL); the connection serves on', async () => {
    const client = new Http2TestClient(port, tls.cert);
    try {
      await client.connected;
      const drops = dropsSoFar(a);
      const stuck = client.session.request({ ':path': '/v1/events/stream?after=0' });
      // Paused before any data: nothing is read, so the client grants no more window.
      stuck.pause();
      stuck.on('error', () => {
        // The reset surfaces here once read; asserted through rstCode.
      });
      stuck.end();
      await eventually(() => {
        assert.equal(stuck.state.localWindowSize, 0, 'the client gives the node no more credit');
      });
      const { position, afterMs } = await slowConsumerDrop(a, drops);
      assert.ok(afterMs < DROP_BOUND_MS, `dropped after ${afterMs} ms`);
      // The node wrote `position` frames of over PADDING bytes; the window let 64 KiB through.
      assert.ok(
        position * PADDING > 4 * 65_535,
        `the node held what the window refused (${position} events written)`,
      );
      assert.equal(
        await resetCode(stuck),
        http2Constants.NGHTTP2_CANCEL,
        'reset as cancelled, not ended as if complete',
      );
      // The same connection: a request, and a stream that follows the journal from its end.
      assert.equal(client.session.closed, false);
      assert.equal((await client.request('GET', '/healthz')).status, 200);
      const live = client.events({ 'last-event-id': String(EVENTS) });
      assert.equal((await live.response)[':status'], 200);
      await eventually(() => {
        assert.match(live.text(), /^: heartbeat$/m, 'heartbeats flow on a stream that reads');
      });
      live.stream.close();
      await live.ended;
      assert.equal(dropsSoFar(a), drops + 1, 'the reading stream is not a slow consumer');
    } finally {
      client.close();
    }
  });

  void it('HTTP/2: drops the stream of a connection that stops reading altogether', async () => {
    const relay = await stallableRelay(port);
    const client = new Http2TestClient(relay.port, tls.cert);
    try {
      await client.connected;
      const drops = dropsSoFar(a);
      const stream = await stalledStream(client.session, relay, '/v1/events/stream?after=0');
      const { afterMs } = await slowConsumerDrop(a, drops);
      assert.ok(afterMs < DROP_BOUND_MS, `dropped after ${afterMs} ms`);
      assert.ok(
        (stream.state.localWindowSize ?? 0) > STALLED_WINDOW_BYTES / 2,
        'flow control would still have let megabytes through',
      );
      // The connection reads again: what was in flight arrives, then the reset, and the
      // connection serves on.
      relay.resume();
      assert.equal(await resetCode(stream), http2Constants.NGHTTP2_CANCEL);
      assert.equal((await client.request('GET', '/healthz')).status, 200);
    } finally {
      client.close();
      relay.close();
    }
  });

  void it('HTTP/1.1: drops a connection that stops reading', async () => {
    const drops = dropsSoFar(a);
    const socket = tlsConnect({ host: '127.0.0.1', port, ca: tls.cert, servername: 'localhost' });
    try {
      await new Promise((resolve) => socket.once('secureConnect', resolve));
      assert.equal(socket.alpnProtocol, false, 'no ALPN offered: HTTP/1.1');
      socket.write('GET /v1/events/stream?after=0 HTTP/1.1\r\nHost: localhost\r\n\r\n');
      socket.pause();
      const { position, afterMs } = await slowConsumerDrop(a, drops);
      assert.ok(afterMs < DROP_BOUND_MS, `dropped after ${afterMs} ms`);
      // Read what reached this end: the node closed the connection partway through.
      let text = '';
      const closed = new Promise<void>((resolve) => {
        socket.once('close', () => {
          resolve();
        });
      });
      socket.on('error', () => {
        // A reset connection is a dropped one too.
      });
      socket.setEncoding('utf8');
      socket.on('data', (chunk: string) => (text += chunk));
      socket.resume();
      assert.equal(await pendingAfter(closed, DROP_BOUND_MS), false, 'the connection is closed');
      const received = text.match(/^id: \d+\nevent: /gm)?.length ?? 0;
      assert.ok(received < position, `${received} of the ${position} events written arrived`);
      assert.ok(!text.endsWith('0\r\n\r\n'), 'the response was cut, not ended');
    } finally {
      socket.destroy();
    }
  });

  void it('leaves nothing behind: no failure logged, and the node shuts down at once', async () => {
    assert.deepEqual(
      a.log.lines.filter((l) => l.level === 'error' || l.level === 'warn'),
      [],
    );
    const started = Date.now();
    await a.api.close(10_000);
    const elapsed = Date.now() - started;
    // The node waits for every open response: one of a dropped stream would hold it to the bound.
    assert.ok(elapsed < 5000, `closed after ${elapsed} ms`);
  });
});
