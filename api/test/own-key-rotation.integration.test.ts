/**
 * A device that draws its own identity key (public-key mode), through an API node, its delivery
 * engine and the real broker: it begins its rotation (E4Client.beginOwnKeyRotation) before
 * RotateClientKey registers the new public key, so that the commands the C2 sends right after
 * the call, under the new key, are applied, as are those it sent before it, under the old one.
 * A device that switched only when the call returned refused the first ones (`NotAuthentic`),
 * and the C2 counted them delivered (docs/protocol-extensions.md §2).
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import {
  bytesEqual,
  E4Client,
  ed25519PublicKey,
  fromHex,
  randomEd25519Key,
  toHex,
  topicHash,
} from '../../e4/index.ts';
import { SimDevice } from '../../cluster/test/support/sim-device.ts';
import { startApi, type ApiHarness } from './support/api-harness.ts';

const unique = (prefix: string): string => `${prefix}-${randomBytes(5).toString('hex')}`;
const b64 = (bytes: Uint8Array): string => Buffer.from(bytes).toString('base64');

void describe('a device rotating its own identity key, through an API node', () => {
  let a: ApiHarness;
  const devices: SimDevice[] = [];
  before(async () => {
    a = await startApi({ mode: 'pubkey' });
  });
  after(async () => {
    await Promise.all(devices.map((d) => d.close()));
    await a.close();
  });

  /** Rotates `topic` over /v1; the fingerprint of its new key. */
  const rotate = async (topic: string): Promise<string> => {
    const res = await a.http('POST', `/v1/topics/${encodeURIComponent(topic)}/rotate`);
    assert.equal(res.status, 200, res.text);
    return (res.json as { fingerprint: string }).fingerprint;
  };

  /** The fingerprint of `topic`'s current key. */
  const current = async (topic: string): Promise<string> => {
    const res = await a.http('GET', `/v1/topics/${encodeURIComponent(topic)}`);
    const details = res.json as {
      keyVersion: number;
      keys: Array<{ version: number; fingerprint: string }>;
    };
    return details.keys.find((k) => k.version === details.keyVersion)?.fingerprint ?? '';
  };

  void it('commands sent right after RotateClientKey(publicKey) are applied: the rotation began before the call', async () => {
    const name = unique('own-key');
    const topics = [unique('own-a'), unique('own-b'), unique('own-c')];
    const c2 = await a.http('GET', '/v1/c2-public-key');
    assert.equal(c2.status, 200, c2.text);
    const first = randomEd25519Key();
    const client = await E4Client.createPublicKey(
      { name },
      { privateKey: first },
      fromHex((c2.json as { publicKey: string }).publicKey),
    );
    const device = await SimDevice.connect(client);
    devices.push(device);
    await a.grpc.call('NewClient', { client: { name }, key: ed25519PublicKey(first) });
    for (const topic of topics) {
      await a.grpc.call('NewTopic', { topic });
      await a.grpc.call('NewTopicClient', { client: { name }, topic });
    }
    /** Waits until the device holds each topic's key of `expected` (by fingerprint). */
    const holds = async (expected: readonly string[], what: string): Promise<void> => {
      await device.waitFor(
        () =>
          topics.every((t, i) => device.topicKeyFingerprint(toHex(topicHash(t))) === expected[i]),
        15_000,
        what,
      );
    };
    await holds(await Promise.all(topics.map(current)), 'the first keys');

    const next = randomEd25519Key();
    const publicKey = await client.beginOwnKeyRotation(next);
    // Before the C2 is told: under the key it holds, applied with the current key.
    const beforeCall = await rotate(topics[0] ?? '');
    await holds([beforeCall, ...(await Promise.all(topics.slice(1).map(current)))], 'before');

    const rotated = await a.http('POST', `/v1/clients/${encodeURIComponent(name)}/rotate`, {
      body: { publicKey: b64(publicKey) },
    });
    assert.equal(rotated.status, 200, rotated.text);
    assert.equal((rotated.json as { keyVersion: number }).keyVersion, 2);
    // At once, under the key the C2 took: the first of them promotes the pending key.
    const afterCall = [await rotate(topics[1] ?? ''), await rotate(topics[2] ?? '')];
    await holds([beforeCall, ...afterCall], 'the keys sent after the call');

    const material = client.state.keyMaterial;
    assert.equal(material.mode, 'public-key');
    assert.ok(bytesEqual(material.privateKey, next), 'the new key is the current one');
    assert.equal(client.pendingPublicKey, undefined, 'nothing pending any more');
    assert.deepEqual(
      device.applied.filter((c) => c.type === 'rejected'),
      [],
      'no command refused',
    );
  });
});
