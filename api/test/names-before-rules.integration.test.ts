/**
 * Names that the rules for new clients and topics refuse, but that an earlier release accepted:
 * such clients and topics stay reachable (lookups, rotation, membership, removal) over both
 * surfaces, and the upserts (NewTopic, NewClient) do to them what they do to any existing one. An earlier release's name is made by renaming a row in the database, with the E4 id
 * or topic hash that derives from the new name (sealed keys are bound to row ids, not names).
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { clientIdFromName, topicHash } from '../../e4/index.ts';
import { startApi, type ApiHarness } from './support/api-harness.ts';

const unique = (prefix: string): string => `${prefix}-${randomBytes(4).toString('hex')}`;

/** Creates topic `name` as an earlier release would have: NewTopic, then a rename. */
async function legacyTopic(a: ApiHarness, name: string): Promise<void> {
  const made = unique('legacy-topic');
  await a.grpc.call('NewTopic', { topic: made });
  const { rowCount } = await a.h.schema.pool.query(
    'UPDATE topics SET name = $1, topic_hash = $2 WHERE name = $3',
    [name, Buffer.from(topicHash(name)), made],
  );
  assert.equal(rowCount, 1);
}

/** Creates client `name` as an earlier release would have: NewClient, then a rename. */
async function legacyClient(a: ApiHarness, name: string): Promise<void> {
  const made = unique('legacy-client');
  await a.grpc.call('NewClient', { client: { name: made }, key: randomBytes(32) });
  const { rowCount } = await a.h.schema.pool.query(
    'UPDATE clients SET name = $1, e4_id = $2 WHERE name = $3',
    [name, Buffer.from(clientIdFromName(name)), made],
  );
  assert.equal(rowCount, 1);
}

/** The topic is reachable: listed, looked up, rotated, attached, detached and removed. */
async function assertTopicReachable(a: ApiHarness, topic: string, member: string): Promise<void> {
  const path = encodeURIComponent(topic);
  const listed = (await a.grpc.call('GetTopics', { offset: 0, count: 1000 }))['topics'];
  assert.ok((listed as string[]).includes(topic), 'listed');
  const shown = await a.http('GET', `/v1/topics/${path}`);
  assert.equal(shown.status, 200, shown.text);
  assert.equal((shown.json as Record<string, unknown>)['name'], topic);
  assert.equal((await a.admin.call('GetTopic', { name: topic }))['name'], topic);
  const rotated = await a.http('POST', `/v1/topics/${path}/rotate`, { body: {} });
  assert.equal(rotated.status, 200, rotated.text);
  assert.equal((rotated.json as Record<string, unknown>)['keyVersion'], 2);
  await a.grpc.call('NewTopicClient', { client: { name: member }, topic });
  const clients = await a.grpc.call('GetClientsForTopic', { topic, offset: 0, count: 10 });
  assert.deepEqual(clients['clients'], [{ name: member }]);
  await a.grpc.call('RemoveTopicClient', { client: { name: member }, topic });
  const removed = await a.http('DELETE', `/e4/topic/${path}`);
  assert.equal(removed.status, 200, removed.text);
  assert.equal(await a.h.store.read.topics.byName(topic), undefined, 'removed');
}

void describe('names made before the rules for new names', () => {
  let a: ApiHarness;
  before(async () => {
    a = await startApi();
    await a.grpc.call('NewClient', { client: { name: 'member' }, key: randomBytes(32) });
  });
  after(async () => {
    await a.close();
  });

  void it('a topic holding control characters stays reachable', async () => {
    const topic = unique('old\u001b[31m\u007f\u009b');
    await legacyTopic(a, topic);
    await assertTopicReachable(a, topic, 'member');
  });

  void it('a topic made only of whitespace stays reachable', async () => {
    await legacyTopic(a, '\u3000 ');
    await assertTopicReachable(a, '\u3000 ', 'member');
  });

  void it('a client made only of whitespace stays reachable', async () => {
    const name = ' \u00a0';
    await legacyClient(a, name);
    const path = `/v1/clients/${encodeURIComponent(name)}`;
    const shown = await a.http('GET', path);
    assert.equal(shown.status, 200, shown.text);
    assert.equal((shown.json as Record<string, unknown>)['name'], name);
    const rotated = await a.http('POST', `${path}/rotate`, { body: {} });
    assert.equal(rotated.status, 200, rotated.text);
    assert.equal((rotated.json as Record<string, unknown>)['keyVersion'], 2);
    await a.grpc.call('NewTopic', { topic: 'for-blank' });
    await a.grpc.call('NewTopicClient', { client: { name }, topic: 'for-blank' });
    const topics = await a.grpc.call('GetTopicsForClient', {
      client: { name },
      offset: 0,
      count: 10,
    });
    assert.deepEqual(topics['topics'], ['for-blank']);
    const removed = await a.http('DELETE', path);
    assert.equal(removed.status, 200, removed.text);
    assert.equal(await a.h.store.read.clients.byName(name), undefined, 'removed');
  });

  void it('NewTopic rotates a topic made before the rules, as it rotates any existing topic', async () => {
    for (const topic of [unique('old\u001b[1m'), unique('e4/old'), '\u2003\u2003']) {
      await legacyTopic(a, topic);
      await a.grpc.call('NewTopic', { topic });
      assert.equal((await a.h.store.read.topics.byName(topic))?.keyVersion, 2, topic);
      const ours = await a.admin.call('NewTopic', { name: topic, request_id: unique('r') });
      assert.equal(ours['created'], false, topic);
      assert.equal(ours['key_version'], 3, topic);
    }
    // A name no topic has is still refused, before anything is written.
    await assert.rejects(a.grpc.call('NewTopic', { topic: unique('new\u001b') }), /control/);
  });

  void it('NewClient re-provisions a client made before the rules (a re-flash)', async () => {
    const name = '\u00a0\u00a0';
    await legacyClient(a, name);
    await a.grpc.call('NewClient', { client: { name }, key: randomBytes(32) });
    assert.equal((await a.h.store.read.clients.byName(name))?.keyVersion, 2);
    await assert.rejects(
      a.grpc.call('NewClient', { client: { name: '\u3000' }, key: randomBytes(32) }),
      /whitespace/,
    );
    assert.equal(await a.h.store.read.clients.byName('\u3000'), undefined);
  });

  void it('whitespace around or inside other characters is still a name', async () => {
    await a.grpc.call('NewClient', { client: { name: ' dev 1 ' }, key: randomBytes(32) });
    await a.grpc.call('NewClient', { client: { name: 'dev\u200b2' }, key: randomBytes(32) });
    assert.ok(await a.h.store.read.clients.byName('dev\u200b2'), 'an invisible character inside');
    await a.grpc.call('NewTopic', { topic: 'plant 1/\u3000temp' });
    assert.ok(await a.h.store.read.clients.byName(' dev 1 '));
    assert.ok(await a.h.store.read.topics.byName('plant 1/\u3000temp'));
  });
});
