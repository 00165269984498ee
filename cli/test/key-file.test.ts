// Public-key mode key files: `client create --key` and `client rotate --public-key` take the same
// forms and refuse the same files with the same messages (one parser, cli/commands/key-file.ts).
// `rotate` used to take a 32-byte public key only, refusing a private key file that `create`
// takes with "invalid public key length, got 64, expected 32".
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ed25519PublicKey, randomEd25519Key, toHex } from '../../e4/index.ts';
import { ExitCode } from '../errors.ts';
import { FakeApi, runWith, type RunResult } from './support/fake-api.ts';

function pubkeyApi(): FakeApi {
  return new FakeApi()
    .onReference('GetCryptoMode', () => ({ CryptoMode: 'CRYPTOMODE_PUBKEY' }))
    .onAdmin('RotateClientKey', () => ({ key_version: 2, fingerprint: 'ff' }));
}

/** Runs both verbs with the same key file `k`. */
async function bothVerbs(file: Uint8Array | string): Promise<[RunResult, RunResult]> {
  const files = { k: file };
  return [
    await runWith(['client', 'create', '--name', 'a', '--key', 'k'], { api: pubkeyApi(), files }),
    await runWith(['client', 'rotate', '--name', 'a', '--public-key', 'k'], {
      api: pubkeyApi(),
      files,
    }),
  ];
}

/** The public key each verb sent. */
function sentKeys([create, rotate]: [RunResult, RunResult]): [unknown, unknown] {
  const created = create.api.calls.find((c) => c.method === 'NewClient')?.request as {
    key: Uint8Array;
  };
  const rotated = rotate.api.calls.find((c) => c.method === 'RotateClientKey')?.request as {
    public_key: Uint8Array;
  };
  return [created.key, rotated.public_key];
}

void describe('public-key mode key files: client create --key and client rotate --public-key', () => {
  const privateKey = randomEd25519Key();
  const publicKey = ed25519PublicKey(privateKey);

  const accepted: [string, Uint8Array | string][] = [
    ['the raw 32-byte public key', publicKey],
    ['the public key as hex with a newline', `${toHex(publicKey)}\n`],
    ['the public key as 64 hex digits without a newline', toHex(publicKey)],
    ['a raw 64-byte private key (its public half is sent)', privateKey],
    ['a private key as 128 hex digits', `${toHex(privateKey)}\n`],
  ];
  for (const [what, file] of accepted) {
    void it(`both take ${what}`, async () => {
      const runs = await bothVerbs(file);
      for (const r of runs) assert.equal(r.code, ExitCode.Ok, r.stderr);
      assert.deepEqual(sentKeys(runs), [publicKey, publicKey]);
    });
  }

  const mismatched = new Uint8Array(privateKey);
  mismatched[63] = (mismatched[63] ?? 0) ^ 1;
  const refused: [string, Uint8Array | string, RegExp][] = [
    [
      'an all-zero public key',
      new Uint8Array(32),
      /^error: invalid key: invalid public key, all zeros\n/,
    ],
    [
      'a private key whose public half does not match its seed',
      mismatched,
      /^error: invalid key: invalid private key, public half does not match the seed\n/,
    ],
    [
      'a file of another length',
      new Uint8Array(48).fill(1),
      /^error: invalid key: the key file holds 48 bytes; a public-key mode key file holds the Ed25519 public key \(32 bytes\) or a private key \(64 bytes\), raw or as hex\n/,
    ],
    [
      'text of a hex key length that is not hex',
      `${'zz'.repeat(32)}\n`,
      /^error: the key file holds 64 characters, as a key of 32 bytes in hex would, but not only hex digits\n/,
    ],
  ];
  for (const [what, file, message] of refused) {
    void it(`both refuse ${what} with the same message, before any write`, async () => {
      const [create, rotate] = await bothVerbs(file);
      for (const r of [create, rotate]) {
        assert.equal(r.code, ExitCode.Usage, r.stderr);
        assert.match(r.stderr, message);
        assert.ok(
          !r.api.methods().some((m) => m.endsWith('NewClient') || m.endsWith('RotateClientKey')),
        );
      }
      assert.equal(create.stderr, rotate.stderr);
    });
  }

  void it('both name an unreadable file the same way', async () => {
    const runs = await Promise.all([
      runWith(['client', 'create', '--name', 'a', '--key', 'nope'], { api: pubkeyApi() }),
      runWith(['client', 'rotate', '--name', 'a', '--public-key', 'nope'], { api: pubkeyApi() }),
    ]);
    for (const r of runs) {
      assert.equal(r.code, ExitCode.Usage);
      assert.match(r.stderr, /^error: cannot read key file nope: /);
    }
  });
});
