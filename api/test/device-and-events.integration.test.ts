/**
 * Through the API end to end: a simulated device registered over HTTP receives its topic key and
 * reads what ProtectMessage (gRPC) produced; the event streams of both APIs.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import type { ServiceError } from '@grpc/grpc-js';
import { E4Client, randomSymKey, toHex, topicHash } from '../../e4/index.ts';
import { eventually } from '../../cluster/test/support/eventually.ts';
import { SimDevice } from '../../cluster/test/support/sim-device.ts';
import { startApi, type ApiHarness, type Message } from './support/api-harness.ts';

const unique = (prefix: string): string => `${prefix}-${randomBytes(5).toString('hex')}`;

async function waitForLog(a: ApiHarness, msg: string, count: number): Promise<void> {
  await eventually(() => {
    assert.ok(a.log.lines.filter((l) => l.msg === msg).length >= count, `log "${msg}"`);
  });
}

void describe('a device through the API', () => {
  let a: ApiHarness;
  const devices: SimDevice[] = [];
  before(async () => {
    a = await startApi();
  });
  after(async () => {
    await Promise.all(devices.map((d) => d.close()));
    await a.close();
  });

  void it('registered over HTTP, attached, decrypts ProtectMessage output from gRPC', async () => {
    const name = unique('sensor');
    const topic = unique('plant/line-1/temp');
    const key = randomSymKey();
    const device = await SimDevice.connect(await E4Client.createSymmetric({ name }, { key }));
    devices.push(device);
    const created = await a.http('POST', `/e4/client/${encodeURIComponent(name)}`, {
      body: { key: Buffer.from(key).toString('base64') },
    });
    assert.equal(created.status, 200, created.text);
    assert.equal((await a.http('POST', `/e4/topic/${topic}`)).status, 200);
    assert.equal((await a.http('PUT', `/e4/client/${name}/topic/${topic}`)).status, 200);

    const details = (await a.http('GET', `/v1/topics/${encodeURIComponent(topic)}`)).json as {
      keyVersion: number;
      keys: Array<{ version: number; fingerprint: string }>;
    };
    const fingerprint = details.keys.find((k) => k.version === details.keyVersion)?.fingerprint;
    const hash = toHex(topicHash(topic));
    await device.waitFor(() => device.topicKeyFingerprint(hash) === fingerprint, 10_000, 'key');

    const protectedMessage = await a.grpc.call('ProtectMessage', {
      topic,
      binaryData: Buffer.from('21.5 °C'),
    });
    assert.equal(protectedMessage['topic'], topic);
    const wire = protectedMessage['protectedBinaryData'];
    assert.ok(wire instanceof Uint8Array, 'protectedBinaryData is bytes');
    assert.equal(Buffer.from(device.client.unprotectMessage(wire, topic)).toString(), '21.5 °C');

    // And back: what the device protects, the C2 unprotects (HTTP this time).
    const fromDevice = device.client.protectMessage(Buffer.from('ack'), topic);
    const opened = await a.http('POST', '/e4/unprotect-message', {
      body: { topic, protectedBinaryData: Buffer.from(fromDevice).toString('base64') },
    });
    assert.equal(opened.status, 200, opened.text);
    assert.deepEqual(opened.json, { topic, binaryData: Buffer.from('ack').toString('base64') });
  });

  void it('a rotation over /v1 reaches the device and the rollout says so', async () => {
    const name = unique('sensor');
    const topic = unique('fleet');
    const key = randomSymKey();
    const device = await SimDevice.connect(await E4Client.createSymmetric({ name }, { key }));
    devices.push(device);
    await a.grpc.call('NewClient', { client: { name }, key: Buffer.from(key) });
    await a.grpc.call('NewTopic', { topic });
    await a.grpc.call('NewTopicClient', { client: { name }, topic });
    const rotated = await a.http('POST', `/v1/topics/${topic}/rotate`);
    assert.equal(rotated.status, 200, rotated.text);
    const body = rotated.json as { keyVersion: number; fingerprint: string; members: number };
    assert.equal(body.keyVersion, 2);
    assert.equal(body.members, 1);
    const hash = toHex(topicHash(topic));
    await device.waitFor(() => device.topicKeyFingerprint(hash) === body.fingerprint, 10_000, 'v2');
    await eventually(async () => {
      const rollout = await a.http('GET', `/v1/topics/${topic}/rollout?version=2`);
      assert.deepEqual(rollout.json, {
        topic,
        keyVersion: 2,
        rollout: { members: 1, delivered: 1, pending: 0, failed: 0, confirmed: 0 },
      });
    });
  });
});

void describe('event streams', () => {
  let a: ApiHarness;
  before(async () => {
    a = await startApi();
  });
  after(async () => {
    await a.close();
  });

  void it('SubscribeToEventStream: attach and detach from now on, as the reference events', async () => {
    const name = unique('c');
    const [old, topic] = [unique('old'), unique('t')];
    await a.grpc.call('NewClient', { client: { name }, key: randomBytes(32) });
    await a.grpc.call('NewTopic', { topic: old });
    await a.grpc.call('NewTopic', { topic });
    await a.grpc.call('NewTopicClient', { client: { name }, topic: old }); // before: not replayed
    const stream = a.grpc.stream('SubscribeToEventStream');
    const received: Message[] = [];
    stream.on('data', (event: Message) => received.push(event));
    stream.on('error', () => undefined);
    await waitForLog(a, 'event stream opened', 1);
    const before = Date.now();
    await a.grpc.call('NewTopicClient', { client: { name }, topic });
    await a.grpc.call('NewTopic', { topic }); // a rotation: not a reference event
    await a.grpc.call('RemoveTopicClient', { client: { name }, topic });
    await eventually(() => {
      assert.equal(received.length, 2);
    });
    stream.cancel();
    assert.deepEqual(
      received.map((e) => [e['type'], e['source'], e['target']]),
      [
        ['CLIENT_SUBSCRIBED', name, topic],
        ['CLIENT_UNSUBSCRIBED', name, topic],
      ],
    );
    for (const e of received) {
      const ts = e['timestamp'] as { seconds: string; nanos: number };
      const ms = Number(ts.seconds) * 1000 + ts.nanos / 1e6;
      assert.ok(ms >= before - 2000 && ms <= Date.now() + 2000, `timestamp ${ms}`);
    }
  });

  void it('StreamEvents resumes after after_seq, then follows live events', async () => {
    const name = unique('r');
    await a.grpc.call('NewClient', { client: { name }, key: randomBytes(32) });
    const page = (await a.http('GET', '/v1/events?limit=1000')).json as {
      events: Array<{ seq: string; type: string; client: string }>;
      nextAfterSeq: string;
    };
    const mine = page.events.find((e) => e.type === 'client.created' && e.client === name);
    assert.ok(mine, 'the client.created event is listed');
    const resumeAfter = String(Number(mine.seq) - 1);
    const stream = a.admin.stream('StreamEvents', { after_seq: resumeAfter });
    const received: Message[] = [];
    stream.on('data', (event: Message) => received.push(event));
    stream.on('error', () => undefined);
    const topic = unique('live');
    await a.grpc.call('NewTopic', { topic });
    await eventually(() => {
      assert.ok(
        received.some((e) => e['type'] === 'topic.created' && e['topic'] === topic),
        'the live event arrived',
      );
    });
    stream.cancel();
    assert.deepEqual(received[0]?.['seq'], mine.seq);
    assert.deepEqual(received[0]['client'], name);
    const order = received.map((e) => Number(e['seq']));
    assert.deepEqual(
      order,
      [...order].sort((x, y) => x - y),
    );
    assert.equal(page.nextAfterSeq, page.events.at(-1)?.seq);
  });

  void it('StreamEvents rejects a malformed after_seq', async () => {
    const stream = a.admin.stream('StreamEvents', { after_seq: '12abc' });
    const err = await new Promise<ServiceError>((resolve) => stream.on('error', resolve));
    assert.equal(err.code, 3); // INVALID_ARGUMENT
  });
});
