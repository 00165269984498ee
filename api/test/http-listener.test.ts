/**
 * The HTTP/2 listener's idle connections, on real TLS connections with short timers: one whose
 * client reads is asked to go (GOAWAY) and closes, its open streams first; one whose client
 * stopped reading, and so never takes the GOAWAY, is cut after the grace instead of staying
 * until the node stops.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { rm } from 'node:fs/promises';
import type { Server } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { eventually, pendingAfter } from '../../cluster/test/support/eventually.ts';
import { createListener, type HttpListener } from '../http/http-listener.ts';
import { Http2TestClient } from './support/http2-client.ts';
import { nodeCertificate, type NodeCertificate } from './support/node-certificate.ts';
import { STALLED_WINDOW_BYTES, stallableRelay, stalledStream } from './support/stallable-relay.ts';

const IDLE_MS = 300;
const GRACE_MS = 300;
/** Far more than loopback's TCP buffers hold, and less than the window: the TCP connection stalls. */
const LARGE_BODY_BYTES = STALLED_WINDOW_BYTES / 2;
/** What a loaded machine may add to the timers. */
const SLACK_MS = 5000;

/** The node's open TCP connections. */
function connections(server: Server): Promise<number> {
  return new Promise((resolve, reject) => {
    server.getConnections((err, count) => {
      if (err) reject(err);
      else resolve(count);
    });
  });
}

void describe('an idle HTTP/2 connection', { timeout: 30_000 }, () => {
  let tls: NodeCertificate;
  let served: HttpListener;
  let port = 0;
  before(async () => {
    tls = await nodeCertificate();
    served = createListener(
      { cert: Buffer.from(tls.cert), key: Buffer.from(tls.key) },
      (req, res) => {
        // `/held`: a request whose body never comes, never answered.
        if (req.url !== '/held')
          res.end(req.url === '/large' ? Buffer.alloc(LARGE_BODY_BYTES) : 'ok');
      },
      { http2IdleTimeoutMs: IDLE_MS, http2CloseGraceMs: GRACE_MS },
    );
    served.server.listen(0, '127.0.0.1');
    await once(served.server, 'listening');
    port = (served.server.address() as { port: number }).port;
  });
  after(async () => {
    served.closeAll();
    await served.stop();
    await rm(tls.dir, { recursive: true, force: true });
  });

  void it('is asked to go (GOAWAY) and closes with its client', async () => {
    const client = new Http2TestClient(port, tls.cert);
    try {
      await client.connected;
      assert.equal((await client.request('GET', '/')).text, 'ok');
      assert.equal(await pendingAfter(client.goaway, IDLE_MS + SLACK_MS), false, 'GOAWAY');
      await eventually(async () => {
        assert.equal(await connections(served.server), 0);
      }, SLACK_MS);
    } finally {
      client.close();
    }
  });

  void it('is cut after the grace when its client stopped reading', async () => {
    const relay = await stallableRelay(port);
    const client = new Http2TestClient(relay.port, tls.cert);
    try {
      await client.connected;
      await stalledStream(client.session, relay, '/large');
      assert.equal(await connections(served.server), 1);
      const started = Date.now();
      await eventually(
        async () => {
          assert.equal(await connections(served.server), 0, 'the node closed the connection');
        },
        IDLE_MS + GRACE_MS + SLACK_MS,
      );
      const elapsed = Date.now() - started;
      assert.ok(elapsed >= GRACE_MS, `cut after ${elapsed} ms, not before the grace`);
    } finally {
      client.close();
      relay.close();
    }
  });

  void it('keeps its open streams past the grace while its client reads', async () => {
    const client = new Http2TestClient(port, tls.cert);
    try {
      await client.connected;
      const held = client.session.request({ ':method': 'POST', ':path': '/held' });
      held.on('error', () => {
        // Closed by the test.
      });
      held.write('{"partial":');
      assert.equal(await pendingAfter(client.goaway, IDLE_MS + SLACK_MS), false, 'GOAWAY');
      await new Promise((resolve) => setTimeout(resolve, 2 * GRACE_MS));
      assert.equal(await connections(served.server), 1, 'the connection serves its stream on');
      held.close();
      await eventually(async () => {
        assert.equal(await connections(served.server), 0, 'closed once its stream ended');
      }, SLACK_MS);
    } finally {
      client.close();
    }
  });
});
