// E4Client end to end in both modes, without reference vectors: a C2 side built from the
// library's own command builders drives devices that then talk to each other; key transition
// with a moving clock; persistence in e4go's JSON layout; failed saves; ordered command queue.
import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inspect } from 'node:util';
import { after, before, describe, it } from 'node:test';
import {
  clientIdFromName,
  cmdRemovePubKey,
  cmdRemoveTopic,
  cmdResetPubKeys,
  cmdResetTopics,
  cmdSetC2Key,
  cmdSetIdKey,
  cmdSetPubKey,
  cmdSetTopicKey,
  commandKeyForClient,
  commandKeyFromClient,
  concatBytes,
  controlTopic,
  currentTopicKeys,
  decodeClientState,
  deriveSymKey,
  E4Client,
  type E4ErrorCode,
  ed25519KeyFromSeed,
  ed25519PublicKey,
  ed25519PublicKeyObject,
  ed25519Verify,
  encodeClientState,
  encodeCommand,
  JsonFileClientStore,
  MemoryClientStore,
  PK_OVERHEAD,
  protectCommand,
  randomCurve25519KeyPair,
  randomEd25519Key,
  randomSymKey,
  readInt64LE,
  protectSymKeyAt,
  SK_OVERHEAD,
  toHex,
  topicHash,
  transitionSlotHash,
  unprotectSymKey,
  writeUint64LE,
  type Clock,
  type ClientState,
  type PubKeyMaterial,
  type UnprotectResult,
} from '../index.ts';
import { assertBytes, manualClock, rejectsE4, sequentialBytes, throwsE4, tick } from './support.ts';

/** 2023-11-14T22:13:20Z, a whole second. */
const T0 = 1_700_000_000_000;
const utf8 = new TextEncoder();

/** A device and the key its C2 protects commands with. */
interface Device {
  readonly client: E4Client;
  commandKey: Uint8Array;
  /** PK devices: the Go-format Ed25519 key. */
  edKey?: Uint8Array;
}

async function skDevice(name: string, clock: Clock, store?: MemoryClientStore): Promise<Device> {
  const key = randomSymKey();
  const client = await E4Client.createSymmetric(
    { name },
    { key },
    store === undefined ? { clock } : { clock, store },
  );
  return { client, commandKey: key };
}

interface C2 {
  privateKey: Uint8Array;
  publicKey: Uint8Array;
}

async function pkDevice(name: string, clock: Clock, c2: C2): Promise<Device> {
  const edKey = randomEd25519Key();
  const client = await E4Client.createPublicKey({ name }, { privateKey: edKey }, c2.publicKey, {
    clock,
  });
  return { client, edKey, commandKey: commandKeyForClient(c2.privateKey, ed25519PublicKey(edKey)) };
}

/** What the C2 does: protects a command with the device's command key and delivers it. */
function send(device: Device, command: Uint8Array, clock: Clock): Promise<UnprotectResult> {
  return device.client.unprotect(
    protectCommand(command, device.commandKey, clock),
    device.client.receivingTopic,
  );
}

/** Delivers a command that must fail with `code`, and checks the state is the same object. */
async function refused(
  device: Device,
  message: Uint8Array,
  code: E4ErrorCode,
  topic = device.client.receivingTopic,
): Promise<void> {
  const stateBefore = device.client.state;
  const saved = encodeClientState(stateBefore);
  await rejectsE4(device.client.unprotect(message, topic), code);
  assert.equal(device.client.state, stateBefore, 'state must be the same object');
  assert.equal(encodeClientState(device.client.state), saved);
}

async function receive(device: Device, message: Uint8Array, topic: string): Promise<Uint8Array> {
  const result = await device.client.unprotect(message, topic);
  assert.equal(result.kind, 'message');
  return result.payload;
}

function pkMaterial(state: ClientState): PubKeyMaterial {
  const material = state.keyMaterial;
  assert.equal(material.mode, 'public-key');
  return material;
}

void describe('SK clients end to end', () => {
  void it('two devices exchange messages once the C2 sent them the topic key', async () => {
    const { clock } = manualClock(T0);
    const a = await skDevice('sk-a', clock);
    const b = await skDevice('sk-b', clock);
    const topic = 'fleet/room-1';
    const key = randomSymKey();

    throwsE4(() => a.client.protectMessage(sequentialBytes(4), topic), 'TopicKeyNotFound');
    for (const device of [a, b]) {
      const result = await send(device, cmdSetTopicKey(key, topic), clock);
      assert.equal(result.kind, 'command');
      assert.equal(result.command.type, 'SetTopicKey');
      assertBytes(result.command.key, key);
      assertBytes(result.command.topicHash, topicHash(topic));
    }
    assertBytes(
      currentTopicKeys(b.client.state).get(toHex(topicHash(topic))) ?? new Uint8Array(0),
      key,
    );

    const payload = utf8.encode('temperature=21.5');
    const message = a.client.protectMessage(payload, topic);
    assert.equal(message.length, payload.length + SK_OVERHEAD);
    assertBytes(unprotectSymKey(message, key, clock), payload); // a plain SK message
    assertBytes(await receive(b, message, topic), payload);
    assertBytes(await receive(a, b.client.protectMessage(payload, topic), topic), payload);
    assertBytes(a.client.unprotectMessage(message, topic), payload);

    // Another topic has no key; the same message there is refused.
    await rejectsE4(b.client.unprotect(message, 'fleet/room-2'), 'TopicKeyNotFound');
  });

  void it('keeps working on more topics than its topic-hash cache holds', async () => {
    const { clock } = manualClock(T0);
    const a = await skDevice('sk-many', clock);
    const key = randomSymKey();
    const topics = Array.from({ length: 1100 }, (_, i) => `fleet/many/${i}`);
    for (const topic of [topics[0] ?? '', topics[1099] ?? '']) {
      await send(a, cmdSetTopicKey(key, topic), clock);
    }
    // Touch every topic: the cache fills, is cleared, and must still give the right hashes.
    for (const topic of topics) {
      if (topic === topics[0] || topic === topics[1099]) continue;
      throwsE4(() => a.client.protectMessage(sequentialBytes(1), topic), 'TopicKeyNotFound');
    }
    for (const topic of [topics[0] ?? '', topics[1099] ?? '']) {
      const message = a.client.protectMessage(sequentialBytes(3), topic);
      assertBytes(a.client.unprotectMessage(message, topic), sequentialBytes(3));
      assertBytes(unprotectSymKey(message, key, clock), sequentialBytes(3));
    }
  });

  void it('key transition: the previous key works for 3600 s after the change, then not', async () => {
    const time = manualClock(T0);
    const { clock } = time;
    const topic = 'fleet/transition';
    const oldKey = randomSymKey();
    const newKey = randomSymKey();
    const sender = await skDevice('sender', clock); // never gets the new key
    const current = await skDevice('current', clock); // gets it at the same time as the receiver
    const receiver = await skDevice('receiver', clock);
    for (const d of [sender, current, receiver])
      await send(d, cmdSetTopicKey(oldKey, topic), clock);

    time.now = T0 + 10_000;
    const changedAt = BigInt((T0 + 10_000) / 1000);
    for (const d of [current, receiver]) await send(d, cmdSetTopicKey(newKey, topic), clock);
    const slot = toHex(transitionSlotHash(topicHash(topic)));
    assertBytes(
      receiver.client.state.topicKeys.get(slot) ?? new Uint8Array(0),
      concatBytes(oldKey, writeUint64LE(changedAt)),
    );
    assertBytes(
      receiver.client.state.topicKeys.get(toHex(topicHash(topic))) ?? new Uint8Array(0),
      newKey,
    );

    const p = sequentialBytes(9);
    const at = (ms: number): [Uint8Array, Uint8Array] => {
      time.now = ms;
      return [sender.client.protectMessage(p, topic), current.client.protectMessage(p, topic)];
    };

    let [viaOld, viaNew] = at(T0 + 10_000);
    assertBytes(await receive(receiver, viaOld, topic), p);
    assertBytes(await receive(receiver, viaNew, topic), p);

    [viaOld, viaNew] = at(T0 + 10_000 + 3_600_000); // exactly 3600 s later
    assertBytes(await receive(receiver, viaOld, topic), p);
    assertBytes(await receive(receiver, viaNew, topic), p);

    [viaOld, viaNew] = at(T0 + 10_000 + 3_600_001); // one millisecond too late
    await rejectsE4(receiver.client.unprotect(viaOld, topic), 'TimestampTooOld');
    assertBytes(await receive(receiver, viaNew, topic), p);

    [viaOld, viaNew] = at(T0 + 10_000 + 7_200_000);
    await rejectsE4(receiver.client.unprotect(viaOld, topic), 'TimestampTooOld');
    assertBytes(await receive(receiver, viaNew, topic), p);
    // Only an authentication failure falls back to the previous key: other errors of the current
    // key are reported as they are, even once the transition has expired.
    const future = protectSymKeyAt(p, newKey, BigInt((T0 + 10_000 + 7_205_000) / 1000));
    await rejectsE4(receiver.client.unprotect(future, topic), 'TimestampInFuture');
  });

  void it('prepared topic keys follow every command: new keys at once, removed keys gone', async () => {
    const time = manualClock(T0);
    const { clock } = time;
    const [a, b] = ['fleet/prepared-a', 'fleet/prepared-b'];
    const [keyA, keyB1, keyB2] = [randomSymKey(), randomSymKey(), randomSymKey()];
    const receiver = await skDevice('receiver', clock);
    await send(receiver, cmdSetTopicKey(keyA, a), clock);
    await send(receiver, cmdSetTopicKey(keyB1, b), clock);
    const p = sequentialBytes(12);
    const under = (key: Uint8Array): Uint8Array =>
      protectSymKeyAt(p, key, BigInt(Math.floor(time.now / 1000)));
    // b's key is prepared by this first message, then survives a command for a.
    assertBytes(await receive(receiver, under(keyB1), b), p);
    await send(receiver, cmdSetTopicKey(randomSymKey(), a), clock);
    assertBytes(await receive(receiver, under(keyB1), b), p);
    // A new key for b is used for the very next message (a stale prepared key would fail it).
    time.now += 1000;
    await send(receiver, cmdSetTopicKey(keyB2, b), clock);
    assertBytes(await receive(receiver, under(keyB2), b), p);
    // Removed: nothing prepared is left to decrypt with.
    await send(receiver, cmdRemoveTopic(b), clock);
    await rejectsE4(receiver.client.unprotect(under(keyB2), b), 'TopicKeyNotFound');
    await send(receiver, cmdSetTopicKey(keyB1, b), clock);
    assertBytes(await receive(receiver, under(keyB1), b), p);
    await send(receiver, cmdResetTopics(), clock);
    await rejectsE4(receiver.client.unprotect(under(keyB1), b), 'TopicKeyNotFound');
  });

  void it('resending the current key keeps the earlier transition; a third key replaces it', async () => {
    const time = manualClock(T0);
    const { clock } = time;
    const topic = 't';
    const [k1, k2, k3] = [randomSymKey(), randomSymKey(), randomSymKey()];
    const onK1 = await skDevice('on-k1', clock);
    const onK2 = await skDevice('on-k2', clock);
    const receiver = await skDevice('rx', clock);
    await send(onK1, cmdSetTopicKey(k1, topic), clock);
    await send(onK2, cmdSetTopicKey(k2, topic), clock);
    await send(receiver, cmdSetTopicKey(k1, topic), clock);
    await send(receiver, cmdSetTopicKey(k2, topic), clock); // transition k1 at T0

    time.now = T0 + 1_000_000;
    const stateBefore = receiver.client.state;
    await send(receiver, cmdSetTopicKey(k2, topic), clock); // same key again: no new transition
    assert.deepEqual(receiver.client.state.topicKeys, stateBefore.topicKeys);

    time.now = T0 + 3_600_000;
    assertBytes(
      await receive(receiver, onK1.client.protectMessage(sequentialBytes(2), topic), topic),
      sequentialBytes(2),
    );
    time.now = T0 + 3_601_000; // 3600 s after the first change, not after the resend
    await rejectsE4(
      receiver.client.unprotect(onK1.client.protectMessage(sequentialBytes(2), topic), topic),
      'TimestampTooOld',
    );

    await send(receiver, cmdSetTopicKey(k3, topic), clock); // transition is now k2
    await rejectsE4(
      receiver.client.unprotect(onK1.client.protectMessage(sequentialBytes(2), topic), topic),
      'NotAuthentic',
    );
    assertBytes(
      await receive(receiver, onK2.client.protectMessage(sequentialBytes(3), topic), topic),
      sequentialBytes(3),
    );
  });

  void it('RemoveTopic clears the key and its transition key; ResetTopics clears all', async () => {
    const { clock } = manualClock(T0);
    const device = await skDevice('remover', clock);
    const peer = await skDevice('peer', clock);
    const [k1, k2, k3] = [randomSymKey(), randomSymKey(), randomSymKey()];
    await send(peer, cmdSetTopicKey(k1, 'a'), clock);
    await send(device, cmdSetTopicKey(k1, 'a'), clock);
    await send(device, cmdSetTopicKey(k2, 'a'), clock);
    await send(device, cmdSetTopicKey(k3, 'b'), clock);
    const oldMessage = peer.client.protectMessage(sequentialBytes(5), 'a');
    assertBytes(await receive(device, oldMessage, 'a'), sequentialBytes(5));
    assert.equal(device.client.state.topicKeys.size, 3);

    await send(device, cmdRemoveTopic('a'), clock);
    const keys = device.client.state.topicKeys;
    assert.deepEqual([...keys.keys()], [toHex(topicHash('b'))]);
    await rejectsE4(device.client.unprotect(oldMessage, 'a'), 'TopicKeyNotFound');
    throwsE4(() => device.client.protectMessage(sequentialBytes(1), 'a'), 'TopicKeyNotFound');
    assert.equal(device.client.protectMessage(sequentialBytes(1), 'b').length, 1 + SK_OVERHEAD);

    // Removing a topic the device does not have is not an error.
    const result = await send(device, cmdRemoveTopic('never-set'), clock);
    assert.equal(result.kind, 'command');

    await send(device, cmdResetTopics(), clock);
    assert.equal(device.client.state.topicKeys.size, 0);
    throwsE4(() => device.client.protectMessage(sequentialBytes(1), 'b'), 'TopicKeyNotFound');
  });

  void it('SetIDKey changes the command key', async () => {
    const { clock } = manualClock(T0);
    const device = await skDevice('rekeyed', clock);
    const oldKey = device.commandKey;
    const newKey = randomSymKey();
    await send(device, cmdSetIdKey(newKey), clock);
    const material = device.client.state.keyMaterial;
    assert.ok(material.mode === 'symmetric');
    assertBytes(material.key, newKey);

    await refused(
      device,
      protectCommand(cmdSetTopicKey(randomSymKey(), 'x'), oldKey, clock),
      'NotAuthentic',
    );
    device.commandKey = newKey;
    await send(device, cmdSetTopicKey(randomSymKey(), 'x'), clock);
    assert.equal(device.client.state.topicKeys.size, 1);

    // A zero key or an Ed25519-sized key is refused in SK mode.
    await refused(
      device,
      protectCommand(encodeCommand({ type: 'SetIDKey', key: new Uint8Array(32) }), newKey, clock),
      'InvalidKey',
    );
    await refused(
      device,
      protectCommand(cmdSetIdKey(randomEd25519Key()), newKey, clock),
      'InvalidKey',
    );
  });

  void it('failed commands leave the state identical', async () => {
    const time = manualClock(T0 + 500);
    const { clock } = time;
    const device = await skDevice('robust', clock);
    const key = device.commandKey;
    await send(device, cmdSetTopicKey(randomSymKey(), 'kept'), clock);
    const good = cmdSetTopicKey(randomSymKey(), 'other');

    await refused(device, protectCommand(good, randomSymKey(), clock), 'NotAuthentic');
    time.now = T0 + 700_000;
    await refused(
      device,
      protectCommand(good, key, () => T0),
      'TimestampTooOld',
    );
    await refused(
      device,
      protectCommand(good, key, () => T0 + 800_000),
      'TimestampInFuture',
    );
    await refused(device, protectCommand(good.subarray(0, 40), key, clock), 'InvalidCommandLength');
    await refused(device, protectCommand(Uint8Array.of(9, 1, 2), key, clock), 'InvalidCommand');
    await refused(device, protectCommand(new Uint8Array(0), key, clock), 'TooShortCiphertext');
    await refused(
      device,
      protectCommand(
        encodeCommand({ type: 'SetTopicKey', key: new Uint8Array(32), topicHash: topicHash('z') }),
        key,
        clock,
      ),
      'InvalidKey',
    );
    await refused(device, sequentialBytes(3), 'TooShortCiphertext');
    assert.equal(device.client.state.topicKeys.size, 1);
  });

  void it('controlTopic is e4/ and the hex of a 16-byte id; any other length is InvalidID', () => {
    const id = sequentialBytes(16);
    assert.equal(controlTopic(id), `e4/${toHex(id)}`);
    // Such a topic would name no client: every client of this library has a 16-byte id.
    for (const length of [0, 1, 15, 17, 32]) {
      throwsE4(() => controlTopic(new Uint8Array(length).fill(1)), 'InvalidID', `length ${length}`);
    }
  });

  void it('a custom receiving topic takes commands; e4/<id> is then a data topic', async () => {
    const { clock } = manualClock(T0);
    const key = randomSymKey();
    const client = await E4Client.createSymmetric(
      { name: 'custom' },
      { key },
      { clock, receivingTopic: 'ctl/custom' },
    );
    assert.equal(client.receivingTopic, 'ctl/custom');
    const device: Device = { client, commandKey: key };
    await send(device, cmdSetTopicKey(randomSymKey(), 'data'), clock);
    assert.equal(client.state.topicKeys.size, 1);
    await refused(
      device,
      protectCommand(cmdResetTopics(), key, clock),
      'TopicKeyNotFound',
      controlTopic(client.id),
    );
  });

  void it('an empty receiving topic is refused at creation, as load would refuse it', async () => {
    const store = new TestStore();
    await rejectsE4(
      E4Client.createSymmetric(
        { name: 'no-topic' },
        { key: randomSymKey() },
        {
          store,
          receivingTopic: '',
        },
      ),
      'InvalidTopic',
    );
    const c2 = randomCurve25519KeyPair();
    await rejectsE4(
      E4Client.createPublicKey(
        { name: 'no-topic' },
        { privateKey: randomEd25519Key() },
        c2.publicKey,
        {
          store,
          receivingTopic: '',
        },
      ),
      'InvalidTopic',
    );
    assert.deepEqual(store.saved, [], 'nothing saved');
  });

  void it('load takes a receivingTopic option: it replaces the saved topic and is saved', async () => {
    const { clock } = manualClock(T0);
    const store = new TestStore();
    const key = randomSymKey();
    const created = await E4Client.createSymmetric({ name: 'moved' }, { key }, { clock, store });
    const client = await E4Client.load(store, { clock, receivingTopic: 'ctl/moved' });
    assert.equal(client.receivingTopic, 'ctl/moved');
    assert.equal(store.saved.length, 2, 'the new topic is saved at once');
    const device: Device = { client, commandKey: key };
    await send(device, cmdSetTopicKey(randomSymKey(), 'data'), clock);
    await refused(
      device,
      protectCommand(cmdResetTopics(), key, clock),
      'TopicKeyNotFound',
      created.receivingTopic,
    );
    assert.equal((await E4Client.load(store, { clock })).receivingTopic, 'ctl/moved');

    // The same topic saves nothing; an empty one is refused and leaves the store alone.
    await E4Client.load(store, { clock, receivingTopic: 'ctl/moved' });
    assert.equal(store.saved.length, 3);
    await rejectsE4(E4Client.load(store, { clock, receivingTopic: '' }), 'InvalidTopic');
    assert.equal(store.saved.length, 3);
  });

  void it('state is a copy: changing it changes neither the client nor what it saves', async () => {
    const { clock } = manualClock(T0);
    const store = new TestStore();
    const device = await skDevice('copied', clock, store);
    const topicKey = randomSymKey();
    await send(device, cmdSetTopicKey(topicKey, 't'), clock);
    const state = device.client.state;
    assert.equal(device.client.state, state, 'the same copy while nothing changes');
    assert.ok(Object.isFrozen(state) && Object.isFrozen(state.keyMaterial));
    assert.equal(state.keyMaterial.mode, 'symmetric');
    state.keyMaterial.key.fill(7);
    state.id.fill(7);
    (state.topicKeys as Map<string, Uint8Array>).get(toHex(topicHash('t')))?.fill(7);
    (state.topicKeys as Map<string, Uint8Array>).clear();

    // The client still encrypts under the topic key, takes commands under the identity key,
    // and saves both unchanged.
    const peer = await skDevice('copied-peer', clock);
    await send(peer, cmdSetTopicKey(topicKey, 't'), clock);
    const message = device.client.protectMessage(sequentialBytes(2), 't');
    assertBytes(await receive(peer, message, 't'), sequentialBytes(2));
    await send(device, cmdSetTopicKey(randomSymKey(), 'u'), clock);
    const saved = decodeClientState(store.saved.at(-1) ?? '');
    assertBytes(saved.id, clientIdFromName('copied'));
    assert.deepEqual(saved.keyMaterial, { mode: 'symmetric', key: device.commandKey });
    assert.equal(saved.topicKeys.size, 2);
    assertBytes(saved.topicKeys.get(toHex(topicHash('t'))) ?? new Uint8Array(0), topicKey);
    assert.deepEqual(device.client.state.topicKeys, saved.topicKeys, 'a new copy of new keys');
    // A command that leaves the key material alone keeps its copy (callers compare with ===).
    const { keyMaterial, topicKeys } = device.client.state;
    await send(device, cmdRemoveTopic('u'), clock);
    assert.equal(device.client.state.keyMaterial, keyMaterial);
    assert.notEqual(device.client.state.topicKeys, topicKeys);
    assert.equal(device.client.state.topicKeys.size, 1);
  });

  void it('a command is read on entry: the caller may reuse its buffer at once', async () => {
    const { clock } = manualClock(T0);
    const device = await skDevice('reused-buffer', clock);
    const rx = new Uint8Array(256); // a receive buffer reused for every message
    const wires = ['a', 'b'].map((t) =>
      protectCommand(cmdSetTopicKey(randomSymKey(), t), device.commandKey, clock),
    );
    const pending = wires.map((wire) => {
      rx.set(wire);
      const result = device.client.unprotect(
        rx.subarray(0, wire.length),
        device.client.receivingTopic,
      );
      rx.fill(0); // the next read overwrites it before the command had its turn
      return result;
    });
    const results = await Promise.all(pending);
    assert.deepEqual(
      results.map((r) => r.kind),
      ['command', 'command'],
    );
    assert.equal(device.client.state.topicKeys.size, 2);
  });

  void it('creation: ids, names, random ids and validation', async () => {
    const key = randomSymKey();
    const named = await E4Client.createSymmetric({ name: 'device-7' }, { key });
    assertBytes(named.id, clientIdFromName('device-7'));
    assert.equal(named.receivingTopic, controlTopic(clientIdFromName('device-7')));
    assert.equal(named.mode, 'symmetric');
    assert.equal(named.publicKey, undefined);

    const id = sequentialBytes(16);
    assertBytes((await E4Client.createSymmetric({ id }, { key })).id, id);
    const random = await E4Client.createSymmetric(undefined, { key });
    assert.equal(random.id.length, 16);
    assert.equal(random.receivingTopic, `e4/${toHex(random.id)}`);
    assert.notEqual(
      toHex(random.id),
      toHex((await E4Client.createSymmetric(undefined, { key })).id),
    );

    // The id getter returns a copy.
    random.id.fill(0);
    assert.notEqual(toHex(random.id), toHex(new Uint8Array(16)));

    await rejectsE4(E4Client.createSymmetric({ id: new Uint8Array(15) }, { key }), 'InvalidID');

    // A name and an id together must agree (the id is the name's hash), as the reference C2
    // requires of such a pair; the name used to win silently, whatever the id.
    const agreeing = { name: 'device-7', id: clientIdFromName('device-7') };
    assertBytes((await E4Client.createSymmetric(agreeing, { key })).id, agreeing.id);
    const mismatch = await rejectsE4(
      E4Client.createSymmetric({ name: 'device-7', id }, { key }),
      'InvalidID',
    );
    assert.equal(
      mismatch.message,
      'inconsistent name and client ID: the ID is not the hash of the name',
    );
    await rejectsE4(
      E4Client.createPublicKey(
        { name: 'device-7', id: new Uint8Array(15) },
        { privateKey: randomEd25519Key() },
        randomCurve25519KeyPair().publicKey,
      ),
      'InvalidID',
    );
    await rejectsE4(
      E4Client.createSymmetric({ name: '', id: agreeing.id }, { key }),
      'InvalidName',
    );
    await rejectsE4(
      E4Client.createSymmetric({ name: 'x' }, { key: new Uint8Array(32) }),
      'InvalidKey',
    );
    await rejectsE4(
      E4Client.createSymmetric({ name: 'x' }, { key: new Uint8Array(16).fill(1) }),
      'InvalidKey',
    );
    await rejectsE4(
      E4Client.createSymmetric({ name: 'x' }, { password: 'too short' }),
      'InvalidPassword',
    );
  });

  void it('a password derives the same key as deriveSymKey (Argon2i, twice in this file)', async () => {
    const password = 'correct horse battery staple';
    const client = await E4Client.createSymmetric({ name: 'pw' }, { password });
    const material = client.state.keyMaterial;
    assert.ok(material.mode === 'symmetric');
    assertBytes(material.key, deriveSymKey(password));
  });
});

void describe('PK clients end to end', () => {
  void it('C2 and device agree on the command key; devices talk once SetPubKey was sent', async () => {
    const { clock } = manualClock(T0);
    const c2 = randomCurve25519KeyPair();
    const a = await pkDevice('pk-a', clock, c2);
    const b = await pkDevice('pk-b', clock, c2);
    assert.ok(a.edKey !== undefined);
    assertBytes(a.commandKey, commandKeyFromClient(a.edKey, c2.publicKey));
    assert.equal(a.client.mode, 'public-key');
    assertBytes(a.client.publicKey ?? new Uint8Array(0), ed25519PublicKey(a.edKey));

    const topic = 'fleet/pk';
    const key = randomSymKey();
    for (const d of [a, b]) await send(d, cmdSetTopicKey(key, topic), clock);

    const payload = utf8.encode('{"door":"open"}');
    const message = a.client.protectMessage(payload, topic);
    assert.equal(message.length, payload.length + PK_OVERHEAD);
    assertBytes(message.subarray(8, 24), clientIdFromName('pk-a'));
    const signed = message.subarray(0, message.length - 64);
    assert.ok(
      ed25519Verify(
        ed25519PublicKeyObject(ed25519PublicKey(a.edKey)),
        signed,
        message.subarray(message.length - 64),
      ),
    );

    await rejectsE4(b.client.unprotect(message, topic), 'PubKeyNotFound');
    await send(b, cmdSetPubKey(ed25519PublicKey(a.edKey), 'pk-a'), clock);
    assertBytes(
      pkMaterial(b.client.state).pubKeys.get(toHex(clientIdFromName('pk-a'))) ?? new Uint8Array(0),
      ed25519PublicKey(a.edKey),
    );
    assertBytes(await receive(b, message, topic), payload);
    // A does not know B: B's messages are refused by A until the C2 says otherwise.
    await rejectsE4(
      a.client.unprotect(b.client.protectMessage(payload, topic), topic),
      'PubKeyNotFound',
    );
    // A registered under another name is someone else: its id does not match.
    await send(a, cmdSetPubKey(b.client.publicKey ?? new Uint8Array(0), 'not-pk-b'), clock);
    await rejectsE4(
      a.client.unprotect(b.client.protectMessage(payload, topic), topic),
      'PubKeyNotFound',
    );
    // B's key registered as pk-b's id but with A's public key: the signature fails.
    await send(a, cmdSetPubKey(ed25519PublicKey(a.edKey), 'pk-b'), clock);
    await rejectsE4(
      a.client.unprotect(b.client.protectMessage(payload, topic), topic),
      'InvalidSignature',
    );
  });

  void it('RemovePubKey, unknown ids and ResetPubKeys', async () => {
    const { clock } = manualClock(T0);
    const c2 = randomCurve25519KeyPair();
    const a = await pkDevice('rm-a', clock, c2);
    const b = await pkDevice('rm-b', clock, c2);
    const topic = 'x';
    const key = randomSymKey();
    for (const d of [a, b]) await send(d, cmdSetTopicKey(key, topic), clock);
    const pubA = a.client.publicKey ?? new Uint8Array(0);
    await send(b, cmdSetPubKey(pubA, 'rm-a'), clock);
    await send(b, cmdSetPubKey(ed25519PublicKey(randomEd25519Key()), 'someone'), clock);
    assert.equal(pkMaterial(b.client.state).pubKeys.size, 2);
    const message = a.client.protectMessage(sequentialBytes(6), topic);
    assertBytes(await receive(b, message, topic), sequentialBytes(6));

    await send(b, cmdRemovePubKey('rm-a'), clock);
    assert.equal(pkMaterial(b.client.state).pubKeys.size, 1);
    await rejectsE4(b.client.unprotect(message, topic), 'PubKeyNotFound');
    await refused(
      b,
      protectCommand(cmdRemovePubKey('rm-a'), b.commandKey, clock),
      'UnknownPubKeyId',
    );

    await send(b, cmdSetPubKey(pubA, 'rm-a'), clock);
    assertBytes(await receive(b, message, topic), sequentialBytes(6));
    await send(b, cmdResetPubKeys(), clock);
    assert.equal(pkMaterial(b.client.state).pubKeys.size, 0);
    await rejectsE4(b.client.unprotect(message, topic), 'PubKeyNotFound');
  });

  void it('an all-zero SetPubKey is acknowledged but ignored, as e4go does', async () => {
    const { clock } = manualClock(T0);
    const device = await pkDevice('zero', clock, randomCurve25519KeyPair());
    const stateBefore = device.client.state;
    const command = encodeCommand({
      type: 'SetPubKey',
      publicKey: new Uint8Array(32),
      id: clientIdFromName('p'),
    });
    const result = await send(device, command, clock);
    assert.equal(result.kind, 'command');
    assert.equal(device.client.state, stateBefore);
    assert.equal(pkMaterial(device.client.state).pubKeys.size, 0);
  });

  void it('key transition in PK mode', async () => {
    const time = manualClock(T0);
    const { clock } = time;
    const c2 = randomCurve25519KeyPair();
    const sender = await pkDevice('pk-sender', clock, c2);
    const receiver = await pkDevice('pk-receiver', clock, c2);
    const topic = 'pk/transition';
    const oldKey = randomSymKey();
    await send(sender, cmdSetTopicKey(oldKey, topic), clock);
    await send(receiver, cmdSetTopicKey(oldKey, topic), clock);
    await send(
      receiver,
      cmdSetPubKey(sender.client.publicKey ?? new Uint8Array(0), 'pk-sender'),
      clock,
    );
    await send(receiver, cmdSetTopicKey(randomSymKey(), topic), clock);

    time.now = T0 + 3_600_000;
    assertBytes(
      await receive(receiver, sender.client.protectMessage(sequentialBytes(8), topic), topic),
      sequentialBytes(8),
    );
    time.now = T0 + 3_601_000;
    await rejectsE4(
      receiver.client.unprotect(sender.client.protectMessage(sequentialBytes(8), topic), topic),
      'TimestampTooOld',
    );
  });

  void it('SetIDKey replaces the identity: command key, signer and public key', async () => {
    const { clock } = manualClock(T0);
    const c2 = randomCurve25519KeyPair();
    const device = await pkDevice('pk-rekey', clock, c2);
    const peer = await pkDevice('pk-peer', clock, c2);
    const topic = 'room';
    const key = randomSymKey();
    for (const d of [device, peer]) await send(d, cmdSetTopicKey(key, topic), clock);
    await send(peer, cmdSetPubKey(device.client.publicKey ?? new Uint8Array(0), 'pk-rekey'), clock);

    // Refused: a 64-byte key whose public half is not its seed's (built by hand: cmdSetIdKey
    // refuses it too), and a 32-byte key.
    const mismatched = concatBytes(
      randomEd25519Key().subarray(0, 32),
      randomEd25519Key().subarray(32),
    );
    await refused(
      device,
      protectCommand(
        encodeCommand({ type: 'SetIDKey', key: mismatched }),
        device.commandKey,
        clock,
      ),
      'InvalidKey',
    );
    await refused(
      device,
      protectCommand(cmdSetIdKey(randomSymKey()), device.commandKey, clock),
      'InvalidKey',
    );

    const newEdKey = randomEd25519Key();
    const oldCommandKey = device.commandKey;
    await send(device, cmdSetIdKey(newEdKey), clock);
    assertBytes(device.client.publicKey ?? new Uint8Array(0), ed25519PublicKey(newEdKey));
    assertBytes(pkMaterial(device.client.state).privateKey, newEdKey);

    await refused(device, protectCommand(cmdResetTopics(), oldCommandKey, clock), 'NotAuthentic');
    device.commandKey = commandKeyForClient(c2.privateKey, ed25519PublicKey(newEdKey));
    assertBytes(device.commandKey, commandKeyFromClient(newEdKey, c2.publicKey));

    // The peer still holds the old public key: signatures by the new key fail until updated.
    const message = device.client.protectMessage(sequentialBytes(4), topic);
    await rejectsE4(peer.client.unprotect(message, topic), 'InvalidSignature');
    await send(peer, cmdSetPubKey(ed25519PublicKey(newEdKey), 'pk-rekey'), clock);
    assertBytes(await receive(peer, message, topic), sequentialBytes(4));

    await send(device, cmdResetTopics(), clock);
    assert.equal(device.client.state.topicKeys.size, 0);
  });

  void it('SetC2Key switches the command key; a low-order C2 key is refused', async () => {
    const { clock } = manualClock(T0);
    const c2 = randomCurve25519KeyPair();
    const device = await pkDevice('pk-c2', clock, c2);
    assert.ok(device.edKey !== undefined);
    const lowOrder = new Uint8Array(32);
    lowOrder[0] = 1;
    await refused(
      device,
      protectCommand(cmdSetC2Key(lowOrder), device.commandKey, clock),
      'InvalidKey',
    );
    await refused(
      device,
      protectCommand(
        encodeCommand({ type: 'SetC2Key', publicKey: new Uint8Array(32) }),
        device.commandKey,
        clock,
      ),
      'InvalidKey',
    );

    const next = randomCurve25519KeyPair();
    await send(device, cmdSetC2Key(next.publicKey), clock);
    assertBytes(pkMaterial(device.client.state).c2PublicKey, next.publicKey);
    await refused(
      device,
      protectCommand(cmdResetTopics(), device.commandKey, clock),
      'NotAuthentic',
    );
    device.commandKey = commandKeyForClient(next.privateKey, ed25519PublicKey(device.edKey));
    await send(device, cmdSetTopicKey(randomSymKey(), 'after-c2'), clock);
    assert.equal(device.client.state.topicKeys.size, 1);
  });

  void it('creation validates the C2 key and the private key', async () => {
    const c2 = randomCurve25519KeyPair();
    const edKey = randomEd25519Key();
    const lowOrder = new Uint8Array(32);
    lowOrder[0] = 1;
    await rejectsE4(
      E4Client.createPublicKey({ name: 'p' }, { privateKey: edKey }, new Uint8Array(32)),
      'InvalidKey',
    );
    await rejectsE4(
      E4Client.createPublicKey({ name: 'p' }, { privateKey: edKey }, lowOrder),
      'InvalidKey',
    );
    await rejectsE4(
      E4Client.createPublicKey({ name: 'p' }, { privateKey: edKey }, c2.publicKey.subarray(1)),
      'InvalidKey',
    );
    const mismatched = concatBytes(edKey.subarray(0, 32), randomEd25519Key().subarray(32));
    await rejectsE4(
      E4Client.createPublicKey({ name: 'p' }, { privateKey: mismatched }, c2.publicKey),
      'InvalidKey',
    );
    await rejectsE4(
      E4Client.createPublicKey({ name: 'p' }, { privateKey: edKey.subarray(0, 32) }, c2.publicKey),
      'InvalidKey',
    );
    await rejectsE4(
      E4Client.createPublicKey({ id: new Uint8Array(17) }, { privateKey: edKey }, c2.publicKey),
      'InvalidID',
    );
    const seeded = await E4Client.createPublicKey(
      { name: 'p' },
      { privateKey: ed25519KeyFromSeed(new Uint8Array(32).fill(8)) },
      c2.publicKey,
    );
    assertBytes(
      seeded.publicKey ?? new Uint8Array(0),
      ed25519PublicKey(ed25519KeyFromSeed(new Uint8Array(32).fill(8))),
    );
  });
});

/** A memory store that records every save, can be told to fail, and can be slow. */
class TestStore extends MemoryClientStore {
  readonly saved: string[] = [];
  failure: Error | undefined;
  delays: number[] = [];

  override async save(serialised: string): Promise<void> {
    const delay = this.delays.shift();
    if (delay !== undefined) await tick(delay);
    if (this.failure !== undefined) throw this.failure;
    this.saved.push(serialised);
    await super.save(serialised);
  }
}

void describe('persistence', () => {
  let dir = '';
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'e4-client-test-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  void it('SK state survives E4Client.load from a 0600 file in e4go layout', async () => {
    const time = manualClock(T0);
    const { clock } = time;
    const path = join(dir, 'sk.json');
    const store = new JsonFileClientStore(path);
    assert.equal(await store.load(), undefined);
    const key = randomSymKey();
    const client = await E4Client.createSymmetric({ name: 'persisted' }, { key }, { clock, store });
    assert.equal((await stat(path)).mode & 0o777, 0o600);

    const device: Device = { client, commandKey: key };
    const [k1, k2] = [randomSymKey(), randomSymKey()];
    const peer = await skDevice('peer', clock);
    await send(peer, cmdSetTopicKey(k1, 'a/b'), clock);
    await send(device, cmdSetTopicKey(k1, 'a/b'), clock);
    await send(device, cmdSetTopicKey(k2, 'a/b'), clock);
    assert.equal((await stat(path)).mode & 0o777, 0o600);
    assert.deepEqual(await readdir(dir), ['sk.json'], 'no temporary file left behind');

    const text = await readFile(path, 'utf8');
    assert.ok(text.endsWith('\n'));
    const json = JSON.parse(text) as Record<string, unknown>;
    assert.deepEqual(Object.keys(json).sort(), ['ID', 'Key', 'ReceivingTopic', 'TopicKeys']);
    assert.equal(json['ID'], Buffer.from(clientIdFromName('persisted')).toString('base64'));
    assert.equal(json['ReceivingTopic'], controlTopic(clientIdFromName('persisted')));
    assert.deepEqual(json['Key'], {
      keyType: 0,
      keyData: { Key: Buffer.from(key).toString('base64') },
    });
    const hash = toHex(topicHash('a/b'));
    const slot = toHex(transitionSlotHash(topicHash('a/b')));
    assert.deepEqual(json['TopicKeys'], {
      [hash]: Buffer.from(k2).toString('base64'),
      [slot]: Buffer.from(concatBytes(k1, writeUint64LE(BigInt(T0 / 1000)))).toString('base64'),
    });

    time.now = T0 + 60_000;
    const loaded = await E4Client.load(new JsonFileClientStore(path), { clock });
    assert.deepEqual(loaded.state, client.state);
    assertBytes(loaded.id, client.id);
    assert.equal(loaded.receivingTopic, client.receivingTopic);
    // It decrypts under the current and the transition key, and takes commands.
    assertBytes(
      await receive(
        { client: loaded, commandKey: key },
        peer.client.protectMessage(sequentialBytes(3), 'a/b'),
        'a/b',
      ),
      sequentialBytes(3),
    );
    await send({ client: loaded, commandKey: key }, cmdRemoveTopic('a/b'), clock);
    assert.equal((await E4Client.load(new JsonFileClientStore(path))).state.topicKeys.size, 0);
  });

  void it('PK state survives E4Client.load, with keyType 1 and the peer keys', async () => {
    const { clock } = manualClock(T0);
    const c2 = randomCurve25519KeyPair();
    const edKey = randomEd25519Key();
    const path = join(dir, 'pk.json');
    const store = new JsonFileClientStore(path);
    const client = await E4Client.createPublicKey(
      { name: 'pk-persisted' },
      { privateKey: edKey },
      c2.publicKey,
      { clock, store },
    );
    const device: Device = {
      client,
      edKey,
      commandKey: commandKeyForClient(c2.privateKey, ed25519PublicKey(edKey)),
    };
    const peerPub = ed25519PublicKey(randomEd25519Key());
    await send(device, cmdSetPubKey(peerPub, 'peer'), clock);
    await send(device, cmdSetTopicKey(randomSymKey(), 't'), clock);
    assert.equal((await stat(path)).mode & 0o777, 0o600);

    const json = JSON.parse(await readFile(path, 'utf8')) as { Key: unknown; ID: string };
    const b64 = (bytes: Uint8Array): string => Buffer.from(bytes).toString('base64');
    assert.deepEqual(json.Key, {
      keyType: 1,
      keyData: {
        PrivateKey: b64(edKey),
        SignerID: b64(clientIdFromName('pk-persisted')),
        C2PubKey: b64(c2.publicKey),
        PubKeys: { [toHex(clientIdFromName('peer'))]: b64(peerPub) },
      },
    });
    assert.equal(json.ID, b64(clientIdFromName('pk-persisted')));

    const loaded = await E4Client.load(new JsonFileClientStore(path), { clock });
    assert.deepEqual(loaded.state, client.state);
    assertBytes(loaded.publicKey ?? new Uint8Array(0), ed25519PublicKey(edKey));
    await send({ ...device, client: loaded }, cmdResetPubKeys(), clock);
    assert.equal(pkMaterial(loaded.state).pubKeys.size, 0);
  });

  void it('load refuses an empty store, a corrupt file and unusable keys with InvalidState', async () => {
    await rejectsE4(E4Client.load(new MemoryClientStore()), 'InvalidState');
    await rejectsE4(
      E4Client.load(new JsonFileClientStore(join(dir, 'missing.json'))),
      'InvalidState',
    );
    const corrupt = join(dir, 'corrupt.json');
    await writeFile(corrupt, '{"ID": "AAAA"', { mode: 0o600 });
    await rejectsE4(E4Client.load(new JsonFileClientStore(corrupt)), 'InvalidState');

    // A PK state whose private key's public half does not match its seed.
    const c2 = randomCurve25519KeyPair();
    const good = await E4Client.createPublicKey(
      { name: 'k' },
      { privateKey: randomEd25519Key() },
      c2.publicKey,
    );
    const material = pkMaterial(good.state);
    const bad: ClientState = {
      ...good.state,
      keyMaterial: {
        ...material,
        privateKey: concatBytes(
          material.privateKey.subarray(0, 32),
          randomEd25519Key().subarray(32),
        ),
      },
    };
    const text = encodeClientState(bad);
    assert.equal(decodeClientState(text).keyMaterial.mode, 'public-key'); // decodes...
    await rejectsE4(E4Client.load(new MemoryClientStore(text)), 'InvalidState'); // ...but is unusable

    // A PK state whose SignerID is not its ID.
    const json = JSON.parse(encodeClientState(good.state)) as {
      Key: { keyData: { SignerID: string } };
    };
    json.Key.keyData.SignerID = Buffer.from(sequentialBytes(16)).toString('base64');
    await rejectsE4(E4Client.load(new MemoryClientStore(JSON.stringify(json))), 'InvalidState');
  });

  void it('a state that is not JSON is refused without quoting its text (it holds keys)', async () => {
    const edKey = randomEd25519Key();
    const client = await E4Client.createPublicKey(
      { name: 'quoted' },
      { privateKey: edKey },
      randomCurve25519KeyPair().publicKey,
    );
    const text = encodeClientState(client.state);
    const b64 = Buffer.from(edKey).toString('base64');
    const at = text.indexOf(`"${b64}"`);
    assert.ok(at > 0);
    // `"PrivateKey":x<base64>"`: V8's SyntaxError message quotes the characters after the error.
    const corrupted = `${text.slice(0, at)}x${text.slice(at + 1)}`;
    const decodeErr = throwsE4(() => decodeClientState(corrupted), 'InvalidState');
    const loadErr = await rejectsE4(
      E4Client.load(new MemoryClientStore(corrupted)),
      'InvalidState',
    );
    for (const err of [decodeErr, loadErr]) {
      assert.equal(err.cause, undefined);
      const shown = `${inspect(err, { depth: 10 })} ${JSON.stringify(err)}`;
      for (let i = 0; i + 8 <= b64.length; i++) {
        assert.ok(!shown.includes(b64.slice(i, i + 8)), `private key characters at ${i} quoted`);
      }
    }
  });

  void it('decoding refuses peer public keys that SetPubKey would not store', () => {
    const c2 = randomCurve25519KeyPair();
    const stateWithPeer = (peerKey: Uint8Array): string => {
      const material: PubKeyMaterial = {
        mode: 'public-key',
        privateKey: randomEd25519Key(),
        c2PublicKey: c2.publicKey,
        pubKeys: new Map([[toHex(clientIdFromName('peer')), peerKey]]),
      };
      const id = clientIdFromName('with-peer');
      return encodeClientState({
        id,
        receivingTopic: controlTopic(id),
        topicKeys: new Map(),
        keyMaterial: material,
      });
    };
    const good = ed25519PublicKey(randomEd25519Key());
    assertBytes(
      pkMaterial(decodeClientState(stateWithPeer(good))).pubKeys.get(
        toHex(clientIdFromName('peer')),
      ) ?? new Uint8Array(0),
      good,
    );
    const bad = [good.subarray(0, 5), new Uint8Array(32), concatBytes(good, Uint8Array.of(1))];
    for (const peerKey of bad) {
      const err = throwsE4(() => decodeClientState(stateWithPeer(peerKey)), 'InvalidState');
      assert.match(err.message, new RegExp(toHex(clientIdFromName('peer'))));
      assert.ok(!err.message.includes(Buffer.from(peerKey).toString('base64')));
    }
  });

  void it('a store whose save throws leaves the state unchanged, and the error propagates', async () => {
    const { clock } = manualClock(T0);
    const store = new TestStore();
    const device = await skDevice('failing', clock, store);
    assert.equal(store.saved.length, 1); // the initial state
    const stateBefore = device.client.state;
    const failure = new Error('disk full');
    store.failure = failure;
    const key = randomSymKey();
    await assert.rejects(
      send(device, cmdSetTopicKey(key, 'lost'), clock),
      (err) => err === failure,
    );
    assert.equal(device.client.state, stateBefore);
    throwsE4(() => device.client.protectMessage(sequentialBytes(1), 'lost'), 'TopicKeyNotFound');
    assert.equal(await store.load(), store.saved[0]);

    // A failed save does not block the queue: the next command applies once the store recovers.
    store.failure = undefined;
    await send(device, cmdSetTopicKey(key, 'lost'), clock);
    assert.equal(device.client.protectMessage(sequentialBytes(1), 'lost').length, 1 + SK_OVERHEAD);
    assert.equal(store.saved.length, 2);
    assert.deepEqual(decodeClientState(store.saved[1] ?? ''), device.client.state);

    // Same with a PK identity change: the command key does not move on a failed save.
    const c2 = randomCurve25519KeyPair();
    const pkStore = new TestStore();
    const edKey = randomEd25519Key();
    const pk = await E4Client.createPublicKey(
      { name: 'pk-failing' },
      { privateKey: edKey },
      c2.publicKey,
      { clock, store: pkStore },
    );
    const pkDeviceState = pk.state;
    pkStore.failure = failure;
    const commandKey = commandKeyForClient(c2.privateKey, ed25519PublicKey(edKey));
    await assert.rejects(
      pk.unprotect(
        protectCommand(cmdSetIdKey(randomEd25519Key()), commandKey, clock),
        pk.receivingTopic,
      ),
      (err) => err === failure,
    );
    assert.equal(pk.state, pkDeviceState);
    pkStore.failure = undefined;
    const result = await pk.unprotect(
      protectCommand(cmdResetTopics(), commandKey, clock),
      pk.receivingTopic,
    );
    assert.equal(result.kind, 'command');
  });

  void it('concurrent commands on the control topic are applied and saved in order', async () => {
    const { clock } = manualClock(T0);
    const store = new TestStore();
    const device = await skDevice('concurrent', clock, store);
    const keys = Array.from({ length: 6 }, () => randomSymKey());
    const commands = [
      cmdSetTopicKey(keys[0] ?? randomSymKey(), 'a'),
      cmdSetTopicKey(keys[1] ?? randomSymKey(), 'b'),
      cmdSetTopicKey(keys[2] ?? randomSymKey(), 'a'), // 'a' moves to keys[2], transition keys[0]
      cmdRemoveTopic('b'),
      Uint8Array.of(0xee), // refused in the middle of the batch
      cmdSetTopicKey(keys[3] ?? randomSymKey(), 'c'),
      cmdSetTopicKey(keys[4] ?? randomSymKey(), 'a'), // transition becomes keys[2]
      cmdSetTopicKey(keys[5] ?? randomSymKey(), 'b'),
    ];
    // Later saves finish sooner: without the queue, the order would be reversed.
    store.delays = [25, 20, 15, 10, 5, 1, 0, 0];
    const settled = await Promise.allSettled(commands.map((c) => send(device, c, clock)));
    const kinds = settled.map((s) =>
      s.status === 'fulfilled' ? s.value.kind : (s.reason as { code?: string }).code,
    );
    assert.deepEqual(kinds, [
      'command',
      'command',
      'command',
      'command',
      'InvalidCommand',
      'command',
      'command',
      'command',
    ]);

    const state = device.client.state;
    const current = currentTopicKeys(state);
    assert.deepEqual(
      new Map([...current].map(([k, v]) => [k, toHex(v)])),
      new Map([
        [toHex(topicHash('a')), toHex(keys[4] ?? new Uint8Array(0))],
        [toHex(topicHash('c')), toHex(keys[3] ?? new Uint8Array(0))],
        [toHex(topicHash('b')), toHex(keys[5] ?? new Uint8Array(0))],
      ]),
    );
    const entry =
      state.topicKeys.get(toHex(transitionSlotHash(topicHash('a')))) ?? new Uint8Array(0);
    assertBytes(entry.subarray(0, 32), keys[2] ?? new Uint8Array(0));
    assert.equal(readInt64LE(entry, 32), BigInt(T0 / 1000));

    // One save per applied command, each a prefix of the sequence.
    assert.equal(store.saved.length, 1 + 7);
    const topicsAfter = store.saved.map((s) => [...decodeClientState(s).topicKeys.keys()].sort());
    const h = (t: string): string => toHex(topicHash(t));
    const slotA = toHex(transitionSlotHash(topicHash('a')));
    assert.deepEqual(topicsAfter, [
      [],
      [h('a')],
      [h('a'), h('b')].sort(),
      [h('a'), h('b'), slotA].sort(),
      [h('a'), slotA].sort(),
      [h('a'), h('c'), slotA].sort(),
      [h('a'), h('c'), slotA].sort(),
      [h('a'), h('b'), h('c'), slotA].sort(),
    ]);
    assert.equal(store.saved.at(-1), encodeClientState(state));
  });
});
