// A public-key device's rotation of its own identity key (E4Client.beginOwnKeyRotation): the new
// key is held as pending beside the current one before the C2 learns it, so that every command
// around the switch is applied whichever key the C2 protected it under; promotion by the first
// command under the new key, explicit completion and abandon, restarts mid-rotation, the state
// file (e4go's layout plus one field e4go ignores), receipts, and every misuse.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  cmdRemovePubKey,
  cmdSetC2Key,
  cmdSetIdKey,
  cmdSetPubKey,
  cmdSetTopicKey,
  commandKeyForClient,
  concatBytes,
  decodeClientState,
  E4Client,
  ed25519PublicKey,
  encodeClientState,
  MemoryClientStore,
  openReceipt,
  protectCommand,
  randomCurve25519KeyPair,
  randomEd25519Key,
  randomSymKey,
  toHex,
  topicHash,
  type Clock,
  type PubKeyMaterial,
  type ReceiptOptions,
} from '../index.ts';
import {
  assertBytes,
  loose,
  manualClock,
  rejectsE4,
  sequentialBytes,
  throwsE4,
} from './support.ts';

/** 2023-11-14T22:13:20Z, a whole second. */
const T0 = 1_700_000_000_000;

interface C2 {
  readonly privateKey: Uint8Array;
  readonly publicKey: Uint8Array;
}

/** A store that counts saves and fails them while `failing` is set. */
class CountingStore extends MemoryClientStore {
  saves = 0;
  failing = false;
  override async save(serialised: string): Promise<void> {
    if (this.failing) throw new Error('disk full');
    this.saves++;
    await super.save(serialised);
  }
}

/** A PK device made with `oldKey`, the C2 that serves it, and a way to send it commands. */
async function rotatingDevice(
  options: { readonly store?: MemoryClientStore; readonly receipts?: ReceiptOptions } = {},
): Promise<{
  readonly client: E4Client;
  readonly c2: C2;
  readonly oldKey: Uint8Array;
  readonly newKey: Uint8Array;
  readonly clock: Clock;
  /** The C2 protects `command` for the device's identity key `edKey` and delivers it. */
  readonly send: (command: Uint8Array, edKey: Uint8Array) => ReturnType<E4Client['unprotect']>;
}> {
  const { clock } = manualClock(T0);
  const c2 = randomCurve25519KeyPair();
  const oldKey = randomEd25519Key();
  const client = await E4Client.createPublicKey(
    { name: 'own-key-device' },
    { privateKey: oldKey },
    c2.publicKey,
    { clock, ...options },
  );
  const send = (command: Uint8Array, edKey: Uint8Array): ReturnType<E4Client['unprotect']> =>
    client.unprotect(
      protectCommand(command, commandKeyForClient(c2.privateKey, ed25519PublicKey(edKey)), clock),
      client.receivingTopic,
    );
  return { client, c2, oldKey, newKey: randomEd25519Key(), clock, send };
}

function material(client: E4Client): PubKeyMaterial {
  const m = client.state.keyMaterial;
  assert.equal(m.mode, 'public-key');
  return m;
}

const topicKeyOf = (client: E4Client, topic: string): string | undefined => {
  const key = client.state.topicKeys.get(toHex(topicHash(topic)));
  return key === undefined ? undefined : toHex(key);
};

void describe('own identity key rotation (public-key mode)', () => {
  void it('commands under the current key, then under the new one: all applied, the first under the new key promotes it', async () => {
    const store = new CountingStore();
    const d = await rotatingDevice({ store });
    const registered = await d.client.beginOwnKeyRotation(d.newKey);
    assertBytes(registered, ed25519PublicKey(d.newKey), 'the public key to register');
    assertBytes(d.client.pendingPublicKey ?? new Uint8Array(0), registered);
    assertBytes(d.client.publicKey ?? new Uint8Array(0), ed25519PublicKey(d.oldKey));
    assertBytes(material(d.client).pendingPrivateKey ?? new Uint8Array(0), d.newKey);

    // Still on the way under the key the C2 held before it took the new one.
    const [k1, k2, k3] = [randomSymKey(), randomSymKey(), randomSymKey()];
    await d.send(cmdSetTopicKey(k1, 'a'), d.oldKey);
    assertBytes(material(d.client).privateKey, d.oldKey, 'the current key opened it: no switch');
    assert.notEqual(d.client.pendingPublicKey, undefined);
    // The C2 took the new key: what it sends from then on is under it.
    await d.send(cmdSetTopicKey(k2, 'b'), d.newKey);
    assertBytes(material(d.client).privateKey, d.newKey, 'promoted by the first command under it');
    assert.equal(material(d.client).pendingPrivateKey, undefined);
    assert.equal(d.client.pendingPublicKey, undefined);
    assertBytes(d.client.publicKey ?? new Uint8Array(0), ed25519PublicKey(d.newKey));
    await d.send(cmdSetTopicKey(k3, 'c'), d.newKey);
    assert.deepEqual(
      ['a', 'b', 'c'].map((t) => topicKeyOf(d.client, t)),
      [k1, k2, k3].map(toHex),
    );

    // The promotion was saved with its command (creation, begin, three commands: five saves),
    // in e4go's layout: nothing pending any more.
    assert.equal(store.saves, 5);
    const saved = JSON.parse((await store.load()) ?? '') as Record<string, unknown>;
    assert.deepEqual(Object.keys(saved).sort(), ['ID', 'Key', 'ReceivingTopic', 'TopicKeys']);
    const reloaded = await E4Client.load(store, { clock: d.clock });
    assert.deepEqual(reloaded.state, d.client.state);
  });

  void it('the other order: once the new key was used, a late command under the dropped key is refused', async () => {
    const d = await rotatingDevice();
    await d.client.beginOwnKeyRotation(d.newKey);
    await d.send(cmdSetTopicKey(randomSymKey(), 'a'), d.newKey);
    const before = d.client.state;
    // The C2 sends nothing under the previous key after it used the new one (it switched when
    // it took the key); a command that does arrives too late for a key the device dropped.
    await rejectsE4(d.send(cmdSetTopicKey(randomSymKey(), 'b'), d.oldKey), 'NotAuthentic');
    assert.equal(d.client.state, before, 'a refused command changes nothing');
  });

  void it('without a pending key (the rotation begun after the C2 took it), commands under the new key are lost', async () => {
    // What the fix avoids: the device must begin before it registers.
    const d = await rotatingDevice();
    await rejectsE4(d.send(cmdSetTopicKey(randomSymKey(), 'a'), d.newKey), 'NotAuthentic');
    await d.client.beginOwnKeyRotation(d.newKey);
    await d.send(cmdSetTopicKey(randomSymKey(), 'a'), d.newKey);
    assertBytes(material(d.client).privateKey, d.newKey);
  });

  void it('a command refused under the pending key promotes nothing; the next one applied does', async () => {
    const d = await rotatingDevice();
    await d.client.beginOwnKeyRotation(d.newKey);
    const before = d.client.state;
    // Authentic under the new key, but naming a peer the device does not know.
    await rejectsE4(d.send(cmdRemovePubKey('nobody'), d.newKey), 'UnknownPubKeyId');
    assert.equal(d.client.state, before, 'still pending: the state is unchanged after any error');
    await d.send(cmdSetPubKey(ed25519PublicKey(randomEd25519Key()), 'peer'), d.newKey);
    assertBytes(material(d.client).privateKey, d.newKey);
    assert.equal(material(d.client).pubKeys.size, 1);
  });

  void it('a failed save keeps both keys: the command can come again', async () => {
    const store = new CountingStore();
    const d = await rotatingDevice({ store });
    await d.client.beginOwnKeyRotation(d.newKey);
    const before = d.client.state;
    store.failing = true;
    const command = cmdSetTopicKey(randomSymKey(), 'a');
    await assert.rejects(d.send(command, d.newKey), /disk full/);
    assert.equal(d.client.state, before);
    store.failing = false;
    await d.send(command, d.newKey);
    assertBytes(material(d.client).privateKey, d.newKey);
  });

  void it('signs with the current key until the promotion, with the new key after it', async () => {
    const d = await rotatingDevice();
    const peer = await E4Client.createPublicKey(
      { name: 'peer' },
      { privateKey: randomEd25519Key() },
      d.c2.publicKey,
      { clock: d.clock },
    );
    const peerKey = commandKeyForClient(d.c2.privateKey, peer.publicKey ?? new Uint8Array(0));
    const topicKey = randomSymKey();
    const tell = (command: Uint8Array): ReturnType<E4Client['unprotect']> =>
      peer.unprotect(protectCommand(command, peerKey, d.clock), peer.receivingTopic);
    await tell(cmdSetTopicKey(topicKey, 'room'));
    await tell(cmdSetPubKey(ed25519PublicKey(d.oldKey), 'own-key-device'));
    await d.send(cmdSetTopicKey(topicKey, 'room'), d.oldKey);

    await d.client.beginOwnKeyRotation(d.newKey);
    const before = d.client.protectMessage(sequentialBytes(3), 'room');
    assertBytes(peer.unprotectMessage(before, 'room'), sequentialBytes(3), 'the key peers know');

    await d.send(cmdSetTopicKey(topicKey, 'room'), d.newKey); // promotes
    const after = d.client.protectMessage(sequentialBytes(4), 'room');
    throwsE4(() => peer.unprotectMessage(after, 'room'), 'InvalidSignature');
    // The C2 sends peers the new public key once it took it.
    await tell(cmdSetPubKey(ed25519PublicKey(d.newKey), 'own-key-device'));
    assertBytes(peer.unprotectMessage(after, 'room'), sequentialBytes(4));
  });

  void it('completeOwnKeyRotation promotes at once; abandonOwnKeyRotation keeps the current key', async () => {
    const completed = await rotatingDevice();
    await completed.client.beginOwnKeyRotation(completed.newKey);
    await completed.client.completeOwnKeyRotation();
    assertBytes(material(completed.client).privateKey, completed.newKey);
    assert.equal(completed.client.pendingPublicKey, undefined);
    await rejectsE4(
      completed.send(cmdSetTopicKey(randomSymKey(), 'a'), completed.oldKey),
      'NotAuthentic',
    );
    await completed.send(cmdSetTopicKey(randomSymKey(), 'a'), completed.newKey);

    const store = new CountingStore();
    const abandoned = await rotatingDevice({ store });
    await abandoned.client.beginOwnKeyRotation(abandoned.newKey);
    await abandoned.client.abandonOwnKeyRotation();
    assertBytes(material(abandoned.client).privateKey, abandoned.oldKey);
    assert.equal(material(abandoned.client).pendingPrivateKey, undefined);
    await rejectsE4(
      abandoned.send(cmdSetTopicKey(randomSymKey(), 'a'), abandoned.newKey),
      'NotAuthentic',
    );
    await abandoned.send(cmdSetTopicKey(randomSymKey(), 'a'), abandoned.oldKey);
    assert.equal((await store.load())?.includes('PendingPrivateKey'), false);
    // A new rotation can begin, with another key.
    await abandoned.client.beginOwnKeyRotation(randomEd25519Key());
  });

  void it('a restart mid-rotation keeps both keys: commands under either are applied', async () => {
    const store = new CountingStore();
    const d = await rotatingDevice({ store });
    await d.client.beginOwnKeyRotation(d.newKey);
    const text = (await store.load()) ?? '';
    const json = JSON.parse(text) as Record<string, unknown>;
    assert.deepEqual(Object.keys(json), [
      'ID',
      'TopicKeys',
      'Key',
      'ReceivingTopic',
      'PendingPrivateKey',
    ]);
    assert.equal(json['PendingPrivateKey'], Buffer.from(d.newKey).toString('base64'));
    // Without the field the file is exactly the state e4go wrote before the rotation began.
    const { PendingPrivateKey: _pending, ...e4go } = json;
    const wasBefore = await E4Client.load(new MemoryClientStore(`${JSON.stringify(e4go)}\n`));
    assertBytes(material(wasBefore).privateKey, d.oldKey);
    assert.equal(wasBefore.pendingPublicKey, undefined);

    const restarted = await E4Client.load(store, { clock: d.clock });
    assert.deepEqual(restarted.state, d.client.state);
    assertBytes(restarted.pendingPublicKey ?? new Uint8Array(0), ed25519PublicKey(d.newKey));
    // Beginning the same rotation again (a device that replays its rotation) changes nothing.
    const state = restarted.state;
    const saves = store.saves;
    await restarted.beginOwnKeyRotation(d.newKey);
    assert.equal(restarted.state, state);
    assert.equal(store.saves, saves, 'nothing saved');

    const resend = (command: Uint8Array, edKey: Uint8Array): ReturnType<E4Client['unprotect']> =>
      restarted.unprotect(
        protectCommand(
          command,
          commandKeyForClient(d.c2.privateKey, ed25519PublicKey(edKey)),
          d.clock,
        ),
        restarted.receivingTopic,
      );
    await resend(cmdSetTopicKey(randomSymKey(), 'a'), d.oldKey);
    await resend(cmdSetTopicKey(randomSymKey(), 'b'), d.newKey);
    assertBytes(material(restarted).privateKey, d.newKey);
    const promoted = await E4Client.load(store);
    assert.equal(promoted.pendingPublicKey, undefined);
    assertBytes(material(promoted).privateKey, d.newKey);
  });

  void it('SetC2Key moves both command keys; SetIDKey keeps the pending key unless it sends that key', async () => {
    const d = await rotatingDevice();
    await d.client.beginOwnKeyRotation(d.newKey);
    const nextC2 = randomCurve25519KeyPair();
    await d.send(cmdSetC2Key(nextC2.publicKey), d.oldKey);
    assert.notEqual(d.client.pendingPublicKey, undefined, 'SetC2Key keeps the rotation');
    // Under the new C2 key and the device's new key: opened, and promoted.
    await d.client.unprotect(
      protectCommand(
        cmdSetTopicKey(randomSymKey(), 'a'),
        commandKeyForClient(nextC2.privateKey, ed25519PublicKey(d.newKey)),
        d.clock,
      ),
      d.client.receivingTopic,
    );
    assertBytes(material(d.client).privateKey, d.newKey);

    const e = await rotatingDevice();
    await e.client.beginOwnKeyRotation(e.newKey);
    const drawnByC2 = randomEd25519Key();
    await e.send(cmdSetIdKey(drawnByC2), e.oldKey);
    assertBytes(material(e.client).privateKey, drawnByC2);
    assertBytes(material(e.client).pendingPrivateKey ?? new Uint8Array(0), e.newKey);
    await e.send(cmdSetIdKey(e.newKey), drawnByC2);
    assertBytes(material(e.client).privateKey, e.newKey);
    assert.equal(material(e.client).pendingPrivateKey, undefined, 'the pending key is current');
  });

  void it('receipts: under the new key once promoted; a refusal under the pending key is told under it', async () => {
    const sent: Uint8Array[] = [];
    const d = await rotatingDevice({
      receipts: { publish: (_topic, payload) => void sent.push(payload), rejections: true },
    });
    const keyOf = (edKey: Uint8Array): Uint8Array =>
      commandKeyForClient(d.c2.privateKey, ed25519PublicKey(edKey));
    await d.client.beginOwnKeyRotation(d.newKey);
    await rejectsE4(d.send(cmdRemovePubKey('nobody'), d.newKey), 'UnknownPubKeyId');
    const refused = openReceipt(sent.at(-1) ?? new Uint8Array(0), d.client.id, [
      keyOf(d.oldKey),
      keyOf(d.newKey),
    ]);
    assert.deepEqual([refused.status, refused.keyIndex], ['rejected', 1]);
    assert.equal(sent.length, 1, 'one receipt for one refusal');

    await d.send(cmdSetTopicKey(randomSymKey(), 'a'), d.newKey);
    const applied = openReceipt(sent.at(-1) ?? new Uint8Array(0), d.client.id, [
      keyOf(d.oldKey),
      keyOf(d.newKey),
    ]);
    assert.deepEqual([applied.status, applied.keyIndex], ['applied', 1]);
  });

  void it('misuse: typed errors, and the state unchanged', async () => {
    const d = await rotatingDevice();
    const state = d.client.state;
    const unchanged = (): void => {
      assert.equal(d.client.state, state);
    };
    await rejectsE4(d.client.completeOwnKeyRotation(), 'NoRotationPending');
    await rejectsE4(d.client.abandonOwnKeyRotation(), 'NoRotationPending');
    await rejectsE4(d.client.beginOwnKeyRotation(d.newKey.subarray(0, 32)), 'InvalidKey');
    await rejectsE4(d.client.beginOwnKeyRotation(new Uint8Array(64)), 'InvalidKey');
    const mismatched = concatBytes(d.newKey.subarray(0, 32), randomEd25519Key().subarray(32));
    await rejectsE4(d.client.beginOwnKeyRotation(mismatched), 'InvalidKey');
    await rejectsE4(d.client.beginOwnKeyRotation(d.oldKey), 'InvalidKey', 'the current key');
    await rejectsE4(
      loose(d.client.beginOwnKeyRotation.bind(d.client))(toHex(d.newKey)),
      'InvalidArgument',
    );
    unchanged();

    await d.client.beginOwnKeyRotation(d.newKey);
    const pending = d.client.state;
    await rejectsE4(d.client.beginOwnKeyRotation(randomEd25519Key()), 'RotationPending');
    assert.equal(d.client.state, pending);

    const sk = await E4Client.createSymmetric({ name: 'sk' }, { key: randomSymKey() });
    await rejectsE4(sk.beginOwnKeyRotation(d.newKey), 'UnsupportedOperation');
    await rejectsE4(sk.completeOwnKeyRotation(), 'UnsupportedOperation');
    await rejectsE4(sk.abandonOwnKeyRotation(), 'UnsupportedOperation');
    assert.equal(sk.pendingPublicKey, undefined);
  });

  void it('state files: a pending key must be a valid, other key of a public-key state', async () => {
    const d = await rotatingDevice();
    await d.client.beginOwnKeyRotation(d.newKey);
    const json = JSON.parse(encodeClientState(d.client.state)) as Record<string, unknown>;
    const withPending = (value: unknown): string =>
      JSON.stringify({ ...json, PendingPrivateKey: value });
    const b64 = (bytes: Uint8Array): string => Buffer.from(bytes).toString('base64');
    assert.deepEqual(decodeClientState(withPending(b64(d.newKey))), d.client.state);
    for (const bad of [null, 7, '', b64(d.newKey.subarray(0, 32)), b64(d.oldKey)])
      throwsE4(() => decodeClientState(withPending(bad)), 'InvalidState', String(bad));
    const sk = await E4Client.createSymmetric({ name: 'sk' }, { key: randomSymKey() });
    const skJson = JSON.parse(encodeClientState(sk.state)) as Record<string, unknown>;
    throwsE4(
      () => decodeClientState(JSON.stringify({ ...skJson, PendingPrivateKey: b64(d.newKey) })),
      'InvalidState',
    );
    // Halves that disagree pass the codec's checks (as for the current key), not load's.
    const mismatched = concatBytes(d.newKey.subarray(0, 32), randomEd25519Key().subarray(32));
    await rejectsE4(
      E4Client.load(new MemoryClientStore(withPending(b64(mismatched)))),
      'InvalidState',
    );
  });
});
