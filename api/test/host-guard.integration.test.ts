/**
 * DNS rebinding: while API authentication is off, an HTTP API request must name an IP address,
 * `localhost` or an allowed host name; any other name (a page of another site that pointed its
 * domain at the node) is refused with C2_PERMISSION_DENIED and changes nothing. With an
 * authenticator the credentials decide and the guard is off.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { hostAllowed, hostName } from '../http/host-guard.ts';
import { startApi, type ApiHarness } from './support/api-harness.ts';

void describe('host guard (unit)', () => {
  void it('reads host names out of Host headers', () => {
    assert.equal(hostName('Example.COM:8888'), 'example.com');
    assert.equal(hostName('[::1]:8888'), '::1');
    assert.equal(hostName('127.0.0.1'), '127.0.0.1');
    assert.equal(hostName('::1'), '::1');
  });

  void it('allows IP addresses, localhost and the listed names; nothing else', () => {
    const listed = new Set(['c2.example.com']);
    for (const ok of [
      '127.0.0.1:8888',
      '10.1.2.3',
      '[::1]:8888',
      'localhost:8888',
      'LOCALHOST',
      'node-1.localhost:8888',
      'c2.example.com:443',
      'c2.example.com.',
      undefined,
    ]) {
      assert.equal(hostAllowed(ok, listed), true, String(ok));
    }
    for (const refused of [
      'evil.example:8888',
      'localhost.evil.example',
      '127.0.0.1.nip.io',
      'example.com',
      '',
    ]) {
      assert.equal(hostAllowed(refused, listed), false, refused);
    }
  });
});

void describe('host guard on a node without authentication', () => {
  let a: ApiHarness;
  let port = 0;
  before(async () => {
    a = await startApi({ api: { allowedHosts: ['C2.Example.com'] } });
    port = a.api.httpAddress.port;
  });
  after(async () => {
    await a.close();
  });

  const topicExists = async (name: string): Promise<boolean> =>
    (await a.http('GET', `/v1/topics/${encodeURIComponent(name)}`)).status === 200;

  void it('refuses a request naming another host, reads and changes alike', async () => {
    const create = await a.http('POST', '/e4/topic/rebound', {
      body: '',
      headers: { host: `evil.example:${port}`, origin: `http://evil.example:${port}` },
    });
    assert.equal(create.status, 403, create.text);
    assert.match(create.text, /C2_PERMISSION_DENIED/);
    assert.match(create.text, /E4C2_HTTP_ALLOWED_HOSTS/);
    assert.equal(await topicExists('rebound'), false);
    const read = await a.http('GET', '/v1/clients', { headers: { host: 'evil.example' } });
    assert.equal(read.status, 403, read.text);
    const json = read.json as { error?: { details?: { reason?: string } } };
    assert.equal(json.error?.details?.reason, 'host-not-allowed', read.text);
  });

  void it('serves IP addresses, localhost, allowed names, probes and the console', async () => {
    for (const host of [`127.0.0.1:${port}`, `localhost:${port}`, `c2.example.com:${port}`]) {
      const res = await a.http('GET', '/v1/topics', { headers: { host } });
      assert.equal(res.status, 200, `${host}: ${res.text}`);
    }
    const probe = await a.http('GET', '/healthz', { headers: { host: 'lb.internal' } });
    assert.equal(probe.status, 200, probe.text);
  });
});

void describe('host guard with authentication on', () => {
  let a: ApiHarness;
  before(async () => {
    a = await startApi({ api: { authenticate: () => 'token:test' } });
  });
  after(async () => {
    await a.close();
  });

  void it('is off: the credentials decide', async () => {
    const res = await a.http('GET', '/v1/topics', { headers: { host: 'c2.example.com' } });
    assert.equal(res.status, 200, res.text);
  });
});
