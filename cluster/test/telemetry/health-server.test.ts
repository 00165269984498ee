/**
 * The operations listener: `/readyz` answers in the API port's shape, probes may use HEAD, and
 * draining or a failing readiness function is 503.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { HealthServer, type ReadinessResult } from '../../telemetry/health-server.ts';

void describe('the operations listener', () => {
  let server: HealthServer;
  let readiness: () => Promise<ReadinessResult>;
  const url = (path: string): string => `http://127.0.0.1:${server.address.port}${path}`;

  before(async () => {
    server = await HealthServer.start({
      host: '127.0.0.1',
      port: 0,
      readiness: () => readiness(),
      metrics: () => Promise.resolve({ contentType: 'text/plain', body: 'up 1\n' }),
    });
  });
  after(async () => {
    await server.close();
  });

  void it('/readyz shows each check as { ok }, as the API port does', async () => {
    readiness = () => Promise.resolve({ ready: false, checks: { postgres: true, mqtt: false } });
    const res = await fetch(url('/readyz'));
    assert.equal(res.status, 503);
    assert.deepEqual(await res.json(), {
      ready: false,
      checks: { postgres: { ok: true }, mqtt: { ok: false } },
    });
    readiness = () => Promise.resolve({ ready: true, checks: { postgres: true } });
    const up = await fetch(url('/readyz'));
    assert.equal(up.status, 200);
    assert.deepEqual(await up.json(), { ready: true, checks: { postgres: { ok: true } } });
  });

  void it('answers HEAD with the status alone, and names the methods it allows', async () => {
    readiness = () => Promise.resolve({ ready: true, checks: {} });
    for (const path of ['/healthz', '/readyz', '/metrics']) {
      const res = await fetch(url(path), { method: 'HEAD' });
      assert.equal(res.status, 200, path);
      assert.equal(await res.text(), '', `${path}: no body`);
    }
    const post = await fetch(url('/healthz'), { method: 'POST' });
    assert.equal(post.status, 405);
    assert.equal(post.headers.get('allow'), 'GET, HEAD');
  });

  void it('a readiness function that fails is 503', async () => {
    readiness = () => Promise.reject(new Error('boom'));
    const res = await fetch(url('/readyz'));
    assert.equal(res.status, 503);
    assert.deepEqual(await res.json(), { ready: false, checks: {} });
  });

  void it('draining is 503 however ready the dependencies are (last: it stays draining)', async () => {
    readiness = () => Promise.resolve({ ready: true, checks: { postgres: true } });
    server.drain();
    const res = await fetch(url('/readyz'));
    assert.equal(res.status, 503);
    assert.equal(((await res.json()) as { ready: boolean }).ready, false);
    assert.equal((await fetch(url('/healthz'))).status, 200, 'still alive');
  });
});
