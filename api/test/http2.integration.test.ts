/**
 * HTTP/2 over TLS (ALPN), next to HTTP/1.1 on the same port: many requests and event streams on
 * one connection (a browser's console tabs), the host guard and the cross-site check reading
 * `:authority`, mutual TLS, and a shutdown that sends GOAWAY and ends the streams in time.
 */
import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import { connect as tlsConnect } from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { eventually, pendingAfter } from '../../cluster/test/support/eventually.ts';
import { httpCall, startApi, type ApiHarness } from './support/api-harness.ts';
import { createTestClientCa, type TestClientCa } from './support/client-ca.ts';
import { Http2TestClient } from './support/http2-client.ts';
import { startMutualTlsApi } from './support/mutual-tls-api.ts';
import { nodeCertificate } from './support/node-certificate.ts';

/** Process warnings while `run` runs (Node warns when it drops a header HTTP/2 forbids). */
async function warningsDuring(run: () => Promise<void>): Promise<string[]> {
  const seen: string[] = [];
  const record = (warning: Error): void => {
    seen.push(`${warning.name}: ${warning.message}`);
  };
  process.on('warning', record);
  try {
    await run();
    // Warnings are emitted on the next tick.
    await new Promise((r) => setImmediate(r));
  } finally {
    process.off('warning', record);
  }
  return seen;
}

/** The tests' wait for a request body: long enough for a loaded machine, short for a test. */
const BODY_TIMEOUT_MS = 1500;

void describe('HTTP/2 over TLS', () => {
  let tls: Awaited<ReturnType<typeof nodeCertificate>>;
  let a: ApiHarness;
  let port = 0;
  let client: Http2TestClient;
  before(async () => {
    tls = await nodeCertificate();
    a = await startApi({
      api: {
        tls: { cert: tls.cert, key: tls.key },
        allowedHosts: ['c2.example.com'],
        maxBodyBytes: 1024,
        httpBodyTimeoutMs: BODY_TIMEOUT_MS,
      },
    });
    port = a.api.httpAddress.port;
    client = new Http2TestClient(port, tls.cert);
    await client.connected;
  });
  after(async () => {
    client.close();
    await a.close();
    await rm(tls.dir, { recursive: true, force: true });
  });

  void it('is negotiated by ALPN; HTTP/1.1 clients still get HTTP/1.1 on the same port', async () => {
    assert.equal(client.session.alpnProtocol, 'h2');
    const res = await client.request('GET', '/e4/health-check');
    assert.equal(res.status, 200);
    assert.equal(res.text, '{"Code":"0","Status":"OK"}');
    assert.match(String(res.headers['x-request-id']), /^[0-9a-f-]{36}$/);
    assert.equal(res.headers['x-content-type-options'], 'nosniff');
    const http1 = await httpCall(port, 'GET', '/e4/health-check', { ca: tls.cert });
    assert.equal(http1.status, 200);
    assert.equal(http1.text, res.text);
  });

  void it('carries ten event streams and concurrent requests on one connection', async () => {
    const warnings = await warningsDuring(async () => {
      const streams = Array.from({ length: 10 }, () => client.events());
      for (const s of streams) {
        const headers = await s.response;
        assert.equal(headers[':status'], 200);
        assert.match(String(headers['content-type']), /^text\/event-stream/);
        assert.equal(headers['connection'], undefined);
      }
      await eventually(() => {
        for (const s of streams) assert.match(s.text(), /^retry: /);
      });
      // Requests go on next to the streams, on the same connection and over HTTP/1.1.
      const answers = await Promise.all([
        ...Array.from({ length: 5 }, (_, i) =>
          client.request('POST', `/e4/topic/h2-topic-${i}`, { body: '' }),
        ),
        client.request('GET', '/v1/topics'),
        client.request('HEAD', '/healthz'),
      ]);
      for (const res of answers) assert.equal(res.status, 200, res.text);
      assert.equal(answers.at(-1)?.text, '', 'HEAD has no body');
      const http1 = await httpCall(port, 'GET', '/e4/topics/count', { ca: tls.cert });
      assert.equal(http1.status, 200, http1.text);
      // Each event is flushed to every stream as it happens.
      await eventually(() => {
        for (const s of streams)
          assert.equal(s.text().match(/^event: topic\.created$/gm)?.length, 5);
      });
      for (const s of streams) s.stream.close();
      await Promise.all(streams.map((s) => s.ended));
    });
    assert.deepEqual(warnings, [], 'no header HTTP/2 forbids was written');
    assert.equal(client.session.closed, false, 'all of it on the one connection');
  });

  void it('answers 405 with allow, 404, and 413 for a body over the limit', async () => {
    const wrongMethod = await client.request('DELETE', '/v1/topics');
    assert.equal(wrongMethod.status, 405, wrongMethod.text);
    assert.ok(String(wrongMethod.headers['allow']).includes('GET'));
    assert.equal((await client.request('GET', '/v1/nothing-here')).status, 404);
    const warnings = await warningsDuring(async () => {
      const tooLarge = await client.request('POST', '/e4/topic/big', {
        body: Buffer.alloc(4096, 'a'),
        headers: { 'content-type': 'application/json' },
      });
      assert.equal(tooLarge.status, 413, tooLarge.text);
      assert.match(tooLarge.text, /C2_VALIDATION/);
    });
    assert.deepEqual(warnings, []);
    // The connection serves on: a refused stream is not a refused connection.
    assert.equal((await client.request('GET', '/healthz')).status, 200);
  });

  void it('takes a stream reset mid-body for a client gone away, not a failure', async () => {
    const stream = client.session.request({ ':method': 'POST', ':path': '/e4/topic/reset' });
    const answered = await new Promise<boolean>((resolve) => {
      stream.once('response', () => {
        resolve(true);
      });
      stream.once('close', () => {
        resolve(false);
      });
      stream.write('{"partial":', () => {
        // RST_STREAM without END_STREAM (`close()` would end the body first: a whole request).
        setTimeout(() => stream.destroy(), 100);
      });
    });
    assert.equal(answered, false);
    const line = await eventually(() => {
      const found = a.log.lines.find((l) => l.obj['path'] === '/e4/topic/reset');
      assert.ok(found !== undefined, 'the request is logged');
      return found;
    });
    assert.equal(line.msg, 'client went away mid-request');
    assert.equal(line.level, 'info');
    assert.equal((await client.request('GET', '/v1/topics/reset')).status, 404, 'not created');
  });

  void it(
    'answers 408 to a body that does not arrive in time, and closes its stream',
    { timeout: 20_000 },
    async () => {
      const stream = client.session.request({
        ':method': 'POST',
        ':path': '/e4/topic/trickled',
        'content-type': 'application/json',
      });
      const closed = new Promise<void>((resolve) => stream.once('close', resolve));
      const status = new Promise<number>((resolve) =>
        stream.once('response', (headers) => {
          resolve(Number(headers[':status']));
        }),
      );
      let text = '';
      stream.setEncoding('utf8');
      stream.on('data', (chunk: string) => (text += chunk));
      stream.on('error', () => {
        // The close that follows the answer.
      });
      stream.write('{"partial":'); // and never the rest, nor the end of the body
      assert.equal(await status, 408);
      await closed;
      assert.match(text, /"message":"the request body did not arrive within 1\.5 s"/);
      assert.match(text, /"reason":"C2_VALIDATION"/);
      assert.equal(stream.rstCode, 0, 'closed with NO_ERROR once answered');
      assert.equal((await client.request('GET', '/v1/topics/trickled')).status, 404, 'not created');
      assert.equal(
        (await client.request('GET', '/healthz')).status,
        200,
        'the connection serves on',
      );
    },
  );

  void it('guards hosts by :authority', async () => {
    const evil = await client.request('GET', '/v1/topics', {
      headers: { ':authority': `evil.example:${port}` },
    });
    assert.equal(evil.status, 403, evil.text);
    assert.match(evil.text, /host-not-allowed/);
    const allowed = await client.request('GET', '/v1/topics', {
      headers: { ':authority': `c2.example.com:${port}` },
    });
    assert.equal(allowed.status, 200, allowed.text);
    const both = await client.request('GET', '/v1/topics', {
      headers: { ':authority': `localhost:${port}`, host: `evil.example:${port}` },
    });
    assert.equal(both.status, 400, both.text);
    assert.match(both.text, /Host header and :authority/);
  });

  void it('takes a same-origin change from the console and refuses another origin', async () => {
    const origin = `https://localhost:${port}`;
    const sameOrigin = await client.request('POST', '/e4/topic/from-the-console', {
      body: '',
      headers: { origin, 'sec-fetch-site': 'same-origin' },
    });
    assert.equal(sameOrigin.status, 200, sameOrigin.text);
    const crossOrigin = await client.request('POST', '/e4/topic/from-elsewhere', {
      body: '',
      headers: { origin: 'https://evil.example' },
    });
    assert.equal(crossOrigin.status, 403, crossOrigin.text);
    const plainScheme = await client.request('POST', '/e4/topic/from-http', {
      body: '',
      headers: { origin: `http://localhost:${port}` },
    });
    assert.equal(plainScheme.status, 403, 'an http: origin is another origin over TLS');
  });
});

/**
 * Sends `request` over TLS offering only HTTP/1.1 and reads until the node closes the
 * connection. @returns what came back and after how long the node closed
 */
function rawHttp1(
  port: number,
  ca: string,
  request: string,
): Promise<{ text: string; closedAfterMs: number }> {
  return new Promise((resolve, reject) => {
    const socket = tlsConnect({ host: '127.0.0.1', port, ca, servername: 'localhost' });
    socket.setEncoding('utf8');
    socket.setTimeout(15_000, () => socket.destroy(new Error('the node kept the connection')));
    let text = '';
    let sentAt = 0;
    socket.on('secureConnect', () => {
      assert.equal(socket.alpnProtocol, false, 'no ALPN offered: HTTP/1.1');
      sentAt = Date.now();
      socket.write(request);
    });
    socket.on('data', (chunk: string) => {
      text += chunk;
    });
    socket.on('error', reject);
    socket.on('close', () => {
      resolve({ text, closedAfterMs: Date.now() - sentAt });
    });
  });
}

void describe('HTTP/1.1 on the HTTP/2 server', () => {
  let tls: Awaited<ReturnType<typeof nodeCertificate>>;
  let a: ApiHarness;
  before(async () => {
    tls = await nodeCertificate();
    a = await startApi({
      api: { tls: { cert: tls.cert, key: tls.key }, httpBodyTimeoutMs: BODY_TIMEOUT_MS },
    });
  });
  after(async () => {
    await a.close();
    await rm(tls.dir, { recursive: true, force: true });
  });

  void it('closes an idle keep-alive connection after 5 s, as node:http does', async () => {
    const { text, closedAfterMs } = await rawHttp1(
      a.api.httpAddress.port,
      tls.cert,
      'GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n',
    );
    assert.match(text, /^HTTP\/1\.1 200 /);
    assert.match(text, /\r\nconnection: keep-alive\r\n/i);
    assert.ok(closedAfterMs >= 4000 && closedAfterMs < 12_000, `closed after ${closedAfterMs} ms`);
  });

  void it(
    'answers 408 to a body that does not arrive in time, and closes',
    { timeout: 20_000 },
    async () => {
      const { text } = await rawHttp1(
        a.api.httpAddress.port,
        tls.cert,
        'POST /e4/topic/trickled HTTP/1.1\r\nHost: localhost\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{"partial":',
      );
      assert.match(text, /^HTTP\/1\.1 408 /);
      assert.match(text, /\r\nconnection: close\r\n/i);
      assert.match(text, /did not arrive within 1\.5 s/);
    },
  );

  void it('answers a malformed request with the JSON 400', async () => {
    const { text } = await rawHttp1(a.api.httpAddress.port, tls.cert, 'NOT HTTP AT ALL\r\n\r\n');
    assert.match(text, /^HTTP\/1\.1 400 Bad Request\r\n/);
    assert.match(text, /"code":"C2_VALIDATION"/);
  });
});

void describe('HTTP/2 with mutual TLS', () => {
  let tls: Awaited<ReturnType<typeof nodeCertificate>>;
  let ca: TestClientCa;
  let a: ApiHarness;
  before(async () => {
    tls = await nodeCertificate();
    ca = createTestClientCa();
    a = await startMutualTlsApi(tls, ca);
  });
  after(async () => {
    await a.close();
    ca.dispose();
    await rm(tls.dir, { recursive: true, force: true });
  });

  void it('the client certificate is the caller on every stream of the connection', async () => {
    const port = a.api.httpAddress.port;
    const automation = new Http2TestClient(port, tls.cert, ca.issue('automation'));
    const auditor = new Http2TestClient(port, tls.cert, ca.issue('auditor'));
    try {
      await automation.connected;
      assert.equal(automation.session.alpnProtocol, 'h2');
      const created = await automation.request('POST', '/e4/topic/h2-mtls', { body: '' });
      assert.equal(created.status, 200, created.text);
      const refused = await auditor.request('POST', '/e4/topic/h2-mtls-denied', { body: '' });
      assert.equal(refused.status, 403, refused.text);
      assert.equal((await auditor.request('GET', '/e4/topics')).status, 200);
    } finally {
      automation.close();
      auditor.close();
    }
    const stranger = new Http2TestClient(port, tls.cert);
    await assert.rejects(stranger.connected.then(() => stranger.request('GET', '/e4/topics')));
    stranger.close();
  });
});

void describe('HTTP/2 at shutdown', { timeout: 30_000 }, () => {
  void it('sends GOAWAY, ends the event streams, finishes requests, and closes in time', async () => {
    const tls = await nodeCertificate();
    const a = await startApi({ api: { tls: { cert: tls.cert, key: tls.key } } });
    const client = new Http2TestClient(a.api.httpAddress.port, tls.cert);
    try {
      await client.connected;
      // A request still sending its body when the shutdown starts. Opened first: once the later
      // streams are answered, the node has taken it too (one connection keeps the order).
      const slow = client.session.request({ ':method': 'POST', ':path': '/e4/topic/late' });
      slow.write('');
      const slowAnswer = new Promise<string>((resolve, reject) => {
        slow.once('response', (h) => {
          resolve(String(h[':status']));
        });
        slow.once('error', reject);
      });
      slow.resume();
      const streams = Array.from({ length: 3 }, () => client.events());
      await Promise.all(streams.map((s) => s.response));
      const bound = 10_000;
      const started = Date.now();
      const closed = a.api.close(bound);
      assert.equal(await pendingAfter(client.goaway, bound / 2), false, 'GOAWAY was sent');
      await Promise.all(streams.map((s) => s.ended));
      slow.end();
      assert.equal(await slowAnswer, '200', 'the request started before the shutdown finished');
      await closed;
      const elapsed = Date.now() - started;
      assert.ok(elapsed < bound / 2, `closed after ${elapsed} ms, not at the ${bound} ms bound`);
      for (const s of streams) assert.match(s.text(), /^retry: /);
    } finally {
      client.close();
      await a.close();
      await rm(tls.dir, { recursive: true, force: true });
    }
  });
});
