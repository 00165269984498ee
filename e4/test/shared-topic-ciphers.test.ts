// SharedTopicCiphers: clients of one host given the same pool prepare each topic key once, still
// decrypt only what their own keys open, and no longer-used key is kept alive by the pool.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import {
  cmdSetTopicKey,
  E4Client,
  E4ErrorCode,
  protectCommand,
  randomSymKey,
  SharedTopicCiphers,
  type Clock,
} from '../index.ts';
import { fixedClock, throwsE4 } from './support.ts';

const clock = fixedClock(1_700_000_000_000);
const topic = 'fleet/telemetry';

interface Device {
  readonly client: E4Client;
  readonly key: Uint8Array;
}

async function device(name: string, pool: SharedTopicCiphers | undefined): Promise<Device> {
  const key = randomSymKey();
  const options = pool === undefined ? { clock } : { clock, sharedTopicCiphers: pool };
  return { client: await E4Client.createSymmetric({ name }, { key }, options), key };
}

/** The C2's SetTopicKey, applied by the device. */
async function setTopicKey(d: Device, topicKey: Uint8Array, at: Clock = clock): Promise<void> {
  const command = protectCommand(cmdSetTopicKey(topicKey, topic), d.key, at);
  const result = await d.client.unprotect(command, d.client.receivingTopic);
  assert.equal(result.kind, 'command');
}

/** A data message protected for `topic` by a device holding `topicKey`. */
async function messageUnder(topicKey: Uint8Array, text: string): Promise<Uint8Array> {
  const sender = await device('sender', undefined);
  await setTopicKey(sender, topicKey);
  return sender.client.protectMessage(new TextEncoder().encode(text), topic);
}

const decoded = (bytes: Uint8Array): string => new TextDecoder().decode(bytes);

/** The engine's `gc`, exposed at run time (the test runner does not start node with it). */
function collector(): () => void {
  setFlagsFromString('--expose-gc');
  return runInNewContext('gc') as () => void;
}

void describe('SharedTopicCiphers', () => {
  void it('prepares a topic key once for every client of the pool that holds it', async () => {
    const pool = new SharedTopicCiphers();
    const devices = await Promise.all(['a', 'b', 'c'].map((n) => device(`gw-${n}`, pool)));
    const topicKey = randomSymKey();
    for (const d of devices) await setTopicKey(d, topicKey);
    const message = await messageUnder(topicKey, 'hello');
    for (const d of devices)
      assert.equal(decoded(d.client.unprotectMessage(message, topic)), 'hello');
    assert.deepEqual(pool.stats, { prepared: 1, reused: 2 });
    assert.equal(pool.size, 1);
    // The clients also protect with it, and what one protects the others open.
    const [a, b] = devices;
    assert.ok(a !== undefined && b !== undefined);
    const reply = a.client.protectMessage(new TextEncoder().encode('from a'), topic);
    assert.equal(decoded(b.client.unprotectMessage(reply, topic)), 'from a');
    assert.deepEqual(pool.stats, { prepared: 1, reused: 2 }, 'each client keeps what it got');
  });

  void it('keeps clients with different keys for a topic apart', async () => {
    const pool = new SharedTopicCiphers();
    const a = await device('gw-a', pool);
    const b = await device('gw-b', pool);
    const keyA = randomSymKey();
    const keyB = randomSymKey();
    await setTopicKey(a, keyA);
    await setTopicKey(b, keyB);
    const forA = await messageUnder(keyA, 'for a');
    assert.equal(decoded(a.client.unprotectMessage(forA, topic)), 'for a');
    throwsE4(() => b.client.unprotectMessage(forA, topic), E4ErrorCode.NotAuthentic);
    const forB = await messageUnder(keyB, 'for b');
    assert.equal(decoded(b.client.unprotectMessage(forB, topic)), 'for b');
    assert.deepEqual(pool.stats, { prepared: 2, reused: 0 });
  });

  void it('follows a rotation: the new key is prepared once, the old one is no longer used', async () => {
    const pool = new SharedTopicCiphers();
    const a = await device('gw-a', pool);
    const b = await device('gw-b', pool);
    const v1 = randomSymKey();
    for (const d of [a, b]) await setTopicKey(d, v1);
    const old = await messageUnder(v1, 'v1');
    for (const d of [a, b]) d.client.unprotectMessage(old, topic);
    const v2 = randomSymKey();
    for (const d of [a, b]) await setTopicKey(d, v2);
    const fresh = await messageUnder(v2, 'v2');
    for (const d of [a, b]) assert.equal(decoded(d.client.unprotectMessage(fresh, topic)), 'v2');
    assert.deepEqual(pool.stats, { prepared: 2, reused: 2 });
  });

  void it('lets keys no client uses any more be collected', async () => {
    const gc = collector();
    const pool = new SharedTopicCiphers();
    const a = await device('gw-a', pool);
    for (let version = 0; version < 5; version++) {
      const key = randomSymKey();
      await setTopicKey(a, key);
      a.client.protectMessage(new Uint8Array(4), topic);
    }
    assert.equal(pool.stats.prepared, 5);
    // Finalisers run in later tasks, after a collection: bounded wait for the four replaced keys.
    for (let i = 0; i < 50 && pool.size > 1; i++) {
      gc();
      await new Promise((resolve) => setImmediate(resolve));
    }
    assert.equal(pool.size, 1, 'only the key the client still holds stays');
    // The one left is still the client's: using it prepares nothing new.
    a.client.protectMessage(new Uint8Array(4), topic);
    assert.equal(pool.stats.prepared, 5);
  });

  void it('refuses a key of the wrong size with InvalidKey', () => {
    const pool = new SharedTopicCiphers();
    throwsE4(() => pool.get(new Uint8Array(31)), E4ErrorCode.InvalidKey);
    assert.equal(pool.size, 0);
  });

  void it('a client without the pool is unaffected by it', async () => {
    const pool = new SharedTopicCiphers();
    const own = await device('own', undefined);
    const pooled = await device('pooled', pool);
    const key = randomSymKey();
    for (const d of [own, pooled]) await setTopicKey(d, key);
    const message = await messageUnder(key, 'both');
    for (const d of [own, pooled])
      assert.equal(decoded(d.client.unprotectMessage(message, topic)), 'both');
    assert.deepEqual(pool.stats, { prepared: 1, reused: 0 });
  });
});
