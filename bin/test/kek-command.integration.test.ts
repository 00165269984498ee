// `npm run kek`: KEK rotations run as the operator runs them (the command as a child process,
// with the node's settings in its environment) on a real database: passphrase -> key file ->
// PKCS#11 key (SoftHSM2) -> another PKCS#11 key; after each, only the new KEK opens what was
// sealed before the first. Plus the command line's refusals.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Secret } from '../../cluster/config/index.ts';
import {
  prepareDataDir,
  startEmbeddedPostgres,
  type RunningPostgres,
} from '../../cluster/embedded/index.ts';
import { Lifecycle } from '../../cluster/lifecycle.ts';
import {
  KeyVault,
  LocalKekProvider,
  Pkcs11KekProvider,
  VaultTransitKekProvider,
  type KekProvider,
  type SealBinding,
} from '../../cluster/keyvault/index.ts';
import { PgC2Store, PgDataKeyStore } from '../../cluster/storage/index.ts';
import {
  createTestSchema,
  TEST_DATABASE_URL,
  type TestSchema,
} from '../../cluster/test/support/postgres.ts';
import {
  makeTempDir,
  recordingLogger,
  removeTempDir,
} from '../../cluster/test/embedded/support.ts';
import { startFakeVault, type FakeVault } from '../../cluster/test/support/fake-vault-transit.ts';
import { softHsmMissing, startSoftHsm, type SoftHsm } from '../../cluster/test/support/softhsm.ts';
import { configuredKek } from '../kek-providers.ts';
import { parseKekArgs } from '../kek.ts';
import { UsageError } from '../usage-args.ts';

const hsmMissing = await softHsmMissing();
const binding: SealBinding = { table: 'topic_keys', rowId: '7', version: 2 };
const OLD_PASSPHRASE = 'the first passphrase of this fleet';
const PIN = '204060';
const TOKEN = 'kek-tool-test';
const quiet = { info: () => undefined, warn: () => undefined, error: () => undefined };

interface Run {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs `npm run kek -- ...args` as a child with `settings` as its only E4C2_* variables. */
function kek(args: readonly string[], settings: Record<string, string>): Promise<Run> {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('E4C2_')) env[k] = v;
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ['--import', 'tsx', 'bin/kek.ts', ...args],
      { env: { ...env, ...settings }, timeout: 60_000 },
      (err, stdout, stderr) => {
        const code = err === null ? 0 : typeof err.code === 'number' ? err.code : -1;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

/** Opens the schema's vault with `provider` alone and reads the sealed value back. */
async function openWith(schema: TestSchema, provider: KekProvider, sealed: Uint8Array) {
  const vault = await KeyVault.create({ provider, store: new PgDataKeyStore(schema.pool) });
  return vault.open(sealed, binding);
}

void describe('npm run kek', () => {
  let schema: TestSchema;
  let dir: string;
  let db: Record<string, string>;
  let sealed: Uint8Array;
  const secret = new Uint8Array(randomBytes(32));
  let fileKek: LocalKekProvider;
  let passphraseKek: KekProvider;

  before(async () => {
    schema = await createTestSchema();
    dir = await mkdtemp(join(tmpdir(), 'e4c2-kek-tool-'));
    db = { DATABASE_URL: TEST_DATABASE_URL, E4C2_DB_SCHEMA: schema.schema };
    // A deployment that started with a passphrase KEK (its salt stored as a node stores it).
    passphraseKek = await configuredKek(
      { kind: 'passphrase', passphrase: new Secret(OLD_PASSPHRASE) },
      new PgC2Store(schema.pool),
      new Lifecycle(quiet),
      quiet,
    );
    const vault = await KeyVault.create({
      provider: passphraseKek,
      store: new PgDataKeyStore(schema.pool),
    });
    sealed = await vault.seal(secret, binding);
    fileKek = await LocalKekProvider.generateKeyFile(join(dir, 'kek.key'));
  });

  after(async () => {
    await schema.drop();
    await rm(dir, { recursive: true, force: true });
  });

  void it('tells which KEK wraps the data keys', async () => {
    const run = await kek(['status'], { ...db, E4C2_KEK_PASSPHRASE: OLD_PASSPHRASE });
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.stdout, `data keys: 1\n  local/${passphraseKek.keyId}: 1\n`);
  });

  void it('refuses a rewrap that does not name the current KEK, and changes nothing', async () => {
    const run = await kek(['rewrap'], { ...db, E4C2_KEK_FILE: join(dir, 'kek.key') });
    assert.equal(run.code, 1);
    assert.match(run.stderr, /KEK local\/[0-9a-f]{16} is not configured/);
    assert.match(
      run.stderr,
      /--from-file, --from-passphrase-env, --from-pkcs11-key-label or --from-vault-key/,
    );
    assert.deepEqual(await openWith(schema, passphraseKek, sealed), secret);
  });

  void it('names the setting of a new KEK that does not open, and changes nothing', async () => {
    const missing = join(dir, 'missing.key');
    const run = await kek(['rewrap', '--from-passphrase-env', 'OLD_PASS'], {
      ...db,
      E4C2_KEK_FILE: missing,
      OLD_PASS: OLD_PASSPHRASE,
    });
    assert.equal(run.code, 1);
    assert.equal(run.stderr, `kek: E4C2_KEK_FILE (kek.file): KEK file ${missing} does not exist\n`);
    assert.deepEqual(await openWith(schema, passphraseKek, sealed), secret);
  });

  void it('moves the data keys from the passphrase to a key file', async () => {
    const settings = { ...db, E4C2_KEK_FILE: join(dir, 'kek.key'), OLD_PASS: OLD_PASSPHRASE };
    const run = await kek(['rewrap', '--from-passphrase-env', 'OLD_PASS'], settings);
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.stdout, `re-wrapped 1 data key(s) under KEK local/${fileKek.keyId}\n`);
    assert.ok(!run.stdout.includes(OLD_PASSPHRASE) && !run.stderr.includes(OLD_PASSPHRASE));
    assert.deepEqual(await openWith(schema, fileKek, sealed), secret);
    await assert.rejects(openWith(schema, passphraseKek, sealed), /is not configured/);
    const again = await kek(['rewrap', '--from-passphrase-env', 'OLD_PASS'], settings);
    assert.equal(again.stdout, `every data key is under KEK local/${fileKek.keyId} already\n`);
  });

  void describe('into an HSM (SoftHSM2)', { skip: hsmMissing }, () => {
    let hsm: SoftHsm;
    let pkcs11: Record<string, string>;

    before(async () => {
      hsm = await startSoftHsm();
      await hsm.initToken(TOKEN, PIN);
      pkcs11 = {
        ...db,
        SOFTHSM2_CONF: process.env['SOFTHSM2_CONF'] ?? '',
        E4C2_KEK_PKCS11_MODULE: hsm.modulePath,
        E4C2_KEK_PKCS11_TOKEN: TOKEN,
        E4C2_KEK_PKCS11_PIN: PIN,
      };
    });

    after(() => hsm.remove());

    const providerFor = (keyLabel: string): Promise<Pkcs11KekProvider> =>
      Pkcs11KekProvider.open({ modulePath: hsm.modulePath, tokenLabel: TOKEN, keyLabel, pin: PIN });

    void it('creates the key on the token once, then moves the data keys into it', async () => {
      const created = await kek(['pkcs11-keygen'], pkcs11);
      assert.equal(created.code, 0, created.stderr);
      assert.match(created.stdout, /^created KEK pkcs11\/e4c2-kek\/[0-9a-f]{16}\n$/);
      const twice = await kek(['pkcs11-keygen'], pkcs11);
      assert.equal(twice.code, 1);
      assert.match(twice.stderr, /refusing to create a second key labelled "e4c2-kek"/);

      const run = await kek(['rewrap', '--from-file', join(dir, 'kek.key')], pkcs11);
      assert.equal(run.code, 0, run.stderr);
      assert.match(run.stdout, /^re-wrapped 1 data key\(s\) under KEK pkcs11\//);
      const provider = await providerFor('e4c2-kek');
      try {
        assert.deepEqual(await openWith(schema, provider, sealed), secret);
      } finally {
        provider.close();
      }
      await assert.rejects(openWith(schema, fileKek, sealed), /is not configured/);
    });

    void it('rotates to another key of the token', async () => {
      const next = { ...pkcs11, E4C2_KEK_PKCS11_KEY_LABEL: 'e4c2-kek-2027' };
      assert.equal((await kek(['pkcs11-keygen'], next)).code, 0);
      const run = await kek(['rewrap', '--from-pkcs11-key-label', 'e4c2-kek'], next);
      assert.equal(run.code, 0, run.stderr);
      assert.match(run.stdout, /under KEK pkcs11\/e4c2-kek-2027\/[0-9a-f]{16}\n$/);
      const status = await kek(['status'], next);
      assert.match(status.stdout, /^data keys: 1\n {2}pkcs11\/e4c2-kek-2027\/[0-9a-f]{16}: 1\n$/);
      const provider = await providerFor('e4c2-kek-2027');
      try {
        assert.deepEqual(await openWith(schema, provider, sealed), secret);
      } finally {
        provider.close();
      }
    });
  });
});

void describe('npm run kek with a Vault transit KEK (stand-in Vault on loopback)', () => {
  let schema: TestSchema;
  let dir: string;
  let vault: FakeVault;
  let sealed: Uint8Array;
  const secret = new Uint8Array(randomBytes(32));
  let settings: Record<string, string>;
  const wrappedCiphertexts = async (): Promise<string[]> =>
    (await new PgDataKeyStore(schema.pool).list()).map((k) =>
      Buffer.from(k.wrapped.ciphertext).toString('utf8'),
    );

  before(async () => {
    schema = await createTestSchema();
    dir = await mkdtemp(join(tmpdir(), 'e4c2-kek-vault-'));
    vault = await startFakeVault();
    vault.createKey('e4c2-kek');
    vault.createKey('kek-b');
    const fileKek = await LocalKekProvider.generateKeyFile(join(dir, 'kek.key'));
    const keys = await KeyVault.create({
      provider: fileKek,
      store: new PgDataKeyStore(schema.pool),
    });
    sealed = await keys.seal(secret, binding);
    settings = {
      DATABASE_URL: TEST_DATABASE_URL,
      E4C2_DB_SCHEMA: schema.schema,
      E4C2_KEK_VAULT_ADDR: vault.addr,
      E4C2_KEK_VAULT_TOKEN: vault.rootToken,
    };
  });

  after(async () => {
    await schema.drop();
    await vault.close();
    await rm(dir, { recursive: true, force: true });
  });

  void it('moves the data keys into Vault, follows a Vault key rotation, and moves to another key', async () => {
    const moved = await kek(['rewrap', '--from-file', join(dir, 'kek.key')], settings);
    assert.equal(moved.code, 0, moved.stderr);
    assert.equal(
      moved.stdout,
      're-wrapped 1 data key(s) under KEK vault-transit/transit/e4c2-kek\n',
    );
    assert.ok(!moved.stdout.includes(vault.rootToken) && !moved.stderr.includes(vault.rootToken));
    assert.match((await wrappedCiphertexts())[0] ?? '', /^vault:v1:/);

    // A rotation inside Vault: rewrap without --from moves the data keys to the new version.
    vault.rotateKey('e4c2-kek');
    const refreshed = await kek(['rewrap'], settings);
    assert.equal(refreshed.code, 0, refreshed.stderr);
    assert.equal(
      refreshed.stdout,
      're-wrapped 1 data key(s) under KEK vault-transit/transit/e4c2-kek\n',
    );
    assert.match((await wrappedCiphertexts())[0] ?? '', /^vault:v2:/);
    vault.setMinDecryptionVersion('e4c2-kek', 2);
    const current = await VaultTransitKekProvider.connect({
      addr: vault.addr,
      keyName: 'e4c2-kek',
      auth: { kind: 'token', token: vault.rootToken },
    });
    assert.deepEqual(await openWith(schema, current, sealed), secret);

    const other = { ...settings, E4C2_KEK_VAULT_KEY: 'kek-b' };
    const switched = await kek(['rewrap', '--from-vault-key', 'e4c2-kek'], other);
    assert.equal(switched.code, 0, switched.stderr);
    assert.equal(
      switched.stdout,
      're-wrapped 1 data key(s) under KEK vault-transit/transit/kek-b\n',
    );
    const status = await kek(['status'], other);
    assert.equal(status.stdout, 'data keys: 1\n  vault-transit/transit/kek-b: 1\n');
  });
});

void describe('npm run kek on the embedded database', () => {
  let dataDir: string;
  let server: RunningPostgres | undefined;

  before(async () => {
    dataDir = await makeTempDir('kek-embedded');
  });

  after(async () => {
    await server?.stop();
    await removeTempDir(dataDir);
  });

  void it('refuses a directory without a database, and creates nothing there', async () => {
    const empty = join(dataDir, 'not-a-node');
    const r = await kek(['status'], { E4C2_DATA_DIR: empty });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /not-a-node holds no embedded database .*set E4C2_DATA_DIR/);
    await assert.rejects(stat(empty), { code: 'ENOENT' });
  });

  void it('names the node that holds the directory, and not as a process to kill', async () => {
    const { log } = recordingLogger();
    server = await startEmbeddedPostgres({ dataDir, port: 0, log });
    // A node: the data directory's lock (held here by this test process) and its database.
    const node = await prepareDataDir(dataDir);
    try {
      const busy = await kek(['status'], { E4C2_DATA_DIR: dataDir });
      assert.equal(busy.code, 1);
      assert.match(
        busy.stderr,
        new RegExp(`is in use by process ${process.pid}: stop that C2 first`),
      );
      assert.doesNotMatch(busy.stderr, /kill/);
    } finally {
      await node.release();
    }
  });

  void it('says a left-over server is one, then reads the database once it is stopped', async () => {
    assert.ok(server !== undefined);
    // The node is gone (no lock), its embedded PostgreSQL still runs: what a SIGKILL leaves.
    const leftOver = await kek(['status'], { E4C2_DATA_DIR: dataDir });
    assert.equal(leftOver.code, 1);
    assert.match(leftOver.stderr, /is still running on .*probably left over/);
    await server.stop();
    server = undefined;
    // Stopped: the command starts the database itself (not a C2 schema yet: said so).
    const free = await kek(['status'], { E4C2_DATA_DIR: dataDir });
    assert.equal(free.code, 1);
    assert.match(free.stderr, /cannot read the data keys at .*: is it a C2 database\?/);
    // The tool's lock is gone with it: a node can start there.
    await assert.rejects(stat(join(dataDir, '.lock')), { code: 'ENOENT' });
  });
});

void describe('kek command line', () => {
  void it('parses the commands and refuses what does not fit', () => {
    assert.deepEqual(parseKekArgs(['status']), { command: 'status' });
    assert.deepEqual(parseKekArgs(['rewrap', '--from-file', '/k']), {
      command: 'rewrap',
      fromFile: '/k',
    });
    assert.equal(parseKekArgs(['--help']), 'help');
    const refused: [string[], RegExp][] = [
      [[], /a command is required/],
      [['rotate'], /unknown command "rotate"/],
      [['status', '--from-file', '/k'], /apply only to rewrap/],
      [['rewrap', '--from-file', '/a', '--from-pkcs11-key-label', 'b'], /at most one/],
      [['rewrap', '--from-everywhere'], /Unknown option '--from-everywhere'/],
      [['status', 'extra'], /unexpected argument "extra"/],
    ];
    for (const [args, message] of refused)
      assert.throws(
        () => parseKekArgs(args),
        (err: unknown) => err instanceof UsageError && message.test(err.message),
      );
  });

  void it('refuses a rewrap without a new KEK before touching any database', async () => {
    // Embedded defaults: the generated key file is the only KEK there is, so nothing to move to.
    const run = await kek(['rewrap', '--from-file', '/k'], {
      E4C2_DATA_DIR: join(tmpdir(), 'e4c2-kek-never-created'),
    });
    assert.equal(run.code, 2);
    assert.match(run.stderr, /^kek: set the new KEK first \(E4C2_KEK_FILE, /);
  });

  void it('exits 2 with the usage on a command-line mistake', async () => {
    const run = await kek(['rewrap', '--from-file', '/a', '--from-passphrase-env', 'X'], {});
    assert.equal(run.code, 2);
    assert.match(run.stderr, /^kek: give at most one --from-\.\.\. option\n\nusage: npm run kek/);
  });
});
