/**
 * The C2 use-cases end to end on the real PostgreSQL and Mosquitto: simulated devices built on
 * `e4/` receive, apply and use what the C2 sends.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import {
  E4Client,
  ed25519KeyFromSeed,
  fromHex,
  randomSymKey,
  toHex,
  topicHash,
  unprotectSymKey,
} from '../../../e4/index.ts';
import type { C2Error } from '../../errors.ts';
import { startHarness, type C2Harness } from '../support/c2-harness.ts';
import { eventually } from '../support/eventually.ts';
import { SimDevice } from '../support/sim-device.ts';

const ctx = { actor: 'test' };
const unique = (prefix: string): string => `${prefix}-${randomBytes(5).toString('hex')}`;

async function skDevice(h: C2Harness, name: string): Promise<SimDevice> {
  const key = randomSymKey();
  await h.service.newClient(ctx, name, key);
  return SimDevice.connect(await E4Client.createSymmetric({ name }, { key }));
}

/**
 * Takes `first` offline (a clean session: the broker acknowledges and drops what it is sent),
 * runs `rotate` meanwhile, brings the device back (added to `devices`, which the suite closes,
 * also when a check below fails), and checks that it refuses what the C2 sends until a resync,
 * after which it holds the key of `topic`.
 * @returns the reconnected device
 */
async function repairedByResync(
  h: C2Harness,
  devices: SimDevice[],
  first: SimDevice,
  name: string,
  topic: string,
  rotate: () => Promise<void>,
): Promise<SimDevice> {
  await first.close();
  await rotate();
  const device = await SimDevice.connect(first.client);
  devices.push(device);
  await h.service.newTopic(ctx, topic);
  await h.service.newTopicClient(ctx, name, topic);
  await device.waitFor(
    () => device.applied.some((a) => a.type === 'rejected'),
    10_000,
    'the refused SetTopicKey',
  );
  await h.service.resyncClient(ctx, name);
  await device.waitFor(
    () => device.topicKeyFingerprint(toHex(topicHash(topic))) !== undefined,
    10_000,
    'the topic key, after the resync',
  );
  return device;
}

/** Rotates a client's identity key until the broker accepted its delivery (version 2). */
async function rotateIdentity(h: C2Harness, name: string): Promise<void> {
  await h.service.rotateClientKey(ctx, name);
  await eventually(async () => {
    assert.equal((await h.service.getClient(name)).deliveredKeyVersion, 2);
  });
}

/** A symmetric-key device (added to `devices`) on its second identity key, holding `topic`'s key. */
async function rotatedHoldingTopic(
  h: C2Harness,
  devices: SimDevice[],
  name: string,
  topic: string,
): Promise<SimDevice> {
  const device = await skDevice(h, name);
  devices.push(device);
  const before = device.client.state.keyMaterial;
  await h.service.rotateClientKey(ctx, name);
  await device.waitFor(() => device.client.state.keyMaterial !== before, 10_000, 'SetIDKey');
  await h.service.newTopic(ctx, topic);
  await h.service.newTopicClient(ctx, name, topic);
  const hash = toHex(topicHash(topic));
  await device.waitFor(() => device.topicKeyFingerprint(hash) !== undefined, 10_000, 'key');
  return device;
}

async function currentFingerprint(h: C2Harness, topic: string): Promise<string> {
  const details = await h.service.getTopic(topic);
  const current = details.keys.find((k) => k.version === details.keyVersion);
  assert.ok(current);
  return current.fingerprint;
}

void describe('C2 delivery, symmetric-key mode', () => {
  let h: C2Harness;
  const devices: SimDevice[] = [];
  before(async () => {
    h = await startHarness();
  });
  after(async () => {
    await Promise.all(devices.map((d) => d.close()));
    await h.close();
  });

  void it('delivers the topic key on attach, and the device decrypts ProtectMessage output', async () => {
    const name = unique('dev');
    const topic = unique('sensors/temp');
    const device = await skDevice(h, name);
    devices.push(device);
    await h.service.newTopic(ctx, topic);
    await h.service.newTopicClient(ctx, name, topic);
    const fp = await currentFingerprint(h, topic);
    const hash = toHex(topicHash(topic));
    await device.waitFor(() => device.topicKeyFingerprint(hash) === fp, 10_000, 'topic key');
    const wire = await h.service.protectMessage(topic, new TextEncoder().encode('21.5'));
    assert.equal(new TextDecoder().decode(device.client.unprotectMessage(wire, topic)), '21.5');
    await eventually(async () => {
      const details = await h.service.getClient(name);
      assert.deepEqual(
        details.topics.map((t) => [t.topic, t.state]),
        [[topic, 'delivered']],
      );
    });
  });

  void it('a rotation reaches every member; a removed member cannot read new messages', async () => {
    const topic = unique('fleet');
    await h.service.newTopic(ctx, topic);
    const names = [unique('a'), unique('b'), unique('c')];
    const members = await Promise.all(names.map((n) => skDevice(h, n)));
    devices.push(...members);
    for (const n of names) await h.service.newTopicClient(ctx, n, topic);
    const hash = toHex(topicHash(topic));
    await h.service.removeTopicClient(ctx, names[2], topic);
    const rotated = await h.service.newTopic(ctx, topic);
    assert.equal(rotated.created, false);
    assert.equal(rotated.keyVersion, 2);
    assert.equal(rotated.members, 2);
    const fp = await currentFingerprint(h, topic);
    for (const d of members.slice(0, 2))
      await d.waitFor(() => d.topicKeyFingerprint(hash) === fp, 10_000, 'rotated key');
    const removed = members[2];
    assert.ok(removed);
    await removed.waitFor(
      () => removed.topicKeyFingerprint(hash) === undefined,
      10_000,
      'revocation',
    );
    const wire = await h.service.protectMessage(topic, new Uint8Array([1, 2, 3]));
    assert.deepEqual(members[0]?.client.unprotectMessage(wire, topic), new Uint8Array([1, 2, 3]));
    assert.throws(() => removed.client.unprotectMessage(wire, topic), { code: 'TopicKeyNotFound' });
    await eventually(async () => {
      const status = await h.service.rotationStatus(topic);
      assert.deepEqual(
        { members: status.members, delivered: status.delivered, failed: status.failed },
        { members: 2, delivered: 2, failed: 0 },
      );
    });
  });

  void it('concurrent rotations of one topic commit linear versions and the device never regresses', async () => {
    const topic = unique('race');
    const name = unique('racer');
    const device = await skDevice(h, name);
    devices.push(device);
    await h.service.newTopic(ctx, topic);
    await h.service.newTopicClient(ctx, name, topic);
    const results = await Promise.all(
      Array.from({ length: 6 }, () => h.service.rotateTopicKey(ctx, topic)),
    );
    assert.deepEqual(
      results.map((r) => r.keyVersion).sort((a, b) => a - b),
      [2, 3, 4, 5, 6, 7],
    );
    const details = await h.service.getTopic(topic);
    assert.equal(details.keyVersion, 7);
    const versionOf = new Map(details.keys.map((k) => [k.fingerprint, k.version]));
    const fp = await currentFingerprint(h, topic);
    const hash = toHex(topicHash(topic));
    await device.waitFor(() => device.topicKeyFingerprint(hash) === fp, 10_000, 'last version');
    const seen = device.applied
      .filter((a) => a.type === 'SetTopicKey' && a.topicHash === hash)
      .map((a) => versionOf.get(a.keyFingerprint ?? '') ?? 0);
    assert.ok(seen.length >= 1);
    for (let i = 1; i < seen.length; i++)
      assert.ok(
        (seen[i] ?? 0) > (seen[i - 1] ?? 0),
        `versions applied in order: ${seen.join(',')}`,
      );
  });

  void it('RemoveTopic revokes the key on member devices', async () => {
    const topic = unique('gone');
    const name = unique('holder');
    const device = await skDevice(h, name);
    devices.push(device);
    await h.service.newTopic(ctx, topic);
    await h.service.newTopicClient(ctx, name, topic);
    const hash = toHex(topicHash(topic));
    await device.waitFor(() => device.topicKeyFingerprint(hash) !== undefined, 10_000, 'key');
    assert.deepEqual(await h.service.removeTopic(ctx, topic), { revoked: 1 });
    await device.waitFor(
      () => device.topicKeyFingerprint(hash) === undefined,
      10_000,
      'revocation',
    );
    await assert.rejects(h.service.removeTopic(ctx, topic), { code: 'C2_NOT_FOUND' });
  });

  void it('rotates a client identity key and keeps commanding the device under the new key', async () => {
    const name = unique('idrot');
    const topic = unique('after-idrot');
    const device = await skDevice(h, name);
    devices.push(device);
    const before = device.client.state.keyMaterial;
    const rotated = await h.service.rotateClientKey(ctx, name);
    assert.equal(rotated.keyVersion, 2);
    await device.waitFor(() => device.client.state.keyMaterial !== before, 10_000, 'SetIDKey');
    await h.service.newTopic(ctx, topic);
    await h.service.newTopicClient(ctx, name, topic);
    await device.waitFor(
      () => device.topicKeyFingerprint(toHex(topicHash(topic))) !== undefined,
      10_000,
      'key under new id key',
    );
    await eventually(async () => {
      assert.equal((await h.service.getClient(name)).deliveredKeyVersion, 2);
    });
    assert.equal(device.applied.filter((a) => a.type === 'rejected').length, 0);
  });

  void it('a device re-flashed with a new key (NewClient again) gets its topic keys again', async () => {
    // The device behind a name replaced (or re-flashed with empty state) under a new key: the
    // C2 held its topics delivered, so nothing reached the new device until a resync.
    const name = unique('reflash');
    const topic = unique('after-reflash');
    const first = await skDevice(h, name);
    devices.push(first);
    await h.service.newTopic(ctx, topic);
    await h.service.newTopicClient(ctx, name, topic);
    const hash = toHex(topicHash(topic));
    await first.waitFor(() => first.topicKeyFingerprint(hash) !== undefined, 10_000, 'key');
    await first.close();
    // Listening before the C2 learns the new key: whatever it sends from then on arrives.
    const key = randomSymKey();
    const reflashed = await SimDevice.connect(await E4Client.createSymmetric({ name }, { key }));
    devices.push(reflashed);
    const replaced = await h.service.newClient(ctx, name, key);
    assert.deepEqual([replaced.created, replaced.keyVersion], [false, 2]);
    const fp = await currentFingerprint(h, topic);
    await reflashed.waitFor(
      () => reflashed.topicKeyFingerprint(hash) === fp,
      10_000,
      'the topic key, sent again under the new key',
    );
    assert.equal(reflashed.applied.filter((a) => a.type === 'rejected').length, 0);
  });

  void it('a resync repairs an identity rotation the broker accepted while the device was offline', async () => {
    const name = unique('idlost');
    const device = await repairedByResync(
      h,
      devices,
      await skDevice(h, name),
      name,
      unique('after-idlost'),
      () => rotateIdentity(h, name),
    );
    assert.ok(device.applied.some((a) => a.type === 'SetIDKey'));
  });

  void it('a resync of a device on the newest key costs one refused command, nothing else', async () => {
    const name = unique('idkept');
    const topic = unique('after-idkept');
    const device = await rotatedHoldingTopic(h, devices, name, topic);
    const rotated = device.client.state.keyMaterial;
    const applied = device.applied.length;
    await h.service.resyncClient(ctx, name);
    await device.waitFor(
      () => device.applied.slice(applied).some((a) => a.type === 'SetTopicKey'),
      10_000,
      'the topic key sent again',
    );
    assert.deepEqual(
      device.applied.slice(applied).map((a) => a.type),
      ['rejected', 'SetTopicKey'],
    );
    assert.equal(device.client.state.keyMaterial, rotated, 'the identity key is unchanged');
  });

  for (const op of ['remove --reset', 'reset'] as const) {
    void it(`a resync then a ${op}: the device on the newest key still gets its ResetTopics`, async () => {
      const name = unique('resync-then');
      const topic = unique('resync-then-t');
      const device = await rotatedHoldingTopic(h, devices, name, topic);
      const applied = device.applied.length;
      await h.service.resyncClient(ctx, name);
      if (op === 'reset') await h.service.resetClient(ctx, name);
      else await h.service.removeClient(ctx, name, { reset: true });
      await device.waitFor(
        () => device.applied.slice(applied).some((a) => a.type === 'ResetTopics'),
        10_000,
        'ResetTopics',
      );
    });
  }

  void it('an idempotency key makes a retried rotation return the same version without rotating twice', async () => {
    const topic = unique('idem');
    await h.service.newTopic(ctx, topic);
    const first = await h.service.rotateTopicKey(
      { actor: 'test', requestId: `req-${topic}` },
      topic,
    );
    const again = await h.service.rotateTopicKey(
      { actor: 'test', requestId: `req-${topic}` },
      topic,
    );
    assert.deepEqual(again, first);
    assert.equal((await h.service.getTopic(topic)).keyVersion, 2);
    await assert.rejects(h.service.newTopic({ actor: 'test', requestId: `req-${topic}` }, topic), {
      code: 'C2_CONFLICT',
    });
  });

  void it('ResetClient wipes the device and sends back the keys of its topics', async () => {
    const name = unique('reset');
    const topic = unique('kept');
    const device = await skDevice(h, name);
    devices.push(device);
    await h.service.newTopic(ctx, topic);
    await h.service.newTopicClient(ctx, name, topic);
    const hash = toHex(topicHash(topic));
    await device.waitFor(() => device.topicKeyFingerprint(hash) !== undefined, 10_000, 'key');
    await h.service.resetClient(ctx, name);
    await device.waitFor(
      () => device.applied.some((a) => a.type === 'ResetTopics'),
      10_000,
      'reset',
    );
    await device.waitFor(
      () => device.topicKeyFingerprint(hash) !== undefined,
      10_000,
      'key re-sent',
    );
  });

  void it('a rotation to a device-generated public key is a mode error in symmetric-key mode', async () => {
    const name = unique('sk-pub');
    await h.service.newClient(ctx, name, randomSymKey());
    await assert.rejects(h.service.rotateClientKey(ctx, name, new Uint8Array(32).fill(7)), {
      code: 'C2_CRYPTO_MODE',
    });
    assert.equal((await h.service.getClient(name)).keyVersion, 1, 'nothing rotated');
  });
});

void describe('C2 delivery survives a crash between commit and delivery', () => {
  void it('an engine started later delivers what an earlier one never sent', async () => {
    const h = await startHarness({ start: false });
    const name = unique('late');
    const topic = unique('late-topic');
    const key = randomSymKey();
    const device = await SimDevice.connect(await E4Client.createSymmetric({ name }, { key }));
    try {
      await h.service.newClient(ctx, name, key);
      await h.service.newTopic(ctx, topic);
      await h.service.newTopicClient(ctx, name, topic);
      // The outbox row is committed, but no engine runs: nothing reached the device.
      await new Promise((r) => setTimeout(r, 200));
      assert.equal(device.applied.length, 0);
      h.engine.start();
      await device.waitFor(
        () => device.topicKeyFingerprint(toHex(topicHash(topic))) !== undefined,
        10_000,
        'late delivery',
      );
    } finally {
      await device.close();
      await h.close();
    }
  });
});

void describe('C2 delivery, public-key mode', () => {
  let h: C2Harness;
  const devices: SimDevice[] = [];
  before(async () => {
    h = await startHarness({ mode: 'pubkey', pkServerKeygen: true });
  });
  after(async () => {
    await Promise.all(devices.map((d) => d.close()));
    await h.close();
  });

  async function pkDevice(name: string): Promise<SimDevice> {
    const privateKey = ed25519KeyFromSeed(new Uint8Array(randomBytes(32)));
    const c2 = await h.service.c2PublicKey();
    await h.service.newClient(ctx, name, privateKey.slice(32));
    return SimDevice.connect(
      await E4Client.createPublicKey({ name }, { privateKey }, fromHex(c2.publicKey)),
    );
  }

  void it('delivers topic keys under the X25519 command key, and peers exchange signed messages', async () => {
    const [alice, bob] = [unique('alice'), unique('bob')];
    const topic = unique('pk-topic');
    const [a, b] = await Promise.all([pkDevice(alice), pkDevice(bob)]);
    devices.push(a, b);
    await h.service.newTopic(ctx, topic);
    await h.service.newTopicClient(ctx, alice, topic);
    await h.service.newTopicClient(ctx, bob, topic);
    await h.service.sendClientPubKey(ctx, alice, bob);
    const hash = toHex(topicHash(topic));
    await b.waitFor(
      () =>
        b.topicKeyFingerprint(hash) !== undefined && b.applied.some((x) => x.type === 'SetPubKey'),
      10_000,
      'key and peer',
    );
    await a.waitFor(() => a.topicKeyFingerprint(hash) !== undefined, 10_000, 'key');
    const wire = a.client.protectMessage(new Uint8Array([42]), topic);
    assert.deepEqual(b.client.unprotectMessage(wire, topic), new Uint8Array([42]));
  });

  void it('peers follow a client key rotation, and drop the key when the client is removed', async () => {
    const [alice, bob] = [unique('alice'), unique('bob')];
    const [a, b] = await Promise.all([pkDevice(alice), pkDevice(bob)]);
    devices.push(a, b);
    await h.service.sendClientPubKey(ctx, alice, bob);
    const setPubKeys = (): number => b.applied.filter((x) => x.type === 'SetPubKey').length;
    await b.waitFor(() => setPubKeys() === 1, 10_000, 'first SetPubKey');
    const next = ed25519KeyFromSeed(new Uint8Array(randomBytes(32)));
    await h.service.rotateClientKey(ctx, alice, next.slice(32));
    await b.waitFor(() => setPubKeys() === 2, 10_000, "SetPubKey of alice's new key");
    await h.service.removeClient(ctx, alice);
    await b.waitFor(() => b.applied.some((x) => x.type === 'RemovePubKey'), 10_000, 'RemovePubKey');
    const material = b.client.state.keyMaterial;
    assert.equal(material.mode === 'public-key' ? material.pubKeys.size : -1, 0);
  });

  void it('a staged C2 key rotation reaches the device, which keeps obeying the C2 afterwards', async () => {
    const name = unique('c2rot');
    const topic = unique('post-c2');
    const device = await pkDevice(name);
    devices.push(device);
    const before = await h.service.c2PublicKey();
    const rotated = await h.service.newC2Key(ctx, true);
    assert.equal(rotated.version, before.version + 1);
    await device.waitFor(
      () => device.applied.some((x) => x.type === 'SetC2Key'),
      10_000,
      'SetC2Key',
    );
    await h.service.newTopic(ctx, topic);
    await h.service.newTopicClient(ctx, name, topic);
    await device.waitFor(
      () => device.topicKeyFingerprint(toHex(topicHash(topic))) !== undefined,
      10_000,
      'key under new C2 key',
    );
    await eventually(async () => {
      assert.equal((await h.service.getClient(name)).c2KeyVersion, rotated.version);
    });
    await assert.rejects(h.service.newC2Key(ctx, false), { code: 'C2_FAILED_PRECONDITION' });
  });

  void it('a resync repairs a C2 key rotation the broker accepted while the device was offline', async () => {
    const name = unique('c2lost');
    const device = await repairedByResync(
      h,
      devices,
      await pkDevice(name),
      name,
      unique('after-c2lost'),
      async () => {
        const rotated = await h.service.newC2Key(ctx, true);
        await eventually(async () => {
          assert.equal((await h.service.getClient(name)).c2KeyVersion, rotated.version);
        });
      },
    );
    assert.ok(device.applied.some((a) => a.type === 'SetC2Key'));
  });

  void it('a resync repairs an identity rotation missed offline after an earlier C2 key rotation', async () => {
    const name = unique('c2-then-id');
    const first = await pkDevice(name);
    devices.push(first); // closed by repairedByResync, or by the suite if a check fails first
    // The device follows a C2 key rotation while online ...
    const rotated = await h.service.newC2Key(ctx, true);
    await first.waitFor(() => first.applied.some((x) => x.type === 'SetC2Key'), 10_000, 'SetC2Key');
    await eventually(async () => {
      assert.equal((await h.service.getClient(name)).c2KeyVersion, rotated.version);
    });
    // ... then misses an identity rotation (a key the C2 generates) while offline.
    const device = await repairedByResync(h, devices, first, name, unique('after-c2-then-id'), () =>
      rotateIdentity(h, name),
    );
    assert.ok(device.applied.some((a) => a.type === 'SetIDKey'));
  });

  void it('never generates device private keys unless allowed, and accepts a device-generated key', async () => {
    const strict = await startHarness({ mode: 'pubkey' });
    try {
      const name = unique('strict');
      const privateKey = ed25519KeyFromSeed(new Uint8Array(randomBytes(32)));
      await strict.service.newClient(ctx, name, privateKey.slice(32));
      await assert.rejects(strict.service.rotateClientKey(ctx, name), {
        code: 'C2_FAILED_PRECONDITION',
      });
      await assert.rejects(
        strict.service.rotateClientKey(ctx, name, new Uint8Array(31)),
        (err: C2Error) => {
          assert.equal(err.code, 'C2_VALIDATION');
          assert.equal(
            err.details?.['field'],
            'publicKey',
            'the bad field is named as the caller sent it',
          );
          return true;
        },
      );
      const next = ed25519KeyFromSeed(new Uint8Array(randomBytes(32)));
      const rotated = await strict.service.rotateClientKey(ctx, name, next.slice(32));
      assert.equal(rotated.keyVersion, 2);
      const details = await strict.service.getClient(name);
      assert.equal(details.deliveredKeyVersion, 2);
      // The same key again (a retry without idempotency key): no version 3 of the same key.
      const again = await strict.service.rotateClientKey(ctx, name, next.slice(32));
      assert.deepEqual(again, rotated);
      assert.equal((await strict.service.getClient(name)).keyVersion, 2);
    } finally {
      await strict.close();
    }
  });

  void it('symmetric-only helpers: ProtectMessage output opens with the topic key', async () => {
    const topic = unique('pm');
    await h.service.newTopic(ctx, topic);
    const wire = await h.service.protectMessage(topic, new Uint8Array([9, 9]));
    assert.deepEqual(await h.service.unprotectMessage(topic, wire), new Uint8Array([9, 9]));
    assert.throws(() => unprotectSymKey(wire, randomSymKey()), { code: 'NotAuthentic' });
  });
});

void describe('DeliveryEngine.idle', () => {
  void it('waits for running batches without spinning', { timeout: 30_000 }, async () => {
    const h = await startHarness();
    try {
      const topic = unique('idle');
      await h.service.newTopic(ctx, topic);
      for (let i = 0; i < 20; i++) {
        const name = `${topic}-d${i}`;
        await h.service.newClient(ctx, name, randomSymKey());
        await h.service.newTopicClient(ctx, name, topic);
      }
      await h.service.rotateTopicKey(ctx, topic);
      await eventually(async () => {
        await h.engine.idle();
        assert.equal((await h.service.rotationStatus(topic)).delivered, 20);
      });
    } finally {
      await h.close();
    }
  });
});
