/** The monitor's verdict on single messages, in both modes, for every class. */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import {
  AesSivKey,
  ed25519KeyFromSeed,
  ed25519PublicKeyObject,
  ed25519SigningKey,
  protectPubKeyAt,
  protectSymKeyAt,
  toHex,
} from '../../../e4/index.ts';
import { classifyMessage, TRAFFIC_CLASSES } from '../../monitoring/traffic-classifier.ts';

const NOW_S = 1_900_000_000n;
const now = (): number => Number(NOW_S) * 1000;
const v1 = randomBytes(32);
const v2 = randomBytes(32);
const v3 = randomBytes(32);
const keys = [
  { version: 3, key: new AesSivKey(v3) },
  { version: 2, key: new AesSivKey(v2) },
  { version: 1, key: new AesSivKey(v1) },
];
const payload = new TextEncoder().encode('temperature=21.5');

const sk = (key: Uint8Array, ts = NOW_S - 5n) => protectSymKeyAt(payload, key, ts);

void describe('classifyMessage, symmetric-key mode', () => {
  void it('current key, previous keys, stale timestamps', () => {
    assert.deepEqual(classifyMessage({ payload: sk(v3), keys, now }), {
      class: 'current',
      keyVersion: 3,
    });
    assert.deepEqual(classifyMessage({ payload: sk(v2), keys, now }), {
      class: 'previous_key',
      keyVersion: 2,
    });
    assert.deepEqual(classifyMessage({ payload: sk(v1), keys, now }), {
      class: 'previous_key',
      keyVersion: 1,
    });
    assert.deepEqual(classifyMessage({ payload: sk(v3, NOW_S - 601n), keys, now }), {
      class: 'stale',
      keyVersion: 3,
    });
    assert.deepEqual(classifyMessage({ payload: sk(v2, NOW_S + 30n), keys, now }), {
      class: 'stale',
      keyVersion: 2,
    });
  });

  void it('an unknown key or a flipped bit is forged; text and short payloads are unencrypted', () => {
    assert.deepEqual(classifyMessage({ payload: sk(randomBytes(32)), keys, now }), {
      class: 'forged',
    });
    const tampered = sk(v3);
    tampered[tampered.length - 1] = (tampered[tampered.length - 1] ?? 0) ^ 1;
    assert.deepEqual(classifyMessage({ payload: tampered, keys, now }), { class: 'forged' });
    const json = new TextEncoder().encode('{"temperature": 21.5, "unit": "C", "sensor": "k-7"}');
    assert.deepEqual(classifyMessage({ payload: json, keys, now }), { class: 'unencrypted' });
    assert.deepEqual(classifyMessage({ payload: new Uint8Array(5), keys, now }), {
      class: 'unencrypted',
    });
    assert.deepEqual(classifyMessage({ payload: sk(v3), keys: [], now }), { class: 'forged' });
  });

  void it('never throws, whatever the bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
        const verdict = classifyMessage({ payload: bytes, keys, now });
        assert.ok(TRAFFIC_CLASSES.includes(verdict.class));
        assert.notEqual(verdict.class, 'current', 'random bytes are never authentic');
      }),
    );
  });
});

void describe('classifyMessage, public-key mode', () => {
  const device = ed25519KeyFromSeed(randomBytes(32));
  const id = randomBytes(16);
  const signer = { id, signingKey: ed25519SigningKey(device) };
  const publicKey = ed25519PublicKeyObject(device.subarray(32));
  const lookupPubKey = (hex: string) => (hex === toHex(id) ? publicKey : undefined);

  void it('names the sender of authentic messages and the key version it used', () => {
    const current = protectPubKeyAt(payload, v3, signer, NOW_S - 1n);
    assert.deepEqual(classifyMessage({ payload: current, keys, lookupPubKey, now }), {
      class: 'current',
      keyVersion: 3,
      senderId: toHex(id),
    });
    const old = protectPubKeyAt(payload, v2, signer, NOW_S - 1n);
    assert.equal(classifyMessage({ payload: old, keys, lookupPubKey, now }).class, 'previous_key');
  });

  void it('an unknown signer or a bad signature is forged', () => {
    const stranger = {
      id: randomBytes(16),
      signingKey: ed25519SigningKey(ed25519KeyFromSeed(randomBytes(32))),
    };
    const unknown = protectPubKeyAt(payload, v3, stranger, NOW_S - 1n);
    assert.deepEqual(classifyMessage({ payload: unknown, keys, lookupPubKey, now }), {
      class: 'forged',
    });
    const bad = protectPubKeyAt(payload, v3, signer, NOW_S - 1n);
    bad[bad.length - 1] = (bad[bad.length - 1] ?? 0) ^ 1;
    assert.deepEqual(classifyMessage({ payload: bad, keys, lookupPubKey, now }), {
      class: 'forged',
    });
  });
});
