// The reference verbs against a fake server: which RPCs with which requests, the exact human
// output (the reference c2cli's lines), the JSON document, and the exit code.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { status } from '@grpc/grpc-js';
import {
  deriveSymKey,
  ed25519KeyFromPassword,
  ed25519PublicKey,
  randomEd25519Key,
  toHex,
} from '../../e4/index.ts';
import { ExitCode } from '../errors.ts';
import { FakeApi, grpcError, runWith } from './support/fake-api.ts';
import { json, words } from './support/output.ts';

const KEY = new Uint8Array(32).fill(7);
const PASSWORD = 'correct horse battery staple';

function symkeyApi(): FakeApi {
  return new FakeApi().onReference('GetCryptoMode', () => ({ CryptoMode: 'CRYPTOMODE_SYMKEY' }));
}

function pubkeyApi(): FakeApi {
  return new FakeApi().onReference('GetCryptoMode', () => ({ CryptoMode: 'CRYPTOMODE_PUBKEY' }));
}

void describe('client create', () => {
  void it('with a raw key file: GetCryptoMode, then NewClient with the key and the idempotency key', async () => {
    const r = await runWith(['client', 'create', '--name', 'sensor-1', '--key', 'k.bin'], {
      api: symkeyApi(),
      files: { 'k.bin': KEY },
    });
    assert.equal(r.code, ExitCode.Ok, r.stderr);
    assert.deepEqual(r.api.methods(), ['pb.C2/GetCryptoMode', 'pb.C2/NewClient']);
    assert.deepEqual(r.api.calls[1]?.request, { client: { name: 'sensor-1' }, key: KEY });
    assert.deepEqual(r.api.calls[1].options, { idempotencyKey: 'generated-request-id' });
    assert.equal(r.stdout, 'Client sensor-1 created successfully\n');
    assert.equal(r.api.closed, 1);
  });

  void it('accepts the key as hex text', async () => {
    const r = await runWith(['client', 'create', '--name', 'a', '--key', 'k.hex'], {
      api: symkeyApi(),
      files: { 'k.hex': `${toHex(KEY)}\n` },
    });
    assert.equal(r.code, ExitCode.Ok, r.stderr);
    assert.deepEqual(r.api.calls[1]?.request, { client: { name: 'a' }, key: KEY });
  });

  void it('with a password in symmetric-key mode: derives the key locally as e4go does', async () => {
    const r = await runWith(['client', 'create', '--name', 'a', '--password', 'p', '--json'], {
      api: symkeyApi(),
      files: { p: PASSWORD },
    });
    assert.equal(r.code, ExitCode.Ok, r.stderr);
    assert.deepEqual(r.api.calls[1]?.request, {
      client: { name: 'a' },
      key: deriveSymKey(PASSWORD),
    });
    assert.deepEqual(json(r.stdout), {
      client: 'a',
      created: true,
      mode: 'symkey',
      key_source: 'password',
    });
  });

  void it('with a password in public-key mode: sends only the Ed25519 public key', async () => {
    const r = await runWith(['client', 'create', '--name', 'a', '--password', 'p'], {
      api: pubkeyApi(),
      files: { p: PASSWORD },
    });
    assert.equal(r.code, ExitCode.Ok, r.stderr);
    const expected = ed25519PublicKey(ed25519KeyFromPassword(PASSWORD));
    assert.deepEqual(r.api.calls[1]?.request, { client: { name: 'a' }, key: expected });
    assert.equal(r.stdout, 'Derived Ed25519 key from password\nClient a created successfully\n');
  });

  void it('public-key mode with a 64-byte private key file sends its public half', async () => {
    const privateKey = randomEd25519Key();
    const r = await runWith(['client', 'create', '--name', 'a', '--key', 'k'], {
      api: pubkeyApi(),
      files: { k: privateKey },
    });
    assert.equal(r.code, ExitCode.Ok, r.stderr);
    assert.deepEqual(r.api.calls[1]?.request, {
      client: { name: 'a' },
      key: ed25519PublicKey(privateKey),
    });
  });

  void it('public-key mode with a public key as 64 hex digits and no newline (64 bytes, not a private key)', async () => {
    const publicKey = ed25519PublicKey(randomEd25519Key());
    const r = await runWith(['client', 'create', '--name', 'a', '--key', 'k'], {
      api: pubkeyApi(),
      files: { k: toHex(publicKey) },
    });
    assert.equal(r.code, ExitCode.Ok, r.stderr);
    assert.deepEqual(r.api.calls[1]?.request, { client: { name: 'a' }, key: publicKey });
  });

  void it('warns on stderr when the password file ends with a newline (it is part of the password)', async () => {
    const r = await runWith(['client', 'create', '--name', 'a', '--password', 'p'], {
      api: symkeyApi(),
      files: { p: `${PASSWORD}\n` },
    });
    assert.equal(r.code, ExitCode.Ok);
    assert.match(r.stderr, /^warning: the password file ends with a newline/);
    assert.deepEqual(r.api.calls[1]?.request, {
      client: { name: 'a' },
      key: deriveSymKey(`${PASSWORD}\n`),
    });
    assert.equal(r.stdout, 'Derived symmetric key from password\nClient a created successfully\n');
  });

  void it('refuses bad local input with exit 2 and never calls NewClient', async () => {
    const cases: [string[], Record<string, Uint8Array | string>, RegExp][] = [
      [
        ['--key', 'k'],
        { k: new Uint8Array(31).fill(1) },
        /^error: invalid key: invalid symmetric key length, got 31/,
      ],
      [
        ['--key', 'k'],
        { k: new Uint8Array(32) },
        /^error: invalid key: invalid symmetric key, all zeros/,
      ],
      [
        ['--password', 'p'],
        { p: 'short' },
        /^error: invalid password: password must be at least 16/,
      ],
      [['--key', 'missing'], {}, /^error: cannot read key file missing: ENOENT/],
      [
        ['--key', 'k'],
        { k: `${'zz'.repeat(32)}\n` },
        /^error: the key file holds 64 characters, as a key of 32 bytes in hex would, but not only hex digits/,
      ],
    ];
    for (const [flags, files, message] of cases) {
      const r = await runWith(['client', 'create', '--name', 'a', ...flags], {
        api: symkeyApi(),
        files,
      });
      assert.equal(r.code, ExitCode.Usage, r.stderr);
      assert.match(r.stderr, message);
      assert.ok(!r.api.methods().includes('pb.C2/NewClient'));
    }
    const name = await runWith(['client', 'create', '--name', 'x'.repeat(256), '--key', 'k'], {
      api: symkeyApi(),
      files: { k: KEY },
    });
    assert.equal(name.code, ExitCode.Usage);
    assert.match(name.stderr, /^error: invalid name: /);
    assert.equal(name.api.calls.length, 0);
  });

  void it('an undefined crypto mode is the server refusing (exit 1)', async () => {
    const api = new FakeApi().onReference('GetCryptoMode', () => ({
      CryptoMode: 'CRYPTOMODE_UNDEFINED',
    }));
    const r = await runWith(['client', 'create', '--name', 'a', '--key', 'k'], {
      api,
      files: { k: KEY },
    });
    assert.equal(r.code, ExitCode.Refused);
    assert.equal(r.stderr, 'error: unsupported crypto mode: CRYPTOMODE_UNDEFINED\n');
  });
});

/** Simple reference mutations: argv, RPC, request, human line, JSON document. */
const MUTATIONS: readonly [string[], string, unknown, string, unknown][] = [
  [
    ['client', 'remove', '--name', 'a'],
    'RemoveClient',
    { client: { name: 'a' } },
    'Client a removed successfully\n',
    { client: 'a', removed: true },
  ],
  [
    ['client', 'reset', '--name', 'a'],
    'ResetClient',
    { client: { name: 'a' } },
    'Client a reset successfully\n',
    { client: 'a', reset: true },
  ],
  [
    ['client', 'new-key', '--name', 'a'],
    'NewClientKey',
    { client: { name: 'a' } },
    'Client a key regenerated successfully\n',
    { client: 'a', new_key: true },
  ],
  [
    ['client', 'link-client', '--source', 's', '--target', 't'],
    'LinkClient',
    { sourceClient: { name: 's' }, targetClient: { name: 't' } },
    'successfully linked client s on client t\n',
    { source: 's', target: 't', linked: true },
  ],
  [
    ['client', 'unlink-client', '--source', 's', '--target', 't'],
    'UnlinkClient',
    { sourceClient: { name: 's' }, targetClient: { name: 't' } },
    'successfully unlinked client s from client t\n',
    { source: 's', target: 't', unlinked: true },
  ],
  [
    ['client', 'send-pubkey', '--source', 's', '--target', 't'],
    'SendClientPubKey',
    { sourceClient: { name: 's' }, targetClient: { name: 't' } },
    'Client s pubkey successfully sent to client t\n',
    { source: 's', target: 't', sent: true },
  ],
  [
    ['client', 'remove-pubkey', '--source', 's', '--target', 't'],
    'RemoveClientPubKey',
    { sourceClient: { name: 's' }, targetClient: { name: 't' } },
    'Command to remove client s pubkey successfully sent to client t\n',
    { source: 's', target: 't', removed: true },
  ],
  [
    ['client', 'reset-pubkeys', '--target', 't'],
    'ResetClientPubKeys',
    { targetClient: { name: 't' } },
    'Command to reset pubkeys successfully sent to client t\n',
    { target: 't', reset: true },
  ],
  [
    ['topic', 'remove', '--name', 'a/b'],
    'RemoveTopic',
    { topic: 'a/b' },
    'Topic a/b removed successfully\n',
    { topic: 'a/b', removed: true },
  ],
  [
    ['attach', '--client', 'c', '--topic', 't'],
    'NewTopicClient',
    { client: { name: 'c' }, topic: 't' },
    'Successfully attached client c to topic t\n',
    { client: 'c', topic: 't', attached: true },
  ],
  [
    ['detach', '--client', 'c', '--topic', 't'],
    'RemoveTopicClient',
    { client: { name: 'c' }, topic: 't' },
    'Successfully detached client c from topic t\n',
    { client: 'c', topic: 't', detached: true },
  ],
  [
    ['new-c2key', '--force'],
    'NewC2Key',
    { force: true },
    'New C2 key set with success\n',
    { new_c2_key: true },
  ],
];

void describe('topic create', () => {
  const created = { created: true, key_version: 1, fingerprint: 'fp1', members: 0 };
  const rotated = { created: false, key_version: 4, fingerprint: 'fp4', members: 3 };

  void it('calls our NewTopic with the request id and says the topic was created', async () => {
    const api = new FakeApi().onAdmin('NewTopic', () => created);
    const r = await runWith(['topic', 'create', '--name', 'a/b', '--request-id', 'req-7'], {
      api,
    });
    assert.equal(r.code, ExitCode.Ok, r.stderr);
    assert.deepEqual(r.api.methods(), ['e4c2.v1/NewTopic']);
    assert.deepEqual(r.api.calls[0]?.request, { name: 'a/b', request_id: 'req-7' });
    assert.equal(r.stdout, 'Topic a/b created successfully\n', "the reference c2cli's line");
    const j = await runWith(['topic', 'create', '--name', 'a/b', '--json'], {
      api: new FakeApi().onAdmin('NewTopic', () => created),
    });
    assert.deepEqual(json(j.stdout), { topic: 'a/b', ...created });
  });

  void it('says so when the topic existed and its key was rotated instead', async () => {
    const r = await runWith(['topic', 'create', '--name', 'a/b'], {
      api: new FakeApi().onAdmin('NewTopic', () => rotated),
    });
    assert.equal(r.code, ExitCode.Ok, r.stderr);
    assert.equal(
      r.stdout,
      'Topic a/b already existed: its key was rotated to version 4 (fingerprint fp4, 3 members)\n',
    );
    const j = await runWith(['topic', 'create', '--name', 'a/b', '--json'], {
      api: new FakeApi().onAdmin('NewTopic', () => rotated),
    });
    assert.deepEqual(json(j.stdout), { topic: 'a/b', ...rotated });
  });

  void it('falls back to the reference NewTopic on a server without ours: created unknown', async () => {
    const api = (): FakeApi =>
      new FakeApi().onAdmin('NewTopic', () => {
        throw grpcError(status.UNIMPLEMENTED, 'unknown method NewTopic');
      });
    const r = await runWith(['topic', 'create', '--name', 'a/b', '--request-id', 'req-8'], {
      api: api(),
    });
    assert.equal(r.code, ExitCode.Ok, r.stderr);
    assert.deepEqual(r.api.methods(), ['e4c2.v1/NewTopic', 'pb.C2/NewTopic']);
    assert.deepEqual(r.api.calls[1]?.request, { topic: 'a/b' });
    assert.deepEqual(r.api.calls[1].options, { idempotencyKey: 'req-8' });
    assert.equal(
      r.stdout,
      'Topic a/b created, or its key rotated if it existed (this server does not say which)\n',
    );
    const j = await runWith(['topic', 'create', '--name', 'a/b', '--json'], { api: api() });
    assert.deepEqual(json(j.stdout), { topic: 'a/b', created: null });
  });

  void it("another refusal is exit 1 with the server's message, and no fallback", async () => {
    const api = new FakeApi().onAdmin('NewTopic', () => {
      throw grpcError(status.PERMISSION_DENIED, 'creating one needs admin');
    });
    const r = await runWith(['topic', 'create', '--name', 'a/b'], { api });
    assert.equal(r.code, ExitCode.Refused);
    assert.deepEqual(r.api.methods(), ['e4c2.v1/NewTopic']);
    assert.match(r.stderr, /^error: creating one needs admin/);
  });
});

void describe('reference mutations', () => {
  for (const [argv, rpc, request, human, document] of MUTATIONS) {
    const label = words(argv);
    void it(`${label} calls ${rpc} with the idempotency key`, async () => {
      const r = await runWith([...argv, '--request-id', 'req-7']);
      assert.equal(r.code, ExitCode.Ok, r.stderr);
      assert.deepEqual(r.api.methods(), [`pb.C2/${rpc}`]);
      assert.deepEqual(r.api.calls[0]?.request, request);
      assert.deepEqual(r.api.calls[0]?.options, { idempotencyKey: 'req-7' });
      assert.equal(r.stdout, human);
      const j = await runWith([...argv, '--json']);
      assert.deepEqual(json(j.stdout), document);
      // The CLI's own keys are written as the proto's are (docs/cli.md): snake_case.
      assert.doesNotMatch(j.stdout, /"[a-z]+[A-Z]\w*":/, 'camelCase key in the JSON');
    });

    void it(`${label}: NOT_FOUND is exit 1 with the server's message`, async () => {
      const api = new FakeApi();
      (api.referenceHandlers as Record<string, () => never>)[rpc] = () => {
        throw grpcError(status.NOT_FOUND, 'client not found');
      };
      const r = await runWith(argv, { api });
      assert.equal(r.code, ExitCode.Refused);
      assert.equal(r.stdout, '');
      assert.equal(r.stderr, 'error: client not found (NOT_FOUND)\n');
    });
  }

  void it('new-c2key without --force refuses locally (exit 2), as the reference', async () => {
    const r = await runWith(['new-c2key']);
    assert.equal(r.code, ExitCode.Usage);
    assert.match(
      r.stderr,
      /^error: this command is potentially destructive\. Please rerun it with --force to confirm\n/,
    );
    assert.equal(r.api.calls.length, 0);
  });
});

/** A fake whose list RPCs serve `names` with offset/count, and whose counts say `names.length`. */
function listApi(names: readonly string[]): FakeApi {
  const page = (r: { offset: number; count: number }): string[] =>
    names.slice(r.offset, r.offset + r.count);
  const count = (): { count: string } => ({ count: String(names.length) });
  return new FakeApi()
    .onReference('CountClients', count)
    .onReference('GetClients', (r) => ({ clients: page(r).map((name) => ({ name })) }))
    .onReference('CountTopics', count)
    .onReference('GetTopics', (r) => ({ topics: page(r) }))
    .onReference('CountTopicsForClient', count)
    .onReference('GetTopicsForClient', (r) => ({ topics: page(r) }))
    .onReference('CountClientsForTopic', count)
    .onReference('GetClientsForTopic', (r) => ({ clients: page(r).map((name) => ({ name })) }))
    .onReference('CountLinkedClients', count)
    .onReference('GetLinkedClients', (r) => ({ clients: page(r).map((name) => ({ name })) }));
}

const NAMES = Array.from({ length: 250 }, (_v, i) => `n${String(i).padStart(3, '0')}`);

const LISTS: readonly [string[], string, string, string, Record<string, unknown>][] = [
  [['client', 'list'], 'CountClients', 'GetClients', 'clients', {}],
  [['topic', 'list'], 'CountTopics', 'GetTopics', 'topics', {}],
  [
    ['client', 'list-topics', '--name', 'c'],
    'CountTopicsForClient',
    'GetTopicsForClient',
    'topics',
    { client: { name: 'c' } },
  ],
  [
    ['topic', 'list-clients', '--name', 't'],
    'CountClientsForTopic',
    'GetClientsForTopic',
    'clients',
    { topic: 't' },
  ],
  [
    ['client', 'list-linked-clients', '--name', 'c'],
    'CountLinkedClients',
    'GetLinkedClients',
    'clients',
    { client: { name: 'c' } },
  ],
];

void describe('reference lists', () => {
  for (const [argv, countRpc, pageRpc, key, scope] of LISTS) {
    const label = words(argv);
    void it(`${label}: counts, then pages of 100, one name per line`, async () => {
      const r = await runWith(argv, { api: listApi(NAMES) });
      assert.equal(r.code, ExitCode.Ok, r.stderr);
      assert.deepEqual(r.api.methods(), [
        `pb.C2/${countRpc}`,
        ...Array<string>(3).fill(`pb.C2/${pageRpc}`),
      ]);
      assert.deepEqual(
        r.api.calls.slice(1).map((c) => c.request),
        [0, 100, 200].map((offset) => ({ ...scope, offset, count: Math.min(100, 250 - offset) })),
      );
      assert.equal(r.stdout, NAMES.map((n) => `${n}\n`).join(''));
    });

    void it(`${label}: --offset and --count, and --json`, async () => {
      const r = await runWith([...argv, '--offset', '120', '--count', '5', '--json'], {
        api: listApi(NAMES),
      });
      assert.equal(r.code, ExitCode.Ok, r.stderr);
      assert.deepEqual(
        r.api.calls.slice(1).map((c) => c.request),
        [{ ...scope, offset: 120, count: 5 }],
      );
      assert.deepEqual(json(r.stdout), { [key]: NAMES.slice(120, 125) });
    });

    void it(`${label}: an empty list prints nothing (JSON: an empty array)`, async () => {
      const r = await runWith(argv, { api: listApi([]) });
      assert.equal(r.stdout, '');
      assert.deepEqual(r.api.methods(), [`pb.C2/${countRpc}`]);
      const j = await runWith([...argv, '--json'], { api: listApi([]) });
      assert.deepEqual(json(j.stdout), { [key]: [] });
    });
  }

  void it('stops at a short page when the list shrank since the count', async () => {
    const api = listApi(NAMES.slice(0, 150)).onReference('CountClients', () => ({ count: '250' }));
    const r = await runWith(['client', 'list'], { api });
    assert.equal(r.code, ExitCode.Ok);
    assert.equal(r.api.calls.length, 3);
    assert.equal(r.stdout.split('\n').length - 1, 150);
  });
});

void describe('count', () => {
  const cases: [string[], string, unknown][] = [
    [['--clients'], 'CountClients', {}],
    [['--clients', '--topic', 't'], 'CountClientsForTopic', { topic: 't' }],
    [['--topics'], 'CountTopics', {}],
    [['--topics', '--client', 'c'], 'CountTopicsForClient', { client: { name: 'c' } }],
  ];
  for (const [flags, rpc, request] of cases) {
    void it(`count ${flags.join(' ')} calls ${rpc} and prints the number`, async () => {
      const r = await runWith(['count', ...flags], { api: listApi(['a', 'b', 'c']) });
      assert.equal(r.code, ExitCode.Ok, r.stderr);
      assert.deepEqual(r.api.methods(), [`pb.C2/${rpc}`]);
      assert.deepEqual(r.api.calls[0]?.request, request);
      assert.equal(r.stdout, '3\n');
      const j = await runWith(['count', ...flags, '--json'], { api: listApi(['a', 'b', 'c']) });
      assert.deepEqual(json(j.stdout), { count: 3 });
    });
  }
});

void describe('protect-message and unprotect-message', () => {
  void it('protect: sends the decoded bytes, prints base64 without a newline', async () => {
    const api = new FakeApi().onReference('ProtectMessage', (r) => ({
      topic: r.topic,
      protectedBinaryData: new Uint8Array([1, 2, 3, ...r.binaryData]),
    }));
    const r = await runWith(['protect-message', '--topic', 't', '--message', 'aGk='], { api });
    assert.equal(r.code, ExitCode.Ok, r.stderr);
    assert.deepEqual(r.api.calls[0]?.request, {
      topic: 't',
      binaryData: new Uint8Array([104, 105]),
    });
    assert.equal(r.stdout, 'AQIDaGk=');
    const j = await runWith(['protect-message', '--topic', 't', '--message', 'aGk=', '--json'], {
      api,
    });
    assert.deepEqual(json(j.stdout), { topic: 't', protected: 'AQIDaGk=' });
  });

  void it('unprotect: prints the clear bytes as base64 without a newline', async () => {
    const api = new FakeApi().onReference('UnprotectMessage', (r) => ({
      topic: r.topic,
      binaryData: r.protectedBinaryData.slice(3),
    }));
    const r = await runWith(['unprotect-message', '--topic', 't', '--message', 'AQIDaGk='], {
      api,
    });
    assert.equal(r.code, ExitCode.Ok, r.stderr);
    assert.deepEqual(r.api.calls[0]?.request, {
      topic: 't',
      protectedBinaryData: new Uint8Array([1, 2, 3, 104, 105]),
    });
    assert.equal(r.stdout, 'aGk=');
  });

  void it('rejects malformed base64 locally (exit 2)', async () => {
    for (const message of ['not base64!', 'aGk', 'a=b=']) {
      const r = await runWith(['protect-message', '--topic', 't', '--message', message]);
      assert.equal(r.code, ExitCode.Usage, message);
      assert.equal(r.stderr, 'error: --message must be standard base64\n');
      assert.equal(r.api.calls.length, 0);
    }
  });

  void it('an authentication failure on the server is exit 1', async () => {
    const api = new FakeApi().onReference('UnprotectMessage', () => {
      throw grpcError(status.INVALID_ARGUMENT, 'failed to unprotect message: NotAuthentic');
    });
    const r = await runWith(['unprotect-message', '--topic', 't', '--message', 'AAAA'], { api });
    assert.equal(r.code, ExitCode.Refused);
    assert.equal(r.stderr, 'error: failed to unprotect message: NotAuthentic (INVALID_ARGUMENT)\n');
  });
});
