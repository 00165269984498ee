/**
 * The reference C2's functional suites (c2:pkg/c2test/grpc.go and http.go, c2-reference.md
 * §10.1), ported step by step: a fresh node and database per suite, 4 clients named
 * `clientname<32 hex>` with random keys, 4 random alphanumeric topics.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import type { ServiceError } from '@grpc/grpc-js';
import { startApi, type ApiHarness } from './support/api-harness.ts';

const ALPHANUMERIC = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789';

function randomTopic(): string {
  const length = 8 + ((randomBytes(1)[0] ?? 0) % 25);
  return Array.from(randomBytes(length), (b) => ALPHANUMERIC[b % ALPHANUMERIC.length]).join('');
}

function testData(): { clients: Array<{ name: string; key: Buffer }>; topics: string[] } {
  return {
    clients: Array.from({ length: 4 }, () => ({
      name: `clientname${randomBytes(16).toString('hex')}`,
      key: randomBytes(32),
    })),
    topics: Array.from({ length: 4 }, randomTopic),
  };
}

const sorted = (values: readonly string[]): string[] => [...values].sort();

void describe('reference functional suite over gRPC', () => {
  let a: ApiHarness;
  const { clients, topics } = testData();
  const [c0] = clients;
  const [t0] = topics;
  before(async () => {
    a = await startApi();
  });
  after(async () => {
    await a.close();
  });

  void it('1. Create Clients', async () => {
    for (const c of clients)
      assert.deepEqual(
        await a.grpc.call('NewClient', { client: { name: c.name }, key: c.key }),
        {},
      );
  });
  void it('2. Create Topics', async () => {
    for (const t of topics) assert.deepEqual(await a.grpc.call('NewTopic', { topic: t }), {});
  });
  void it('3. Add Topic to Client', async () => {
    await a.grpc.call('NewTopicClient', { client: { name: c0?.name }, topic: t0 });
  });
  void it('4. M2M Find Added Topic', async () => {
    const res = await a.grpc.call('GetTopicsForClient', {
      client: { name: c0?.name },
      offset: 0,
      count: 10,
    });
    assert.deepEqual(res['topics'], [t0]);
  });
  void it('5. Remove Topic from Client', async () => {
    await a.grpc.call('RemoveTopicClient', { client: { name: c0?.name }, topic: t0 });
  });
  void it("6. M2M Doesn't Show Removed Topic (count unset: the default page of 100)", async () => {
    const res = await a.grpc.call('GetTopicsForClient', { client: { name: c0?.name } });
    assert.deepEqual(res['topics'], []);
    // Not vacuous: count unset means the default page, so a remaining topic would be listed.
    await a.grpc.call('NewTopicClient', { client: { name: c0?.name }, topic: topics[1] });
    const again = await a.grpc.call('GetTopicsForClient', { client: { name: c0?.name } });
    assert.deepEqual(again['topics'], [topics[1]]);
    await a.grpc.call('RemoveTopicClient', { client: { name: c0?.name }, topic: topics[1] });
  });
  void it('7. Remove topic from C2', async () => {
    await a.grpc.call('RemoveTopic', { topic: t0 });
  });
  void it('8. Check double remove fails', async () => {
    await assert.rejects(a.grpc.call('RemoveTopic', { topic: t0 }), (err: ServiceError) => {
      assert.equal(err.code, 5); // NOT_FOUND
      return true;
    });
  });
  void it('9. Fetch Topics', async () => {
    const res = await a.grpc.call('GetTopics', { offset: 0, count: 10 });
    assert.deepEqual(res['topics'], sorted(topics.slice(1)));
  });
  void it('10. Fetch Clients', async () => {
    const res = await a.grpc.call('GetClients', { offset: 0, count: 10 });
    assert.deepEqual(
      res['clients'],
      sorted(clients.map((c) => c.name)).map((name) => ({ name })),
    );
  });
});

void describe('reference functional suite over HTTP', () => {
  let a: ApiHarness;
  const { clients, topics } = testData();
  const c0 = clients[0]?.name ?? '';
  const t0 = topics[0] ?? '';
  before(async () => {
    a = await startApi();
  });
  after(async () => {
    await a.close();
  });

  void it('1. POST /e4/client/{name} {"key": b64} → 200 (×4)', async () => {
    for (const c of clients) {
      const res = await a.http('POST', `/e4/client/${c.name}`, {
        body: { key: c.key.toString('base64') },
      });
      assert.equal(res.status, 200, res.text);
      assert.deepEqual(res.json, {});
    }
  });
  void it('2. POST /e4/topic/{t} → 200 (×4)', async () => {
    for (const t of topics) assert.equal((await a.http('POST', `/e4/topic/${t}`)).status, 200);
  });
  void it('3. PUT /e4/client/{c0}/topic/{t0} → 200', async () => {
    assert.equal((await a.http('PUT', `/e4/client/${c0}/topic/${t0}`)).status, 200);
  });
  void it('4. GET /e4/client/{c0}/topics?offset=0&count=10 → {"topics":[t0]}', async () => {
    const res = await a.http('GET', `/e4/client/${c0}/topics?offset=0&count=10`);
    assert.equal(res.status, 200);
    assert.deepEqual(res.json, { topics: [t0] });
  });
  void it('5. DELETE /e4/client/{c0}/topic/{t0} → 200', async () => {
    assert.equal((await a.http('DELETE', `/e4/client/${c0}/topic/${t0}`)).status, 200);
  });
  void it('6. the same GET → topics is empty', async () => {
    const res = await a.http('GET', `/e4/client/${c0}/topics?offset=0&count=10`);
    assert.equal(res.status, 200);
    assert.deepEqual(res.json, { topics: [] });
  });
  void it('7. DELETE /e4/topic/{t0} → 200', async () => {
    assert.equal((await a.http('DELETE', `/e4/topic/${t0}`)).status, 200);
  });
  void it('8. the same DELETE again → 404', async () => {
    const res = await a.http('DELETE', `/e4/topic/${t0}`);
    assert.equal(res.status, 404);
    assert.deepEqual(
      {
        error: (res.json as Record<string, unknown>)['error'],
        code: (res.json as Record<string, unknown>)['code'],
      },
      { error: 'topic not found', code: 5 },
    );
  });
  void it('9. GET /e4/topics?offset=0&count=100 → the 3 remaining topics', async () => {
    const res = await a.http('GET', '/e4/topics?offset=0&count=100');
    assert.equal(res.status, 200);
    assert.deepEqual(res.json, { topics: sorted(topics.slice(1)) });
  });
  void it('10. GET /e4/clients?offset=0&count=100 → the 4 clients', async () => {
    const res = await a.http('GET', '/e4/clients?offset=0&count=100');
    assert.equal(res.status, 200);
    assert.deepEqual(res.json, {
      clients: sorted(clients.map((c) => c.name)).map((name) => ({ name })),
    });
  });
  void it('GET /e4/health-check → exactly {"Code":"0","Status":"OK"}', async () => {
    const res = await a.http('GET', '/e4/health-check');
    assert.equal(res.status, 200);
    assert.equal(res.text, '{"Code":"0","Status":"OK"}');
    assert.equal(res.headers['content-type'], 'application/json');
  });
});
