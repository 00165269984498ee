// E4Client's opt-in delivery receipts: off by default (the client behaves exactly as before),
// on in SK and PK mode (applied and refused commands, key changes), never fatal to a command,
// never sent for unauthentic messages or for the device's own receipts.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  clientIdFromName,
  cmdRemoveTopic,
  cmdResetTopics,
  cmdSetC2Key,
  cmdSetIdKey,
  cmdSetPubKey,
  cmdSetTopicKey,
  commandId,
  commandKeyForClient,
  concatBytes,
  E4Client,
  ed25519PublicKey,
  encodeClientState,
  MemoryClientStore,
  openReceipt,
  protectCommand,
  protectSymKeyAt,
  randomCurve25519KeyPair,
  randomEd25519Key,
  randomSymKey,
  receiptTopic,
  topicHash,
  type ClientOptions,
  type ClientStore,
  type Clock,
  type E4ErrorCode,
  type OpenedReceipt,
  type ReceiptOptions,
  type UnprotectResult,
} from '../index.ts';
import { assertBytes, flipBit, manualClock, rejectsE4, throwsE4, tick } from './support.ts';

const T0 = 1_700_000_000_000;
const T0_S = BigInt(T0 / 1000);

interface Published {
  readonly topic: string;
  readonly payload: Uint8Array;
}

/** A receipt sink that records every publish. */
function sink(extra: Partial<ReceiptOptions> = {}): {
  readonly options: ReceiptOptions;
  readonly sent: Published[];
} {
  const sent: Published[] = [];
  return {
    sent,
    options: {
      publish: (topic, payload) => {
        sent.push({ topic, payload });
      },
      ...extra,
    },
  };
}

/** A store whose saves fail while `failing` is set. */
class FlakyStore implements ClientStore {
  failing = false;
  readonly #inner = new MemoryClientStore();
  load(): Promise<string | undefined> {
    return this.#inner.load();
  }
  save(serialised: string): Promise<void> {
    if (this.failing) return Promise.reject(new Error('disk full'));
    return this.#inner.save(serialised);
  }
}

async function skClient(
  name: string,
  key: Uint8Array,
  clock: Clock,
  receipts?: ReceiptOptions,
  store?: ClientStore,
): Promise<E4Client> {
  const options: ClientOptions = {
    clock,
    ...(receipts === undefined ? {} : { receipts }),
    ...(store === undefined ? {} : { store }),
  };
  return E4Client.createSymmetric({ name }, { key }, options);
}

function single(sent: Published[]): Published {
  assert.equal(sent.length, 1, 'exactly one receipt');
  const [only] = sent;
  assert.ok(only !== undefined);
  sent.length = 0;
  return only;
}

/** Outcome of one unprotect call, comparable across clients. */
async function outcome(promise: Promise<UnprotectResult>): Promise<string> {
  try {
    const r = await promise;
    return r.kind === 'command' ? `command ${r.command.type}` : `message ${r.payload.length}`;
  } catch (err) {
    return `error ${(err as { code?: string }).code ?? String(err)}`;
  }
}

void describe('E4Client receipts: off by default', () => {
  void it('with and without the option, every outcome and every saved state are identical', async () => {
    const time = manualClock(T0);
    const key = randomSymKey();
    const topicKey = randomSymKey();
    const plainStore = new MemoryClientStore();
    const receiptStore = new MemoryClientStore();
    const plain = await skClient('same', key, time.clock, undefined, plainStore);
    const { options, sent } = sink({ rejections: true });
    const withReceipts = await skClient('same', key, time.clock, options, receiptStore);
    const topic = plain.receivingTopic;

    const messages: Uint8Array[] = [
      protectCommand(cmdSetTopicKey(topicKey, 'a/b'), key, time.clock),
      protectCommand(cmdRemoveTopic('a/c'), key, time.clock),
      protectCommand(cmdSetPubKey(ed25519PublicKey(randomEd25519Key()), 'p'), key, time.clock),
      protectCommand(concatBytes(cmdResetTopics(), Uint8Array.of(0)), key, time.clock),
      protectCommand(cmdSetTopicKey(randomSymKey(), 'a/b'), randomSymKey(), time.clock),
      protectSymKeyAt(cmdResetTopics(), key, T0_S - 601n),
      protectSymKeyAt(cmdResetTopics(), key, T0_S + 1n),
      new Uint8Array(10),
      protectCommand(cmdSetIdKey(randomSymKey()), key, time.clock),
    ];
    for (const m of messages) {
      assert.equal(
        await outcome(withReceipts.unprotect(m, topic)),
        await outcome(plain.unprotect(m, topic)),
      );
      assert.equal(encodeClientState(withReceipts.state), encodeClientState(plain.state));
      assert.equal(await receiptStore.load(), await plainStore.load());
    }
    assert.ok(sent.length > 0, 'the client with the option did send receipts');
  });

  void it('without `rejections`, refused commands send nothing', async () => {
    const time = manualClock(T0);
    const key = randomSymKey();
    const { options, sent } = sink();
    const device = await skClient('no-rejections', key, time.clock, options);
    const stale = protectSymKeyAt(cmdResetTopics(), key, T0_S - 601n);
    await rejectsE4(device.unprotect(stale, device.receivingTopic), 'TimestampTooOld');
    assert.equal(sent.length, 0);
    await device.unprotect(
      protectCommand(cmdResetTopics(), key, time.clock),
      device.receivingTopic,
    );
    assert.equal(sent.length, 1);
  });

  void it('data messages never send a receipt', async () => {
    const time = manualClock(T0);
    const key = randomSymKey();
    const topicKey = randomSymKey();
    const { options, sent } = sink({ rejections: true });
    const device = await skClient('data', key, time.clock, options);
    await device.unprotect(
      protectCommand(cmdSetTopicKey(topicKey, 'a/b'), key, time.clock),
      device.receivingTopic,
    );
    sent.length = 0;
    const message = device.protectMessage(Uint8Array.of(1, 2, 3), 'a/b');
    await device.unprotect(message, 'a/b');
    await rejectsE4(device.unprotect(flipBit(message, 200), 'a/b'), 'NotAuthentic');
    assert.equal(sent.length, 0);
  });
});

void describe('E4Client receipts: SK device', () => {
  void it('an applied command gives a receipt the C2 opens and matches by command id', async () => {
    const time = manualClock(T0);
    const key = randomSymKey();
    const { options, sent } = sink();
    const device = await skClient('sk-receipts', key, time.clock, options);
    const wire = protectCommand(cmdSetTopicKey(randomSymKey(), 'room/1'), key, time.clock);
    const sentId = commandId(wire); // what the C2 keeps
    time.now += 1_500;
    const result = await device.unprotect(wire, device.receivingTopic);
    assert.equal(result.kind, 'command');

    const { topic, payload } = single(sent);
    assert.equal(topic, receiptTopic(clientIdFromName('sk-receipts')));
    const receipt = openReceipt(payload, device.id, key);
    assert.equal(receipt.status, 'applied');
    assert.equal(receipt.commandType, 'SetTopicKey');
    assertBytes(receipt.commandId, sentId);
    assertBytes(receipt.subject, topicHash('room/1'));
    assert.equal(receipt.commandTime, T0_S);
    assert.equal(receipt.deviceTime, T0_S + 1n);
  });

  void it('SetIDKey: the receipt is under the new key', async () => {
    const time = manualClock(T0);
    const oldKey = randomSymKey();
    const newKey = randomSymKey();
    const { options, sent } = sink();
    const device = await skClient('sk-rotate', oldKey, time.clock, options);
    await device.unprotect(
      protectCommand(cmdSetIdKey(newKey), oldKey, time.clock),
      device.receivingTopic,
    );
    const { payload } = single(sent);
    throwsE4(() => openReceipt(payload, device.id, oldKey), 'NotAuthentic');
    const receipt = openReceipt(payload, device.id, [oldKey, newKey]);
    assert.equal(receipt.keyIndex, 1);
    assert.equal(receipt.commandType, 'SetIDKey');
    assertBytes(receipt.subject, new Uint8Array(16));
  });

  void it('rejections: stale, early, unsupported, malformed and unsaved commands are reported', async () => {
    const time = manualClock(T0);
    const key = randomSymKey();
    const store = new FlakyStore();
    const { options, sent } = sink({ rejections: true });
    const device = await skClient('sk-rejects', key, time.clock, options, store);
    const topic = device.receivingTopic;

    async function refusedWith(message: Uint8Array, code: E4ErrorCode): Promise<OpenedReceipt> {
      const before = device.state;
      await rejectsE4(device.unprotect(message, topic), code);
      assert.equal(device.state, before, 'state unchanged');
      const receipt = openReceipt(single(sent).payload, device.id, key);
      assert.ok(receipt.status === 'rejected');
      assert.equal(receipt.reason, code === 'InvalidState' ? 'Other' : code);
      assertBytes(receipt.commandId, commandId(message));
      return receipt;
    }

    const stale = protectSymKeyAt(cmdSetTopicKey(randomSymKey(), 'late/topic'), key, T0_S - 700n);
    const late = await refusedWith(stale, 'TimestampTooOld');
    assert.equal(late.commandType, 'SetTopicKey');
    assertBytes(late.subject, topicHash('late/topic'));
    assert.equal(late.deviceTime - late.commandTime, 700n);

    const early = await refusedWith(
      protectSymKeyAt(cmdResetTopics(), key, T0_S + 5n),
      'TimestampInFuture',
    );
    assert.equal(early.commandType, 'ResetTopics');

    const pkOnly = protectCommand(
      cmdSetPubKey(ed25519PublicKey(randomEd25519Key()), 'peer'),
      key,
      time.clock,
    );
    const unsupported = await refusedWith(pkOnly, 'UnsupportedOperation');
    assertBytes(unsupported.subject, clientIdFromName('peer'));

    const long = protectCommand(
      concatBytes(cmdRemoveTopic('x'), Uint8Array.of(0)),
      key,
      time.clock,
    );
    const badLength = await refusedWith(long, 'InvalidCommandLength');
    assert.equal(badLength.commandType, 'RemoveTopic');
    assertBytes(badLength.subject, new Uint8Array(16));

    const unknown = await refusedWith(
      protectCommand(Uint8Array.of(0x42), key, time.clock),
      'InvalidCommand',
    );
    assert.equal(unknown.commandType, undefined);

    const empty = await refusedWith(
      protectSymKeyAt(new Uint8Array(0), key, T0_S),
      'TooShortCiphertext',
    );
    assert.equal(empty.commandType, undefined);

    // A failed save: the command is not applied, the error is the store's, the reason is Other.
    store.failing = true;
    const unsaved = protectCommand(cmdResetTopics(), key, time.clock);
    const before = device.state;
    await assert.rejects(device.unprotect(unsaved, topic), /disk full/);
    assert.equal(device.state, before);
    const receipt = openReceipt(single(sent).payload, device.id, key);
    assert.ok(receipt.status === 'rejected');
    assert.equal(receipt.reasonCode, 0xff);
    assert.equal(receipt.reason, 'Other');
  });

  void it('messages that are not authentic under the command key never get a receipt', async () => {
    const time = manualClock(T0);
    const key = randomSymKey();
    const { options, sent } = sink({ rejections: true });
    const device = await skClient('sk-silent', key, time.clock, options);
    const topic = device.receivingTopic;
    const forged = protectCommand(cmdResetTopics(), randomSymKey(), time.clock);
    await rejectsE4(device.unprotect(forged, topic), 'NotAuthentic');
    const forgedStale = protectSymKeyAt(cmdResetTopics(), randomSymKey(), T0_S - 700n);
    await rejectsE4(device.unprotect(forgedStale, topic), 'TimestampTooOld');
    await rejectsE4(device.unprotect(new Uint8Array(5), topic), 'TooShortCiphertext');
    assert.equal(sent.length, 0);
  });

  void it('a receipt published on the control topic is refused and answers nothing (no loop)', async () => {
    const time = manualClock(T0);
    const key = randomSymKey();
    const { options, sent } = sink({ rejections: true });
    const device = await skClient('sk-loop', key, time.clock, options);
    await device.unprotect(
      protectCommand(cmdResetTopics(), key, time.clock),
      device.receivingTopic,
    );
    const { payload } = single(sent);
    const before = device.state;
    await rejectsE4(device.unprotect(payload, device.receivingTopic), 'NotAuthentic');
    assert.equal(device.state, before);
    assert.equal(sent.length, 0);
    // A stock-behaving device with the same key (no receipts option) refuses it the same way.
    const stock = await skClient('sk-loop', key, time.clock);
    await rejectsE4(stock.unprotect(payload, stock.receivingTopic), 'NotAuthentic');
  });

  void it('receipts follow the order of the commands, even when delivered concurrently', async () => {
    const time = manualClock(T0);
    const key = randomSymKey();
    const { options, sent } = sink({ rejections: true });
    const device = await skClient('sk-order', key, time.clock, options);
    const wires = Array.from({ length: 8 }, (_, i) =>
      protectCommand(
        i === 3 ? Uint8Array.of(0x09) : cmdSetTopicKey(randomSymKey(), `t/${i}`),
        key,
        time.clock,
      ),
    );
    const results = await Promise.allSettled(
      wires.map((w) => device.unprotect(w, device.receivingTopic)),
    );
    assert.deepEqual(
      results.map((r) => r.status),
      wires.map((_, i) => (i === 3 ? 'rejected' : 'fulfilled')),
    );
    assert.deepEqual(
      sent.map((s) =>
        Buffer.from(openReceipt(s.payload, device.id, key).commandId).toString('hex'),
      ),
      wires.map((w) => Buffer.from(commandId(w)).toString('hex')),
    );
  });

  void it('a failing publish never changes the outcome of the command', async () => {
    const time = manualClock(T0);
    const key = randomSymKey();
    const errors: unknown[] = [];
    const throwing = await skClient('sk-pub-throws', key, time.clock, {
      publish: () => {
        throw new Error('offline');
      },
      onError: (err) => errors.push(err),
    });
    const r1 = await throwing.unprotect(
      protectCommand(cmdSetTopicKey(randomSymKey(), 'a/b'), key, time.clock),
      throwing.receivingTopic,
    );
    assert.equal(r1.kind, 'command');
    assert.equal(throwing.state.topicKeys.size, 1);
    assert.match(String(errors.shift()), /offline/);

    const rejecting = await skClient('sk-pub-rejects', key, time.clock, {
      publish: () => Promise.reject(new Error('no PUBACK')),
      onError: (err) => {
        errors.push(err);
        throw new Error('a throwing handler is contained too');
      },
    });
    const r2 = await rejecting.unprotect(
      protectCommand(cmdSetTopicKey(randomSymKey(), 'a/b'), key, time.clock),
      rejecting.receivingTopic,
    );
    assert.equal(r2.kind, 'command');
    await tick();
    assert.match(String(errors.shift()), /no PUBACK/);

    // Without onError, failures are dropped silently (and never unhandled).
    const silent = await skClient('sk-pub-silent', key, time.clock, {
      publish: () => Promise.reject(new Error('dropped')),
    });
    await silent.unprotect(
      protectCommand(cmdResetTopics(), key, time.clock),
      silent.receivingTopic,
    );
    await tick();
  });

  void it('a publish returning neither undefined nor a promise never changes the outcome', async () => {
    // TypeScript accepts any function where one returning void is expected: mqtt.js's
    // `client.publish` returns the client, a queue may return `true`, a thenable may reject.
    const time = manualClock(T0);
    const key = randomSymKey();
    const errors: unknown[] = [];
    const mqttLike = {
      publish(): unknown {
        return this;
      },
    };
    const returns: (() => void)[] = [
      () => mqttLike.publish(),
      () => true,
      () => 0,
      () => ({
        then: (_: unknown, reject: (e: Error) => void) => {
          reject(new Error('thenable'));
        },
      }),
    ];
    for (const [i, returned] of returns.entries()) {
      const options: ReceiptOptions = {
        publish: returned,
        rejections: true,
        onError: (err) => errors.push(err),
      };
      const device = await skClient(`sk-pub-returns-${i}`, key, time.clock, options);
      const applied = await device.unprotect(
        protectCommand(cmdSetTopicKey(randomSymKey(), 'a/b'), key, time.clock),
        device.receivingTopic,
      );
      assert.equal(applied.kind, 'command', `return value ${i}: applied`);
      assert.equal(device.state.topicKeys.size, 1);
      // A stale command keeps its own error; the receipt must not replace it.
      const stale = protectSymKeyAt(cmdResetTopics(), key, T0_S - 601n);
      await rejectsE4(device.unprotect(stale, device.receivingTopic), 'TimestampTooOld');
      assert.equal(device.state.topicKeys.size, 1);
    }
    await tick();
    assert.deepEqual(
      errors.map((e) => String(e)),
      ['Error: thenable', 'Error: thenable'],
    );
  });

  void it('the topic can be overridden, and load() takes the option too', async () => {
    const time = manualClock(T0);
    const key = randomSymKey();
    const store = new MemoryClientStore();
    await skClient('sk-load', key, time.clock, undefined, store);
    const { options, sent } = sink({ topic: 'site-7/receipts/sk-load' });
    const device = await E4Client.load(store, { clock: time.clock, receipts: options });
    await device.unprotect(
      protectCommand(cmdResetTopics(), key, time.clock),
      device.receivingTopic,
    );
    const { topic, payload } = single(sent);
    assert.equal(topic, 'site-7/receipts/sk-load');
    assert.equal(openReceipt(payload, device.id, key).commandType, 'ResetTopics');
  });

  void it('options that could never send a receipt are refused when the client is made', async () => {
    // Every receipt went through them and failed into an optional onError: a device configured
    // from plain JavaScript (or JSON) sent nothing, and nobody was told.
    const cases: Array<[unknown, E4ErrorCode]> = [
      [{}, 'InvalidArgument'],
      [{ publish: 'mqtt' }, 'InvalidArgument'],
      [{ publish: () => undefined, onError: 'log' }, 'InvalidArgument'],
      [{ publish: () => undefined, topic: '' }, 'InvalidTopic'],
      [{ publish: () => undefined, topic: 7 }, 'InvalidArgument'],
    ];
    for (const [receipts, code] of cases) {
      const options = { receipts } as unknown as ClientOptions;
      const what = JSON.stringify(receipts);
      await rejectsE4(
        E4Client.createSymmetric({ name: 'opts' }, { key: randomSymKey() }, options),
        code,
        what,
      );
      const store = new MemoryClientStore();
      await E4Client.createSymmetric({ name: 'opts' }, { key: randomSymKey() }, { store });
      const saved = await store.load();
      await rejectsE4(
        E4Client.load(store, { ...options, receivingTopic: 'elsewhere' }),
        code,
        `load ${what}`,
      );
      assert.equal(await store.load(), saved, `load ${what} changed nothing`);
    }
  });
});

void describe('E4Client receipts: PK device', () => {
  void it('receipts under the command key; SetC2Key and SetIDKey switch to the new one', async () => {
    const time = manualClock(T0);
    const c2 = randomCurve25519KeyPair();
    const edKey = randomEd25519Key();
    const { options, sent } = sink({ rejections: true });
    const device = await E4Client.createPublicKey(
      { name: 'pk-receipts' },
      { privateKey: edKey },
      c2.publicKey,
      {
        clock: time.clock,
        receipts: options,
      },
    );
    const topic = device.receivingTopic;
    let commandKey = commandKeyForClient(c2.privateKey, ed25519PublicKey(edKey));

    const peer = ed25519PublicKey(randomEd25519Key());
    const setPub = protectCommand(cmdSetPubKey(peer, 'peer-1'), commandKey, time.clock);
    await device.unprotect(setPub, topic);
    const applied = openReceipt(single(sent).payload, device.id, commandKey);
    assert.equal(applied.commandType, 'SetPubKey');
    assertBytes(applied.subject, clientIdFromName('peer-1'));
    assertBytes(applied.commandId, commandId(setPub));

    // New C2 key: the receipt is under the command key derived from it.
    const c2Next = randomCurve25519KeyPair();
    await device.unprotect(
      protectCommand(cmdSetC2Key(c2Next.publicKey), commandKey, time.clock),
      topic,
    );
    const nextKey = commandKeyForClient(c2Next.privateKey, ed25519PublicKey(edKey));
    const c2Receipt = openReceipt(single(sent).payload, device.id, [commandKey, nextKey]);
    assert.equal(c2Receipt.keyIndex, 1);
    assert.equal(c2Receipt.commandType, 'SetC2Key');
    commandKey = nextKey;

    // New identity key: likewise.
    const edNext = randomEd25519Key();
    await device.unprotect(protectCommand(cmdSetIdKey(edNext), commandKey, time.clock), topic);
    const idKey = commandKeyForClient(c2Next.privateKey, ed25519PublicKey(edNext));
    assert.equal(openReceipt(single(sent).payload, device.id, [commandKey, idKey]).keyIndex, 1);
    commandKey = idKey;

    // A refused command (invalid C2 key) is reported under the unchanged key.
    const lowOrder = new Uint8Array(32); // u = 1, a low-order point: refused when applied
    lowOrder[0] = 1;
    const bad = protectCommand(concatBytes(Uint8Array.of(0x07), lowOrder), commandKey, time.clock);
    await rejectsE4(device.unprotect(bad, topic), 'InvalidKey');
    const refused = openReceipt(single(sent).payload, device.id, commandKey);
    assert.ok(refused.status === 'rejected');
    assert.equal(refused.reason, 'InvalidKey');
    assert.equal(refused.commandType, 'SetC2Key');
  });
});
