/**
 * Cross-site request forgery: a state-changing request that a browser marks as sent by another
 * site's page (`Sec-Fetch-Site`, `Origin`) is refused with C2_PERMISSION_DENIED and changes
 * nothing, on an API without credentials (the default single node, where any caller is admin).
 * Same-origin requests (the console) and requests without those headers (the CLI, c2cli,
 * scripts) are served as before.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ensureSelfSignedCert } from '../../cluster/embedded/index.ts';
import { startApi, type ApiHarness } from './support/api-harness.ts';

void describe('cross-site requests', () => {
  let a: ApiHarness;
  let self: string;
  before(async () => {
    a = await startApi();
    self = `http://127.0.0.1:${a.api.httpAddress.port}`;
  });
  after(async () => {
    await a.close();
  });

  const topicExists = async (name: string): Promise<boolean> =>
    (await a.http('GET', `/v1/topics/${encodeURIComponent(name)}`)).status === 200;

  void it('refuses a POST another site marks, and creates nothing', async () => {
    const forged: Array<Record<string, string>> = [
      { 'sec-fetch-site': 'cross-site', origin: 'https://evil.example' },
      { 'sec-fetch-site': 'same-site' },
      { origin: 'https://evil.example' },
      { origin: 'null' }, // a form in a sandboxed frame or after a cross-site redirect
      { origin: `${self}.evil.example` },
      { origin: 'not a url' },
    ];
    for (const [i, headers] of forged.entries()) {
      const name = `csrf-${i}`;
      const res = await a.http('POST', `/e4/topic/${name}`, {
        body: '',
        headers: { 'content-type': 'text/plain', ...headers },
      });
      assert.equal(res.status, 403, `${JSON.stringify(headers)}: ${res.text}`);
      assert.match(res.text, /C2_PERMISSION_DENIED/);
      assert.equal(await topicExists(name), false, `${JSON.stringify(headers)} created the topic`);
    }
  });

  void it('refuses a forged rotation, which leaves the key version as it was', async () => {
    assert.equal((await a.http('POST', '/e4/topic/csrf-rotated', { body: '' })).status, 200);
    const version = async (): Promise<number> =>
      ((await a.http('GET', '/v1/topics/csrf-rotated')).json as { keyVersion: number }).keyVersion;
    const before = await version();
    const res = await a.http('POST', '/v1/topics/csrf-rotated/rotate', {
      body: '{}',
      headers: { origin: 'https://evil.example', 'sec-fetch-site': 'cross-site' },
    });
    assert.equal(res.status, 403, res.text);
    assert.equal(await version(), before);
  });

  void it('serves same-origin browser requests, requests without those headers, and reads', async () => {
    const sameOrigin = await a.http('POST', '/e4/topic/csrf-console', {
      body: '',
      headers: { origin: self, 'sec-fetch-site': 'same-origin' },
    });
    assert.equal(sameOrigin.status, 200, sameOrigin.text);
    const typed = await a.http('POST', '/e4/topic/csrf-typed-in', {
      body: '',
      headers: { 'sec-fetch-site': 'none' }, // typed into the address bar, a bookmark
    });
    assert.equal(typed.status, 200, typed.text);
    const cli = await a.http('POST', '/e4/topic/csrf-cli', { body: '' });
    assert.equal(cli.status, 200, cli.text);
    // A page of another site can send a GET but cannot read the answer (no CORS headers).
    const read = await a.http('GET', '/v1/topics/csrf-cli', {
      headers: { origin: 'https://evil.example', 'sec-fetch-site': 'cross-site' },
    });
    assert.equal(read.status, 200, read.text);
    assert.equal(read.headers['access-control-allow-origin'], undefined);
  });
});

void describe('cross-site requests to a node that serves TLS itself', () => {
  let a: ApiHarness;
  let dir: string;
  let cert: string;
  let self: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'e4c2-csrf-tls-'));
    const pair = await ensureSelfSignedCert(dir);
    cert = await readFile(pair.certPath, 'utf8');
    a = await startApi({ api: { tls: { cert, key: await readFile(pair.keyPath, 'utf8') } } });
    self = `127.0.0.1:${a.api.httpAddress.port}`;
  });
  after(async () => {
    await a.close();
    await rm(dir, { recursive: true, force: true });
  });

  void it('refuses an http: Origin of the same host and port (another origin), serves https:', async () => {
    const plain = await a.http('POST', '/e4/topic/csrf-scheme', {
      body: '',
      ca: cert,
      headers: { origin: `http://${self}` },
    });
    assert.equal(plain.status, 403, plain.text);
    assert.match(plain.text, /C2_PERMISSION_DENIED/);
    const secure = await a.http('POST', '/e4/topic/csrf-scheme', {
      body: '',
      ca: cert,
      headers: { origin: `https://${self}` },
    });
    assert.equal(secure.status, 200, secure.text);
  });
});
