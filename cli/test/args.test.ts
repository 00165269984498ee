// Argument parsing, help and usage errors for every command of the table (no server: a fake).
import assert from 'node:assert/strict';
import { createHash, generateKeyPairSync } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { didYouMean, flagsOf } from '../args.ts';
import { COMMAND_TABLE } from '../commands/index.ts';
import { GLOBAL_FLAGS } from '../spec.ts';
import { ExitCode } from '../errors.ts';
import { synopsis } from '../usage.ts';
import { FakeApi, runWith } from './support/fake-api.ts';
import { selfSignedCert } from './support/tls.ts';

/** Valid values for every flag name the table uses, so each command can be run minimally. */
const SAMPLE: Readonly<Record<string, string>> = {
  name: 'n1',
  key: 'key.bin',
  password: 'pass.txt',
  source: 's1',
  target: 't1',
  client: 'c1',
  topic: 'top/ic',
  message: 'aGVsbG8=',
  after: '0',
  version: '1',
  offset: '0',
  count: '0',
  'public-key': 'pub.bin',
};

/** The smallest valid argv of a command: its path, its required flags, one of each exactly-one. */
function minimalArgv(path: readonly string[]): string[] {
  const command = COMMAND_TABLE.commands.find((c) => c.path.join(' ') === path.join(' '));
  assert.ok(command !== undefined);
  const argv = [...command.path];
  const add = (name: string): void => {
    const flag = command.flags.find((f) => f.name === name);
    assert.ok(flag !== undefined, name);
    argv.push(`--${name}`);
    if (flag.kind !== 'boolean') argv.push(SAMPLE[name] ?? 'x');
  };
  command.flags
    .filter((f) => f.required === true)
    .forEach((f) => {
      add(f.name);
    });
  for (const rule of command.constraints ?? []) {
    if (rule.kind === 'exactly-one' && rule.flags[0] !== undefined) add(rule.flags[0]);
  }
  return argv;
}

const ALL_PATHS = COMMAND_TABLE.commands.map((c) => c.path.join(' '));

void describe('the command table', () => {
  void it('has every reference c2cli verb and every e4c2.v1 verb, each once', () => {
    const expected = [
      'client create',
      'client remove',
      'client reset',
      'client new-key',
      'client list',
      'client list-topics',
      'client link-client',
      'client unlink-client',
      'client list-linked-clients',
      'client send-pubkey',
      'client remove-pubkey',
      'client reset-pubkeys',
      'topic create',
      'topic remove',
      'topic list',
      'topic list-clients',
      'attach',
      'detach',
      'count',
      'events',
      'new-c2key',
      'protect-message',
      'unprotect-message',
      'client show',
      'client rotate',
      'client resync',
      'topic show',
      'topic rotate',
      'topic traffic',
      'status',
      'c2-public-key',
      'health',
      'token new',
      'restore-reconcile',
      'rules list',
      'rules get',
      'rules create',
      'rules update',
      'rules enable',
      'rules disable',
      'rules delete',
      'rules add-trigger',
      'rules remove-trigger',
      'rules add-target',
      'rules remove-target',
      'rules firings',
      'automation status',
      'automation pause',
      'automation resume',
    ];
    assert.deepEqual([...ALL_PATHS].sort(), [...expected].sort());
  });

  void it('no command flag shadows a global flag (only status --version, the key version)', () => {
    const globals = new Set(GLOBAL_FLAGS.map((f) => f.name));
    const shadowing = COMMAND_TABLE.commands.flatMap((c) =>
      c.flags.filter((f) => globals.has(f.name)).map((f) => `${c.path.join(' ')} --${f.name}`),
    );
    // `rules create --timeout` was the rollout's: a deadline given before the command words
    // silently became a rollout timeout stored in the rule.
    assert.deepEqual(shadowing, ['status --version']);
  });

  void it('declares each flag once per command and names the RPCs of each', () => {
    for (const command of COMMAND_TABLE.commands) {
      const names = flagsOf(command).map((f) => f.name);
      assert.equal(new Set(names).size, names.length, command.path.join(' '));
      // Only the local token commands call nothing.
      assert.ok(command.calls.length > 0 || command.path[0] === 'token', command.path.join(' '));
      for (const rule of command.constraints ?? []) {
        const flags = rule.kind === 'exactly-one' ? rule.flags : [rule.flag, rule.with];
        for (const f of flags)
          assert.ok(
            command.flags.some((spec) => spec.name === f),
            f,
          );
      }
    }
  });
});

void describe('help', () => {
  for (const path of ALL_PATHS) {
    void it(`"${path} --help" prints the usage of ${path} and exits 0`, async () => {
      const command = COMMAND_TABLE.commands.find((c) => c.path.join(' ') === path);
      assert.ok(command !== undefined);
      for (const argv of [
        [...command.path, '--help'],
        [...command.path, '-h'],
        ['help', ...command.path],
      ]) {
        const r = await runWith(argv);
        assert.equal(r.code, ExitCode.Ok);
        assert.ok(r.stdout.startsWith(`Usage: ${synopsis(command)}`), r.stdout);
        for (const flag of command.flags) assert.ok(r.stdout.includes(`--${flag.name}`), flag.name);
        assert.ok(r.stdout.includes('Global flags:'));
        // Every command says what it calls; a local one says it calls nothing.
        assert.match(r.stdout, /\nCalls: \S/);
        assert.equal(r.stderr, '');
        assert.equal(r.connection, undefined, 'help never connects');
      }
    });
  }

  void it('prints help even when required flags are missing', async () => {
    const r = await runWith(['client', 'create', '--help']);
    assert.equal(r.code, ExitCode.Ok);
    assert.match(
      r.stdout,
      /Usage: e4c2 client create --name NAME \(--key FILE \| --password FILE\)/,
    );
  });

  void it('lists every command at the top level and every verb of a group', async () => {
    const root = await runWith(['--help']);
    assert.equal(root.code, ExitCode.Ok);
    for (const path of ALL_PATHS) assert.ok(root.stdout.includes(path), path);
    assert.match(root.stdout, /Exit codes: 0 ok; 1 the server refused/);
    const group = await runWith(['client', '--help']);
    assert.equal(group.code, ExitCode.Ok);
    assert.match(group.stdout, /^Usage: e4c2 client <verb>/);
    assert.ok(group.stdout.includes('client list-linked-clients'));
    assert.ok(!group.stdout.includes('topic create'));
    assert.equal(
      (await runWith(['help', 'topic'])).stdout.startsWith('Usage: e4c2 topic <verb>'),
      true,
    );
  });

  void it('prints the version', async () => {
    const r = await runWith(['--version']);
    assert.equal(r.code, ExitCode.Ok);
    assert.equal(r.stdout, 'e4c2 9.9.9\n');
  });

  void it('a leading --version is the program version, even before a command', async () => {
    for (const argv of [
      ['--version', 'status', '--topic', 'a'],
      ['--version', 'client', 'list'],
    ]) {
      const r = await runWith(argv);
      assert.equal(r.code, ExitCode.Ok, argv.join(' '));
      assert.equal(r.stdout, 'e4c2 9.9.9\n');
    }
  });
});

void describe('usage errors exit 2 and print the usage of the command', () => {
  void it('no command at all', async () => {
    const r = await runWith([]);
    assert.equal(r.code, ExitCode.Usage);
    assert.match(r.stderr, /^error: missing command\n\nUsage: e4c2 \[global flags\] <command>/);
    assert.equal(r.stdout, '');
  });

  void it('an unknown flag before the command is named, not reported as a missing command', async () => {
    const r = await runWith(['--bogus', 'client', 'list']);
    assert.equal(r.code, ExitCode.Usage);
    assert.match(r.stderr, /^error: unknown flag --bogus; only global flags may come before/);
    const token = await runWith(['--token=abc', 'client', 'list']);
    assert.equal(token.code, ExitCode.Usage);
    assert.match(
      token.stderr,
      /^error: unknown flag --token \(a token comes from --token-file FILE or E4C2_TOKEN\)/,
    );
    assert.ok(!token.stderr.includes('abc'), 'the value is not echoed');
  });

  void it('unknown commands and verbs, with a suggestion', async () => {
    const top = await runWith(['clinet', 'list']);
    assert.equal(top.code, ExitCode.Usage);
    assert.match(top.stderr, /^error: unknown command "clinet"; did you mean "client"\?/);
    const verb = await runWith(['client', 'lst']);
    assert.equal(verb.code, ExitCode.Usage);
    assert.match(verb.stderr, /^error: unknown command "client lst"; did you mean "list"\?/);
    assert.match(verb.stderr, /Usage: e4c2 client <verb>/);
    const bare = await runWith(['topic']);
    assert.equal(bare.code, ExitCode.Usage);
    assert.match(bare.stderr, /^error: "topic" needs a verb/);
    assert.equal((await runWith(['help', 'nope'])).code, ExitCode.Usage);
  });

  for (const path of ALL_PATHS) {
    const command = COMMAND_TABLE.commands.find((c) => c.path.join(' ') === path);
    assert.ok(command !== undefined);
    const usageLine = `Usage: ${synopsis(command)}`;

    void it(`${path}: an unknown flag`, async () => {
      const r = await runWith([...minimalArgv(command.path), '--bogus']);
      assert.equal(r.code, ExitCode.Usage);
      assert.ok(r.stderr.startsWith('error: unknown flag --bogus\n'), r.stderr);
      assert.ok(r.stderr.includes(usageLine), r.stderr);
      assert.equal(r.connection, undefined);
    });

    void it(`${path}: an extra argument`, async () => {
      const r = await runWith([...minimalArgv(command.path), 'extra']);
      assert.equal(r.code, ExitCode.Usage);
      assert.ok(r.stderr.startsWith('error: unexpected argument "extra"\n'), r.stderr);
      assert.ok(r.stderr.includes(usageLine));
    });

    for (const flag of command.flags.filter((f) => f.required === true)) {
      void it(`${path}: without --${flag.name}`, async () => {
        const argv = minimalArgv(command.path);
        const at = argv.indexOf(`--${flag.name}`);
        argv.splice(at, flag.kind === 'boolean' ? 1 : 2);
        const r = await runWith(argv);
        assert.equal(r.code, ExitCode.Usage);
        assert.ok(r.stderr.startsWith(`error: flag --${flag.name} is required\n`), r.stderr);
        assert.ok(r.stderr.includes(usageLine));
        assert.equal(r.api.calls.length, 0);
      });

      if (flag.kind !== 'boolean') {
        void it(`${path}: --${flag.name} without a value`, async () => {
          const argv = minimalArgv(command.path);
          argv.splice(argv.indexOf(`--${flag.name}`) + 1, 1);
          argv.push(`--${flag.name}`);
          const r = await runWith(argv);
          assert.equal(r.code, ExitCode.Usage);
          assert.ok(r.stderr.startsWith(`error: flag --${flag.name} needs a value`), r.stderr);
        });
      }
    }
  }

  void it('exactly-one groups: none, and both', async () => {
    const none = await runWith(['client', 'create', '--name', 'a']);
    assert.equal(none.code, ExitCode.Usage);
    assert.match(none.stderr, /^error: one of --key or --password is required/);
    const both = await runWith([
      'client',
      'create',
      '--name',
      'a',
      '--key',
      'k',
      '--password',
      'p',
    ]);
    assert.equal(both.code, ExitCode.Usage);
    assert.match(both.stderr, /^error: only one of --key or --password is allowed/);
    const count = await runWith(['count']);
    assert.match(count.stderr, /^error: one of --clients or --topics is required/);
    const countBoth = await runWith(['count', '--clients', '--topics']);
    assert.match(countBoth.stderr, /^error: only one of --clients or --topics is allowed/);
  });

  void it('count: --topic only with --clients, --client only with --topics', async () => {
    const a = await runWith(['count', '--topics', '--topic', 't']);
    assert.equal(a.code, ExitCode.Usage);
    assert.match(a.stderr, /^error: --topic can be used only with --clients/);
    const b = await runWith(['count', '--clients', '--client', 'c']);
    assert.equal(b.code, ExitCode.Usage);
    assert.match(b.stderr, /^error: --client can be used only with --topics/);
  });

  void it('integer flags', async () => {
    const text = await runWith(['client', 'list', '--count', 'many']);
    assert.equal(text.code, ExitCode.Usage);
    assert.match(text.stderr, /^error: flag --count needs an integer, got "many"/);
    const negative = await runWith(['client', 'list', '--offset=-1']);
    assert.match(negative.stderr, /^error: flag --offset must be at least 0/);
    // As c2cli reads it (Go's pflag): scripts written for it pass --count -1 for "all".
    const spaced = await runWith(['client', 'list', '--count', '-1']);
    assert.equal(spaced.code, ExitCode.Ok, spaced.stderr);
    const allowed = await runWith(['client', 'list', '--count=-1']);
    assert.equal(allowed.code, ExitCode.Ok);
    const spacedNegative = await runWith(['client', 'list', '--offset', '-1']);
    assert.match(spacedNegative.stderr, /^error: flag --offset must be at least 0/);
    const stringFlag = await runWith(['topic', 'create', '--name', '-1']);
    assert.match(stringFlag.stderr, /^error: flag --name needs a value \(write --name=VALUE/);
    const version = await runWith(['status', '--topic', 't', '--version', '0']);
    assert.match(version.stderr, /^error: flag --version must be at least 1/);
    // A uint32 field: the gRPC encoder would send 2^32 + 1 as 1 without a word.
    const wrapped = await runWith(['status', '--topic', 't', '--version', String(2 ** 32 + 1)]);
    assert.equal(wrapped.code, ExitCode.Usage);
    assert.match(wrapped.stderr, /^error: flag --version must be at most 4294967295/);
    for (const argv of [
      ['rules', 'delete', '--id', 'r1', '--expected-version', '4294967296'],
      ['restore-reconcile', '--version-margin', '4294967296'],
    ]) {
      const r = await runWith(argv);
      assert.equal(r.code, ExitCode.Usage, argv.join(' '));
      assert.match(r.stderr, /must be at most 4294967295/, argv.join(' '));
    }
    // The C2's own limit (ten years), not the wire type's: refused before any call.
    for (const flag of ['--every', '--max-age']) {
      const argv = ['rules', 'create', '--action', 'rotate-topic-key', flag, '316224001'];
      const r = await runWith([...argv, '--topic', 't']);
      assert.equal(r.code, ExitCode.Usage, argv.join(' '));
      assert.match(r.stderr, /must be at most 316224000/, argv.join(' '));
    }
  });

  void it('a flag given twice, and a short flag without its value', async () => {
    const twice = await runWith(['topic', 'create', '--name', 'x', '--name=y']);
    assert.equal(twice.code, ExitCode.Usage);
    assert.match(twice.stderr, /^error: flag --name is given more than once/);
    const bare = await runWith(['topic', 'list', '-e']);
    assert.equal(bare.code, ExitCode.Usage);
    assert.match(bare.stderr, /^error: flag --endpoint needs a value\n/);
  });

  void it('a boolean flag given a value', async () => {
    const r = await runWith(['count', '--clients=yes']);
    assert.equal(r.code, ExitCode.Usage);
    assert.match(r.stderr, /^error: flag --clients takes no value/);
  });

  void it('empty values count as missing', async () => {
    const r = await runWith(['topic', 'create', '--name', '']);
    assert.equal(r.code, ExitCode.Usage);
    assert.match(r.stderr, /^error: flag --name needs a value, not an empty one/);
  });

  void it('an empty value of an optional flag is refused, not read as given and absent at once', async () => {
    // Each slipped past a conflict check: a file named "", a topic filter ignored, a call made.
    for (const [argv, flag] of [
      [['client', 'create', '--name', 'x', '--key', '', '--password', 'p'], 'key'],
      [['count', '--topics', '--topic', ''], 'topic'],
      [['count', '--topics', '--client', ''], 'client'],
    ] as const) {
      const r = await runWith([...argv]);
      assert.equal(r.code, ExitCode.Usage, argv.join(' '));
      assert.match(r.stderr, new RegExp(`^error: flag --${flag} needs a value, not an empty one`));
      assert.equal(r.api.calls.length, 0, 'nothing was sent');
    }
  });
});

void describe('global flags and environment', () => {
  void it('defaults: 127.0.0.1:5555, TLS with system roots, 10 s, a generated request id', async () => {
    const r = await runWith(['topic', 'create', '--name', 't']);
    assert.equal(r.code, ExitCode.Ok);
    assert.deepEqual(r.connection, {
      endpoint: '127.0.0.1:5555',
      tls: { kind: 'tls' },
      timeoutMs: 10_000,
      userAgent: 'e4c2-cli/9.9.9',
      signal: r.connection?.signal,
    });
    assert.deepEqual(r.api.calls[0]?.request, { name: 't', request_id: 'generated-request-id' });
  });

  void it('accepts global flags before and after the command words', async () => {
    const before = await runWith([
      '-e',
      'c2.example:7000',
      '--insecure',
      '--timeout',
      '2.5',
      'topic',
      'create',
      '--name',
      't',
    ]);
    const after = await runWith([
      'topic',
      'create',
      '--name',
      't',
      '--endpoint=c2.example:7000',
      '--insecure',
      '--timeout=2.5',
    ]);
    for (const r of [before, after]) {
      assert.equal(r.code, ExitCode.Ok, r.stderr);
      assert.equal(r.connection?.endpoint, 'c2.example:7000');
      assert.deepEqual(r.connection.tls, { kind: 'insecure' });
      assert.equal(r.connection.timeoutMs, 2500);
    }
  });

  void it('reads E4C2_ENDPOINT and E4C2_CERT; flags win over them', async () => {
    const [pem, other] = await Promise.all([selfSignedCert(), selfSignedCert()]);
    const files = { '/etc/c2.pem': pem.cert, '/tmp/other.pem': other.cert };
    const env = { E4C2_ENDPOINT: '10.0.0.1:5555', E4C2_CERT: '/etc/c2.pem' };
    const fromEnv = await runWith(['count', '--clients'], { env, files, api: countApi() });
    assert.equal(fromEnv.code, ExitCode.Ok, fromEnv.stderr);
    assert.equal(fromEnv.connection?.endpoint, '10.0.0.1:5555');
    assert.deepEqual(fromEnv.connection.tls, {
      kind: 'tls',
      rootCerts: new TextEncoder().encode(pem.cert),
    });
    const flags = await runWith(
      [
        '-e',
        '[::1]:6000',
        '-c',
        '/tmp/other.pem',
        '--servername',
        'c2.local',
        'count',
        '--clients',
      ],
      { env, files, api: countApi() },
    );
    assert.equal(flags.connection?.endpoint, '[::1]:6000');
    assert.deepEqual(flags.connection.tls, {
      kind: 'tls',
      rootCerts: new TextEncoder().encode(other.cert),
      servername: 'c2.local',
    });
    const insecure = await runWith(['--insecure', 'count', '--clients'], {
      env,
      files,
      api: countApi(),
    });
    assert.deepEqual(
      insecure.connection?.tls,
      { kind: 'insecure' },
      '--insecure ignores E4C2_CERT',
    );
  });

  void it('reads the token from E4C2_TOKEN or --token-file (the file wins); refuses a malformed one', async () => {
    const token = 'Zm9vYmFyYmF6cXV4cXV1eA';
    const files = { '/run/token': `${token}-file\n`, '/run/bad': 'not a token\n' };
    const fromEnv = await runWith(['count', '--clients'], {
      env: { E4C2_TOKEN: token },
      api: countApi(),
    });
    assert.equal(fromEnv.connection?.token, token);
    const fromFile = await runWith(['--token-file', '/run/token', 'count', '--clients'], {
      env: { E4C2_TOKEN: token },
      files,
      api: countApi(),
    });
    assert.equal(fromFile.connection?.token, `${token}-file`);
    const none = await runWith(['count', '--clients'], { api: countApi() });
    assert.equal(none.connection?.token, undefined);
    const bad = await runWith(['--token-file', '/run/bad', 'count', '--clients'], { files });
    assert.equal(bad.code, ExitCode.Usage);
    assert.equal(bad.connection, undefined, 'nothing was called');
    assert.ok(!bad.stderr.includes('not a token'), 'the token is not echoed');
    const missing = await runWith(['--token-file', '/run/none', 'count', '--clients'], { files });
    assert.equal(missing.code, ExitCode.Usage);
  });

  void it('warns about a token file others can read, and still uses it', async () => {
    const files = { '/run/token': 'Zm9vYmFyYmF6cXV4cXV1eA\n' };
    const open = await runWith(['--token-file', '/run/token', 'count', '--clients'], {
      files,
      modes: { '/run/token': 0o100644 },
      api: countApi(),
    });
    assert.equal(open.code, ExitCode.Ok, open.stderr);
    assert.match(
      open.stderr,
      /^warning: token file \/run\/token is readable by others \(mode 0644\); run "chmod 600 \/run\/token"\n/,
    );
    assert.ok(!open.stderr.includes('Zm9vYmFy'), 'the token is not echoed');
    const closed = await runWith(['--token-file', '/run/token', 'count', '--clients'], {
      files,
      modes: { '/run/token': 0o100600 },
      api: countApi(),
    });
    assert.equal(closed.stderr, '');
  });

  void it('token new: a 256-bit token and the credentials entry holding its SHA-256', async () => {
    const r = await runWith([
      '--json',
      'token',
      'new',
      '--name',
      'ops-alice',
      '--role',
      'operator',
    ]);
    assert.equal(r.code, ExitCode.Ok, r.stderr);
    const out = JSON.parse(r.stdout) as { token: string; entry: Record<string, string> };
    assert.match(out.token, /^[A-Za-z0-9_-]{43}$/);
    assert.deepEqual(out.entry, {
      name: 'ops-alice',
      role: 'operator',
      sha256: createHash('sha256').update(out.token).digest('hex'),
    });
    assert.equal(r.api.calls.length, 0, 'no call to the C2');
    const dir = await mkdtemp(join(tmpdir(), 'e4c2-token-'));
    try {
      const file = join(dir, 'token');
      const written = await runWith([
        ...['--json', 'token', 'new', '--name', 'b', '--role', 'admin', '--out', file],
      ]);
      assert.equal(written.code, ExitCode.Ok, written.stderr);
      const doc = JSON.parse(written.stdout) as Record<string, unknown>;
      assert.equal(doc['token_file'], file, 'snake_case, as the proto names');
      assert.equal(doc['token'], undefined, 'the token only in the file');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
    const badRole = await runWith(['token', 'new', '--name', 'x', '--role', 'root']);
    assert.equal(badRole.code, ExitCode.Usage);
  });

  void it('rejects conflicting or malformed global flags', async () => {
    const cases: [string[], RegExp][] = [
      [['--cert', 'a.pem', '--insecure'], /--cert and --insecure exclude each other/],
      [['--insecure', '--servername', 'x'], /--servername applies to TLS connections/],
      [['-e', 'localhost'], /--endpoint must be HOST:PORT/],
      [['-e', 'host:99999'], /--endpoint must be HOST:PORT/],
      [['--timeout', '0'], /--timeout must be a number of seconds above 0/],
      [['--timeout', 'soon'], /--timeout must be a number of seconds above 0/],
      [['--request-id', 'has space'], /--request-id must be 1 to 128 printable ASCII/],
    ];
    for (const [flags, message] of cases) {
      const r = await runWith([...flags, 'topic', 'list']);
      assert.equal(r.code, ExitCode.Usage, flags.join(' '));
      assert.match(r.stderr, message);
      assert.match(r.stderr, /Usage: e4c2 topic list/);
    }
    const env = await runWith(['topic', 'list'], { env: { E4C2_ENDPOINT: 'nope' } });
    assert.match(env.stderr, /^error: E4C2_ENDPOINT must be HOST:PORT/);
  });

  void it('refuses --request-id where the server keeps no idempotency record (it was ignored)', async () => {
    for (const argv of [
      ['rules', 'create', '--action', 'rotate-topic-key', '--every', '3600', '--topic', 't'],
      ['rules', 'delete', '--id', '3'],
      ['automation', 'pause'],
      ['restore-reconcile'],
    ]) {
      const r = await runWith([...argv, '--request-id', 'once-1']);
      assert.equal(r.code, ExitCode.Usage, argv.join(' '));
      assert.match(r.stderr, /takes no --request-id: the server keeps no idempotency record/);
      assert.equal(r.api.calls.length, 0, 'nothing was sent');
    }
    const read = await runWith(['topic', 'list', '--request-id', 'once-1']);
    assert.equal(read.code, ExitCode.Ok, 'a read ignores it, as every read does');
  });

  void it('a missing certificate file is a local error (exit 2), before any call', async () => {
    const r = await runWith(['-c', '/nope.pem', 'topic', 'list']);
    assert.equal(r.code, ExitCode.Usage);
    assert.match(r.stderr, /^error: cannot read certificate file \/nope.pem: ENOENT/);
    assert.equal(r.connection, undefined);
  });

  void it('a certificate file without a PEM certificate is a local error (exit 2)', async () => {
    const { cert, key } = await selfSignedCert();
    const cases: Array<[string, RegExp]> = [
      ['garbage', /^error: certificate file \/c\.pem holds no PEM certificate\n/],
      [key, /^error: certificate file \/c\.pem holds a private key, not a certificate\n/],
      [cert.replace(/[A-Za-z]{20}/, 'A'.repeat(20)), /holds a damaged PEM certificate/],
    ];
    for (const [content, message] of cases) {
      const r = await runWith(['-c', '/c.pem', 'topic', 'list'], { files: { '/c.pem': content } });
      assert.equal(r.code, ExitCode.Usage, r.stderr);
      assert.match(r.stderr, message);
      assert.ok(!r.stderr.includes('PRIVATE KEY'), 'the key is not shown');
      assert.equal(r.connection, undefined);
    }
  });

  void it('reads --client-cert/--client-key, or E4C2_CLIENT_CERT/E4C2_CLIENT_KEY (the flags win)', async () => {
    const [mine, other, server] = await Promise.all([
      selfSignedCert(),
      selfSignedCert(),
      selfSignedCert(),
    ]);
    const files = {
      '/id/me.crt': mine.cert,
      '/id/me.key': mine.key,
      '/id/other.crt': other.cert,
      '/id/other.key': other.key,
      '/etc/c2.pem': server.cert,
      '/run/token': 'Zm9vYmFyYmF6cXV4cXV1eA\n',
    };
    const pair = (p: { cert: string; key: string }) => ({
      certChain: new TextEncoder().encode(p.cert),
      privateKey: new TextEncoder().encode(p.key),
    });
    const env = { E4C2_CLIENT_CERT: '/id/me.crt', E4C2_CLIENT_KEY: '/id/me.key' };
    const fromEnv = await runWith(['count', '--clients'], { env, files, api: countApi() });
    assert.equal(fromEnv.code, ExitCode.Ok, fromEnv.stderr);
    assert.deepEqual(fromEnv.connection?.tls, { kind: 'tls', clientCert: pair(mine) });
    const flags = await runWith(
      [
        '--client-cert',
        '/id/other.crt',
        '--client-key=/id/other.key',
        '-c',
        '/etc/c2.pem',
        'count',
        '--clients',
      ],
      { env, files, api: countApi() },
    );
    assert.equal(flags.code, ExitCode.Ok, flags.stderr);
    assert.deepEqual(flags.connection?.tls, {
      kind: 'tls',
      rootCerts: new TextEncoder().encode(server.cert),
      clientCert: pair(other),
    });
    const withToken = await runWith(['--token-file', '/run/token', 'count', '--clients'], {
      env,
      files,
      api: countApi(),
    });
    assert.equal(withToken.code, ExitCode.Ok, withToken.stderr);
    assert.equal(withToken.connection?.token, 'Zm9vYmFyYmF6cXV4cXV1eA', 'a token beside a cert');
    assert.deepEqual(withToken.connection.tls, { kind: 'tls', clientCert: pair(mine) });
    const insecure = await runWith(['--insecure', 'count', '--clients'], {
      env,
      files,
      api: countApi(),
    });
    assert.deepEqual(insecure.connection?.tls, { kind: 'insecure' }, '--insecure ignores the env');
    const help = await runWith(['--help']);
    assert.match(help.stdout, /--client-cert FILE .*E4C2_CLIENT_CERT/s);
    assert.match(help.stdout, /--client-key FILE .*E4C2_CLIENT_KEY/s);
  });

  void it('a client certificate without its key, or a key without its certificate, is exit 2', async () => {
    const cases: [string[], Record<string, string>, RegExp][] = [
      [
        ['--client-cert', 'me.crt'],
        {},
        /^error: --client-cert needs --client-key FILE, the private key of that certificate\n/,
      ],
      [
        ['--client-key', 'me.key'],
        {},
        /^error: --client-key needs --client-cert FILE, the certificate of that key\n/,
      ],
      [
        ['--client-cert', 'me.crt'],
        { E4C2_CLIENT_KEY: 'env.key' },
        /^error: --client-cert needs --client-key FILE, .* \(E4C2_CLIENT_KEY is not combined with a flag\)\n/,
      ],
      [
        [],
        { E4C2_CLIENT_CERT: 'me.crt' },
        /^error: E4C2_CLIENT_CERT is set but E4C2_CLIENT_KEY is not: a client certificate needs its key\n/,
      ],
      [
        [],
        { E4C2_CLIENT_KEY: 'me.key' },
        /^error: E4C2_CLIENT_KEY is set but E4C2_CLIENT_CERT is not/,
      ],
      [['--client-cert=', '--client-key', 'k'], {}, /^error: flag --client-cert needs a file\n/],
      [['--client-cert', 'c', '--client-key='], {}, /^error: flag --client-key needs a file\n/],
      [
        ['--insecure', '--client-cert', 'c', '--client-key', 'k'],
        {},
        /^error: --client-cert and --client-key apply to TLS connections; they cannot be used with --insecure\n/,
      ],
    ];
    for (const [flags, env, message] of cases) {
      const r = await runWith([...flags, 'topic', 'list'], { env });
      assert.equal(r.code, ExitCode.Usage, `${flags.join(' ')} ${JSON.stringify(env)}`);
      assert.match(r.stderr, message);
      assert.match(r.stderr, /Usage: e4c2 topic list/);
      assert.equal(r.connection, undefined, 'nothing was called');
    }
  });

  void it('an unreadable or non-PEM client certificate or key is exit 2 naming the file, never its content', async () => {
    const [mine, other] = await Promise.all([selfSignedCert(), selfSignedCert()]);
    const { privateKey: encrypted } = generateKeyPairSync('ec', {
      namedCurve: 'P-256',
      publicKeyEncoding: { type: 'spki', format: 'pem' },
      privateKeyEncoding: {
        type: 'pkcs8',
        format: 'pem',
        cipher: 'aes-256-cbc',
        passphrase: 'a passphrase',
      },
    });
    const damagedKey = '-----BEGIN PRIVATE KEY-----\nc2VjcmV0IGJ5dGVz\n-----END PRIVATE KEY-----\n';
    const garbage = 'secret-looking garbage';
    const cases: [Record<string, string>, RegExp][] = [
      [{ '/k': mine.key }, /^error: cannot read client certificate file \/c: ENOENT/],
      [{ '/c': mine.cert }, /^error: cannot read client key file \/k: ENOENT/],
      [
        { '/c': garbage, '/k': mine.key },
        /^error: client certificate file \/c holds no PEM certificate\n/,
      ],
      [
        { '/c': mine.key, '/k': mine.key },
        /^error: client certificate file \/c holds a private key, not a certificate\n/,
      ],
      [
        { '/c': mine.cert.replace(/[A-Za-z]{20}/, 'A'.repeat(20)), '/k': mine.key },
        /^error: client certificate file \/c holds a damaged PEM certificate\n/,
      ],
      [
        { '/c': mine.cert, '/k': garbage },
        /^error: client key file \/k holds no PEM private key\n/,
      ],
      [
        { '/c': mine.cert, '/k': mine.cert },
        /^error: client key file \/k holds a certificate, not a private key\n/,
      ],
      [
        { '/c': mine.cert, '/k': encrypted },
        /^error: client key file \/k holds an encrypted private key\nhint: e4c2 needs it unencrypted: openssl pkey -in \/k/,
      ],
      [
        { '/c': mine.cert, '/k': damagedKey },
        /^error: client key file \/k holds a damaged PEM private key\n/,
      ],
      [
        { '/c': mine.cert, '/k': other.key },
        /^error: client key file \/k is not the private key of the certificate in \/c\n/,
      ],
    ];
    const secrets = [mine.key, other.key, encrypted, damagedKey].map(
      (pem) => pem.split('\n')[1] ?? pem,
    );
    for (const [files, message] of cases) {
      const r = await runWith(['--client-cert', '/c', '--client-key', '/k', 'topic', 'list'], {
        files,
      });
      assert.equal(r.code, ExitCode.Usage, r.stderr);
      assert.match(r.stderr, message);
      assert.equal(r.connection, undefined, 'nothing was called');
      for (const secret of [...secrets, garbage, 'PRIVATE KEY', 'c2VjcmV0']) {
        assert.ok(!r.stderr.includes(secret), `the file's content is not shown: ${r.stderr}`);
      }
    }
  });

  void it('warns about a client key file others can read, and still uses it', async () => {
    const mine = await selfSignedCert();
    const files = { '/id/me.crt': mine.cert, '/id/me.key': mine.key };
    const argv = [
      '--client-cert',
      '/id/me.crt',
      '--client-key',
      '/id/me.key',
      'count',
      '--clients',
    ];
    const open = await runWith(argv, { files, modes: { '/id/me.key': 0o100640 }, api: countApi() });
    assert.equal(open.code, ExitCode.Ok, open.stderr);
    assert.equal(
      open.stderr,
      'warning: client key file /id/me.key is readable by others (mode 0640); run "chmod 600 /id/me.key"\n',
    );
    const closed = await runWith(argv, {
      files,
      modes: { '/id/me.key': 0o100600 },
      api: countApi(),
    });
    assert.equal(closed.stderr, '');
  });

  void it('--request-id is the idempotency key of reference and v1 mutations', async () => {
    const ref = await runWith(['--request-id', 'rid-1', 'attach', '--client', 'c', '--topic', 't']);
    assert.deepEqual(ref.api.calls[0]?.options, { idempotencyKey: 'rid-1' });
    const v1 = await runWith(['topic', 'rotate', '--name', 't', '--request-id', 'rid-2']);
    assert.deepEqual(v1.api.calls[0]?.request, { name: 't', request_id: 'rid-2' });
  });

  void it('status --version V is the key version, not the program version', async () => {
    const r = await runWith(['status', '--topic', 't', '--version', '3']);
    assert.equal(r.code, ExitCode.Ok, r.stderr);
    assert.deepEqual(r.api.calls[0]?.request, { name: 't', version: 3 });
  });
});

void describe('didYouMean', () => {
  void it('suggests within two edits or by prefix, else nothing', () => {
    assert.equal(didYouMean('lsit', ['list', 'show']), '; did you mean "list"?');
    assert.equal(didYouMean('list-t', ['list', 'list-topics']), '; did you mean "list-topics"?');
    assert.equal(didYouMean('zzzzzz', ['list', 'show']), '');
  });
});

function countApi(): FakeApi {
  return new FakeApi().onReference('CountClients', () => ({ count: '0' }));
}
