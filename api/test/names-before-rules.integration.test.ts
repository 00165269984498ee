/**
 * Names that the rules for new clients and topics refuse, but that an earlier release accepted:
 * such clients and topics stay reachable (lookups, rotation, membership, removal) over both
 * surfaces. An earlier release's name is made by renaming a row in the database, with the E4 id
 * or topic hash that derives from the new name (sealed keys are bound to row ids, not names).
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { topicHash } from '../../e4/index.ts';
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
});
