/** The web console's files as the HTTP listener serves them. */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { ConsoleFiles } from '../http/console-files.ts';

const WEB_DIR = fileURLToPath(new URL('../../web/', import.meta.url));

void describe('console files', () => {
  let server: Server;
  let base: string;
  before(async () => {
    const files = await ConsoleFiles.load(WEB_DIR);
    server = createServer((req, res) => {
      const headers = { 'x-request-id': 'req-1' };
      if (!files.serve(req.method ?? 'GET', (req.url ?? '/').split('?')[0] ?? '/', res, headers))
        res.writeHead(418).end();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(async () => {
    await new Promise((resolve) => server.close(resolve));
  });

  void it('serves the page and its modules with a strict content security policy', async () => {
    const page = await fetch(`${base}/console/`);
    assert.equal(page.status, 200);
    assert.equal(page.headers.get('x-request-id'), 'req-1');
    assert.match(page.headers.get('content-type') ?? '', /^text\/html/);
    assert.match(page.headers.get('content-security-policy') ?? '', /script-src 'self'/);
    assert.match(await page.text(), /<script type="module" src="main.js">/);
    const script = await fetch(`${base}/console/sse.js`);
    assert.match(script.headers.get('content-type') ?? '', /^text\/javascript/);
    assert.match(await script.text(), /export class SseParser/);
  });

  void it('serves an icon, named by the page and at /favicon.ico (it was a 404)', async () => {
    const page = await (await fetch(`${base}/console/`)).text();
    const link = /<link rel="icon" href="([^"]+)" type="image\/svg\+xml" \/>/.exec(page);
    assert.ok(link?.[1] !== undefined, 'the page names its icon');
    for (const path of [`/console/${link[1]}`, '/favicon.ico']) {
      for (const method of ['GET', 'HEAD']) {
        const res = await fetch(`${base}${path}`, { method });
        assert.equal(res.status, 200, `${method} ${path}`);
        assert.equal(res.headers.get('content-type'), 'image/svg+xml', path);
        assert.equal(res.headers.get('x-content-type-options'), 'nosniff');
        const body = await res.text();
        if (method === 'GET') assert.match(body, /^<svg xmlns="http:\/\/www\.w3\.org\/2000\/svg"/);
        else assert.equal(body, '');
      }
    }
    const post = await fetch(`${base}/favicon.ico`, { method: 'POST' });
    await assertRefusal(post, 405, 'C2_VALIDATION');
  });

  void it('redirects / and /console to /console/', async () => {
    for (const path of ['/', '/console']) {
      for (const method of ['GET', 'HEAD']) {
        const res = await fetch(`${base}${path}`, { method, redirect: 'manual' });
        assert.equal(res.status, 302, `${method} ${path}`);
        assert.equal(res.headers.get('location'), '/console/');
      }
    }
  });

  /** A refusal: the API's JSON error body, with the files' security headers. */
  async function assertRefusal(res: Response, status: number, code: string): Promise<void> {
    assert.equal(res.status, status, res.url);
    assert.equal(res.headers.get('content-type'), 'application/json');
    assert.match(res.headers.get('content-security-policy') ?? '', /frame-ancestors 'none'/);
    assert.equal(res.headers.get('x-content-type-options'), 'nosniff');
    assert.equal(res.headers.get('referrer-policy'), 'no-referrer');
    assert.equal(res.headers.get('x-request-id'), 'req-1', 'the request id, as the API gives it');
    const body = (await res.json()) as { error?: { code?: string; message?: string } };
    assert.equal(body.error?.code, code);
    assert.equal(typeof body.error.message, 'string');
  }

  void it('serves nothing but its own files: unknown names and traversal are 404', async () => {
    for (const path of [
      '/console/tsconfig.json',
      '/console/..%2Fpackage.json',
      '/console/x/../sse.d.ts',
    ])
      await assertRefusal(await fetch(`${base}${path}`), 404, 'C2_NOT_FOUND');
    assert.equal((await fetch(`${base}/v1/topics`)).status, 418, 'other paths are not its own');
  });

  void it('answers other methods, on its files and on the redirects, with 405', async () => {
    for (const [method, path] of [
      ['POST', '/console/index.html'],
      ['DELETE', '/'],
      ['PUT', '/console'],
      ['POST', '/console/nothing'],
    ] as const) {
      const res = await fetch(`${base}${path}`, { method, redirect: 'manual' });
      await assertRefusal(res, 405, 'C2_VALIDATION');
      assert.equal(res.headers.get('allow'), 'GET, HEAD');
    }
  });
});
