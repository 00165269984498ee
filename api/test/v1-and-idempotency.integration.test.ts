/** Our API (`/v1` and `e4c2.v1.C2Admin`) and idempotency keys on both surfaces. */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { Metadata, status, type ServiceError } from '@grpc/grpc-js';
import { PgDelivery } from '../../cluster/storage/index.ts';
import { ed25519KeyFromSeed } from '../../e4/index.ts';
import { startApi, type ApiHarness } from './support/api-harness.ts';

const unique = (prefix: string): string => `${prefix}-${randomBytes(5).toString('hex')}`;
const b64 = (bytes: Uint8Array): string => Buffer.from(bytes).toString('base64');

void describe('/v1 routes and C2Admin', () => {
  let a: ApiHarness;
  before(async () => {
    a = await startApi();
  });
  after(async () => {
    await a.close();
  });

  void it('GET /v1/clients/{name}: details with versions, never keys; 404 in the v1 error shape', async () => {
    const name = unique('dev/with/slashes');
    await a.grpc.call('NewClient', { client: { name }, key: randomBytes(32) });
    const res = await a.http('GET', `/v1/clients/${encodeURIComponent(name)}`);
    assert.equal(res.status, 200, res.text);
    const body = res.json as Record<string, unknown>;
    assert.equal(body['name'], name);
    assert.equal(body['keyVersion'], 1);
    assert.match(String(body['controlTopic']), /^e4\/[0-9a-f]{32}$/);
    assert.deepEqual(Object.keys(body), [
      'name',
      'id',
      'controlTopic',
      'keyVersion',
      'deliveredKeyVersion',
      'c2KeyVersion',
      'keys',
      'delivery',
      'topics',
    ]);
    const grpcView = await a.admin.call('GetClient', { name });
    assert.equal(grpcView['key_version'], 1);
    // A device's last rejection (delivery receipts), on both surfaces: none yet, then one.
    const delivery = (): Record<string, unknown> =>
      (body['delivery'] ?? {}) as Record<string, unknown>;
    assert.equal(delivery()['lastRejectedAt'], '');
    const row = await a.h.store.read.clients.byName(name);
    assert.ok(row);
    await new PgDelivery(a.h.schema.pool).markRejected(row.id, 'InvalidKey', 'SetTopicKey');
    const rejected = (await a.http('GET', `/v1/clients/${encodeURIComponent(name)}`))
      .json as Record<string, Record<string, unknown>>;
    assert.match(String(rejected['delivery']?.['lastRejectedAt']), /^\d{4}-\d\d-\d\dT/);
    assert.deepEqual(
      [
        rejected['delivery']?.['lastRejectionReason'],
        rejected['delivery']?.['lastRejectedCommand'],
      ],
      ['InvalidKey', 'SetTopicKey'],
    );
    const grpcDelivery = (await a.admin.call('GetClient', { name }))['delivery'] as Record<
      string,
      unknown
    >;
    assert.equal(grpcDelivery['last_rejection_reason'], 'InvalidKey');
    const missing = await a.http('GET', '/v1/clients/nobody');
    assert.equal(missing.status, 404);
    const error = (missing.json as { error: Record<string, unknown> }).error;
    assert.equal(error['code'], 'C2_NOT_FOUND');
    assert.equal(error['message'], 'client not found');
    assert.deepEqual(error['details'], { client: 'nobody' });
    assert.equal(error['requestId'], missing.headers['x-request-id']);
    // Answers and errors alike: never cached, never sniffed as anything but JSON.
    for (const answer of [res, missing]) {
      assert.equal(answer.headers['cache-control'], 'no-store');
      assert.equal(answer.headers['x-content-type-options'], 'nosniff');
      // Nothing in an answer runs or is framed, should a browser render one.
      assert.equal(
        answer.headers['content-security-policy'],
        "default-src 'none'; frame-ancestors 'none'",
      );
      assert.equal(answer.headers['content-type'], 'application/json');
    }
  });

  void it('GET /v1/clients and /v1/topics page with a cursor', async () => {
    const prefix = unique('page');
    for (let i = 0; i < 5; i++)
      await a.grpc.call('NewClient', { client: { name: `${prefix}-${i}` }, key: randomBytes(32) });
    const names: string[] = [];
    let cursor = '';
    for (let pages = 0; pages < 50; pages++) {
      const res = await a.http(
        'GET',
        `/v1/clients?limit=2${cursor === '' ? '' : `&cursor=${cursor}`}`,
      );
      assert.equal(res.status, 200, res.text);
      const body = res.json as { clients: Array<{ name: string }>; nextCursor: string };
      assert.ok(body.clients.length <= 2, 'page size');
      names.push(...body.clients.map((c) => c.name));
      if (body.nextCursor === '') break;
      cursor = body.nextCursor;
    }
    const mine = names.filter((n) => n.startsWith(prefix));
    assert.deepEqual(
      mine,
      [0, 1, 2, 3, 4].map((i) => `${prefix}-${i}`),
    );
    const topic = unique('a/b');
    await a.http('POST', `/e4/topic/${topic}`);
    const topics = (await a.http('GET', '/v1/topics?limit=1000')).json as {
      topics: Array<{ name: string; keyVersion: number }>;
    };
    assert.ok(
      topics.topics.some((t) => t.name === topic && t.keyVersion === 1),
      'topic listed',
    );
  });

  void it('a full last page has no cursor: a client does not ask for an empty page', async () => {
    for (let i = 0; i < 3; i++) await a.http('POST', `/e4/topic/${unique('full/page')}`);
    const all = (await a.http('GET', '/v1/topics?limit=1000')).json as {
      topics: unknown[];
      nextCursor: string;
    };
    const total = all.topics.length;
    assert.ok(total >= 3 && total < 1000, `topics in this schema: ${total}`);
    assert.equal(all.nextCursor, '');
    const exact = (await a.http('GET', `/v1/topics?limit=${total}`)).json as {
      topics: unknown[];
      nextCursor: string;
    };
    assert.equal(exact.topics.length, total);
    assert.equal(exact.nextCursor, '', 'the page holding the last topic is the last');
    const short = (await a.http('GET', `/v1/topics?limit=${total - 1}`)).json as {
      topics: unknown[];
      nextCursor: string;
    };
    assert.equal(short.topics.length, total - 1);
    assert.notEqual(short.nextCursor, '', 'one topic follows');
    const rest = (await a.http('GET', `/v1/topics?limit=${total - 1}&cursor=${short.nextCursor}`))
      .json as { topics: unknown[]; nextCursor: string };
    assert.deepEqual([rest.topics.length, rest.nextCursor], [1, '']);
    // The same for clients, over gRPC (other tests of this file registered some).
    const everyone = (await a.admin.call('ListClients', { limit: 1000 })) as { clients: unknown[] };
    const count = everyone.clients.length;
    assert.ok(count > 0 && count < 1000, `clients in this schema: ${count}`);
    const exactClients = (await a.admin.call('ListClients', { limit: count })) as {
      clients: unknown[];
      next_cursor: string;
    };
    assert.deepEqual([exactClients.clients.length, exactClients.next_cursor], [count, '']);
  });

  void it('rotate, resync and remove a client; rotation status; the C2 key needs pubkey mode', async () => {
    const name = unique('rot');
    await a.grpc.call('NewClient', { client: { name }, key: randomBytes(32) });
    const rotated = await a.http('POST', `/v1/clients/${name}/rotate`);
    assert.equal(rotated.status, 200, rotated.text);
    assert.equal((rotated.json as { keyVersion: number }).keyVersion, 2);
    const withKey = await a.http('POST', `/v1/clients/${name}/rotate`, {
      body: { publicKey: b64(randomBytes(32)) },
    });
    assert.equal(withKey.status, 400);
    // The client's key was rotated: the resync re-sends it under the one before, and says so.
    const resynced = await a.http('POST', `/v1/clients/${name}/resync`);
    assert.equal(resynced.status, 200, resynced.text);
    assert.deepEqual(resynced.json, { keysResent: ['identity'] });
    const fresh = unique('fresh');
    await a.grpc.call('NewClient', { client: { name: fresh }, key: randomBytes(32) });
    assert.deepEqual(await a.admin.call('ResyncClient', { name: fresh }), { keys_resent: [] });
    // A retry of a request whose reply an earlier release stored (no keysResent in it).
    const retried = unique('retried');
    await a.admin.call('ResyncClient', { name: fresh, request_id: retried });
    const stored = await a.h.schema.pool.query(
      `UPDATE request_ids SET response = '{"resync": true}'::jsonb WHERE request_id LIKE '%' || $1`,
      [retried],
    );
    assert.equal(stored.rowCount, 1, 'the stored reply was found');
    assert.deepEqual(await a.admin.call('ResyncClient', { name: fresh, request_id: retried }), {
      keys_resent: [],
    });
    const topic = unique('t');
    await a.grpc.call('NewTopic', { topic });
    const status = await a.http('GET', `/v1/topics/${topic}/rollout`);
    assert.deepEqual(status.json, {
      topic,
      keyVersion: 1,
      rollout: { members: 0, delivered: 0, pending: 0, failed: 0, confirmed: 0 },
    });
    assert.equal((await a.http('GET', `/v1/topics/${topic}/rollout?version=2`)).status, 400);
    const c2 = await a.http('GET', '/v1/c2-public-key');
    assert.equal(c2.status, 400);
    assert.equal((c2.json as { error: { code: string } }).error.code, 'C2_CRYPTO_MODE');
    const removed = await a.http('DELETE', `/v1/clients/${name}?reset=true`);
    assert.equal(removed.status, 200, removed.text);
    assert.deepEqual(removed.json, { resetPending: true });
  });

  void it('NewTopic (POST /v1/topics/{name}) says whether it created the topic or rotated its key', async () => {
    const topic = unique('plant/new');
    const path = `/v1/topics/${encodeURIComponent(topic)}`;
    const created = await a.http('POST', path);
    assert.equal(created.status, 200, created.text);
    const first = created.json as Record<string, unknown>;
    assert.deepEqual(
      { ...first, fingerprint: typeof first['fingerprint'] },
      {
        created: true,
        keyVersion: 1,
        fingerprint: 'string',
        members: 0,
      },
    );
    const existing = await a.http('POST', path, { body: {} });
    assert.equal(existing.status, 200, existing.text);
    const second = existing.json as Record<string, unknown>;
    assert.equal(second['created'], false, 'false is rendered, not left out');
    assert.equal(second['keyVersion'], 2);
    assert.notEqual(second['fingerprint'], first['fingerprint']);
    assert.equal((await a.admin.call('GetTopic', { name: topic }))['key_version'], 2);

    // gRPC, and a retry with the same request id: the first answer again, nothing rotated.
    const other = unique('grpc-new');
    const request_id = unique('req');
    const reply = await a.admin.call('NewTopic', { name: other, request_id });
    assert.equal(reply['created'], true);
    assert.equal(reply['key_version'], 1);
    assert.deepEqual(await a.admin.call('NewTopic', { name: other, request_id }), reply);
    assert.equal((await a.admin.call('GetTopic', { name: other }))['key_version'], 1);
    const rotated = await a.admin.call('NewTopic', { name: other });
    assert.deepEqual([rotated['created'], rotated['key_version']], [false, 2]);

    // The rules of new names apply, as on the reference NewTopic.
    const blank = await a.http('POST', '/v1/topics/%20');
    assert.equal(blank.status, 400, blank.text);
    assert.equal((blank.json as { error: { code: string } }).error.code, 'C2_VALIDATION');
  });

  void it("GET /v1/topics/{name}/traffic reports the monitor's counters (HTTP and gRPC)", async () => {
    const topic = unique('traffic');
    await a.http('POST', `/e4/topic/${topic}`);
    const keys = await a.h.service.monitoringKeys(topic, 1);
    assert.ok(keys !== undefined);
    const at = new Date('2026-11-26T04:00:00.000Z');
    await a.h.service.recordTraffic(
      [
        {
          topicId: keys.topicId,
          keyVersion: 1,
          class: 'current',
          messages: 7,
          firstAt: at,
          lastAt: at,
        },
        {
          topicId: keys.topicId,
          keyVersion: 0,
          class: 'unencrypted',
          messages: 2,
          firstAt: at,
          lastAt: at,
        },
      ],
      [],
    );
    const res = await a.http('GET', `/v1/topics/${topic}/traffic`);
    assert.equal(res.status, 200, res.text);
    assert.deepEqual(res.json, {
      topic,
      keyVersion: 1,
      counts: [
        {
          keyVersion: 1,
          class: 'current',
          messages: '7',
          firstAt: at.toISOString(),
          lastAt: at.toISOString(),
        },
        {
          keyVersion: 0,
          class: 'unencrypted',
          messages: '2',
          firstAt: at.toISOString(),
          lastAt: at.toISOString(),
        },
      ],
      devices: [],
    });
    const viaGrpc = await a.admin.call('GetTopicTraffic', { name: topic });
    assert.equal((viaGrpc['counts'] as unknown[]).length, 2);
  });
});

// Only signed messages name their sender, so key use per device is recorded in public-key mode.
void describe('/v1 and C2Admin in public-key mode', () => {
  let a: ApiHarness;
  before(async () => {
    a = await startApi({ mode: 'pubkey' });
  });
  after(async () => {
    await a.close();
  });

  void it('GET /v1/clients/{name}: each topic shows the key version monitoring saw the device use', async () => {
    const name = unique('observed');
    const topic = unique('observed-topic');
    const publicKey = ed25519KeyFromSeed(randomBytes(32)).subarray(32);
    await a.grpc.call('NewClient', { client: { name }, key: publicKey });
    await a.http('POST', `/e4/topic/${topic}`);
    await a.http('PUT', `/e4/client/${name}/topic/${topic}`);
    const topicOf = async (): Promise<Record<string, unknown>> => {
      const res = await a.http('GET', `/v1/clients/${name}`);
      assert.equal(res.status, 200, res.text);
      return (res.json as { topics: Array<Record<string, unknown>> }).topics[0] ?? {};
    };
    const never = await topicOf();
    assert.equal(never['observedVersion'], 0, 'never seen');
    assert.equal(never['observedAt'], '');
    assert.equal(never['observedBehind'], false);
    assert.equal(never['confirmedVersion'], 0, 'no receipt: nothing confirmed');
    const keys = await a.h.service.monitoringKeys(topic, 1);
    assert.ok(keys !== undefined);
    const at = new Date();
    const e4Id = Buffer.from(String((await a.admin.call('GetClient', { name }))['id']), 'hex');
    await a.h.service.recordTraffic([], [{ topicId: keys.topicId, e4Id, keyVersion: 1, at }]);
    const seen = await topicOf();
    assert.deepEqual(
      [seen['observedVersion'], seen['observedAt'], seen['observedBehind']],
      [1, at.toISOString(), false],
    );
    const viaGrpc = (await a.admin.call('GetClient', { name }))['topics'] as Array<
      Record<string, unknown>
    >;
    assert.equal(viaGrpc[0]?.['observed_version'], 1);
  });
});

void describe('idempotency keys', () => {
  let a: ApiHarness;
  before(async () => {
    a = await startApi();
  });
  after(async () => {
    await a.close();
  });

  const topicVersion = async (topic: string): Promise<number> =>
    (
      (await a.http('GET', `/v1/topics/${encodeURIComponent(topic)}`)).json as {
        keyVersion: number;
      }
    ).keyVersion;

  void it('HTTP: the same Idempotency-Key twice gives the same response and one rotation', async () => {
    const topic = unique('idem');
    await a.http('POST', `/e4/topic/${topic}`);
    const headers = { 'idempotency-key': unique('key') };
    const first = await a.http('POST', `/v1/topics/${topic}/rotate`, { headers });
    const second = await a.http('POST', `/v1/topics/${topic}/rotate`, { headers });
    assert.equal(first.status, 200, first.text);
    assert.equal(second.status, 200);
    assert.equal(second.text, first.text);
    assert.equal(await topicVersion(topic), 2);
    // Reference routes honour the header too: NewTopic on an existing topic rotates once.
    const refHeaders = { 'idempotency-key': unique('key') };
    for (let i = 0; i < 3; i++)
      assert.equal(
        (await a.http('POST', `/e4/topic/${topic}`, { headers: refHeaders })).status,
        200,
      );
    assert.equal(await topicVersion(topic), 3);
    // Without a key every call rotates.
    await a.http('POST', `/v1/topics/${topic}/rotate`);
    assert.equal(await topicVersion(topic), 4);
  });

  void it('HTTP: a key reused for a different request is a 409 conflict, and changes nothing', async () => {
    const [t1, t2] = [unique('a'), unique('b')];
    await a.http('POST', `/e4/topic/${t1}`);
    await a.http('POST', `/e4/topic/${t2}`);
    const headers = { 'idempotency-key': unique('key') };
    assert.equal((await a.http('POST', `/v1/topics/${t1}/rotate`, { headers })).status, 200);
    const reused = await a.http('POST', `/v1/topics/${t2}/rotate`, { headers });
    assert.equal(reused.status, 409);
    assert.equal((reused.json as { error: { code: string } }).error.code, 'C2_CONFLICT');
    assert.equal(await topicVersion(t2), 1);
    const bad = await a.http('POST', `/v1/topics/${t2}/rotate`, {
      headers: { 'idempotency-key': 'has spaces' },
    });
    assert.equal(bad.status, 400);
    assert.equal(await topicVersion(t2), 1);
  });

  void it('gRPC: metadata idempotency-key (reference) and request_id (v1)', async () => {
    const topic = unique('g');
    await a.grpc.call('NewTopic', { topic });
    const metadata = new Metadata();
    metadata.set('idempotency-key', unique('key'));
    await a.grpc.call('NewTopic', { topic }, metadata);
    await a.grpc.call('NewTopic', { topic }, metadata);
    assert.equal(await topicVersion(topic), 2);
    const id = unique('rid');
    const r1 = await a.admin.call('RotateTopicKey', { name: topic, request_id: id });
    const r2 = await a.admin.call('RotateTopicKey', { name: topic, request_id: id });
    assert.deepEqual(r2, r1);
    assert.equal(r1['key_version'], 3);
    assert.equal(await topicVersion(topic), 3);
    const clash = new Metadata();
    clash.set('idempotency-key', 'other');
    await assert.rejects(
      a.admin.call('RotateTopicKey', { name: topic, request_id: id }, clash),
      (err: ServiceError) => err.code === status.INVALID_ARGUMENT,
    );
    await assert.rejects(
      a.admin.call('RotateTopicKey', { name: topic, request_id: 'line\nbreak' }),
      (err: ServiceError) => err.code === status.INVALID_ARGUMENT,
    );
    assert.equal(await topicVersion(topic), 3, 'a refused request id rotates nothing');
  });
});
