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
      if (!files.serve(req.method ?? 'GET', (req.url ?? '/').split('?')[0] ?? '/', res))
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
    assert.match(page.headers.get('content-type') ?? '', /^text\/html/);
    assert.match(page.headers.get('content-security-policy') ?? '', /script-src 'self'/);
    assert.match(await page.text(), /<script type="module" src="main.js">/);
    const script = await fetch(`${base}/console/sse.js`);
    assert.match(script.headers.get('content-type') ?? '', /^text\/javascript/);
    assert.match(await script.text(), /export class SseParser/);
  });

  void it('redirects / and /console to /console/', async () => {
    for (const path of ['/', '/console']) {
      const res = await fetch(`${base}${path}`, { redirect: 'manual' });
      assert.equal(res.status, 302);
      assert.equal(res.headers.get('location'), '/console/');
    }
  });

  void it('serves nothing but its own files: unknown names and traversal are 404', async () => {
    for (const path of [
      '/console/tsconfig.json',
      '/console/..%2Fpackage.json',
      '/console/x/../sse.d.ts',
    ])
      assert.equal((await fetch(`${base}${path}`)).status, 404, path);
    assert.equal((await fetch(`${base}/console/index.html`, { method: 'POST' })).status, 405);
    assert.equal((await fetch(`${base}/v1/topics`)).status, 418, 'other paths are not its own');
  });
});
