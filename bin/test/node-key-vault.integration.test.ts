// A node's key vault at start-up (real PostgreSQL): a KEK that cannot open the database's data
// keys stops the node with the settings it came from named, and writes nothing, not even a new
// KEK file or passphrase salt; on a database without data keys those are made as before.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { access, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, before, beforeEach, describe, it } from 'node:test';
import { Secret, type KekConfig } from '../../cluster/config/index.ts';
import { LocalKekProvider } from '../../cluster/keyvault/index.ts';
import { Lifecycle } from '../../cluster/lifecycle.ts';
import { PgC2Store, PgDataKeyStore } from '../../cluster/storage/index.ts';
import { c2Rejection } from '../../cluster/test/support/c2-rejection.ts';
import { createTestSchema, type TestSchema } from '../../cluster/test/support/postgres.ts';
import { KEK_SALT_SETTING } from '../kek-providers.ts';
import { openNodeKeyVault } from '../node-key-vault.ts';

const PASSPHRASE = 'not-the-kek-of-this-database';

void describe('a node opening its key vault', () => {
  let db: TestSchema;
  let dir: string;
  const quiet = { info: () => undefined, error: () => undefined };
  const lifecycle = new Lifecycle(quiet);

  const open = (kek: KekConfig): ReturnType<typeof openNodeKeyVault> =>
    openNodeKeyVault(kek, new PgC2Store(db.pool), new PgDataKeyStore(db.pool), lifecycle, quiet);

  /** The stored data keys and settings, to check that a refused start changed nothing. */
  const state = async (): Promise<unknown> => ({
    keys: (await db.pool.query('SELECT * FROM data_keys ORDER BY id')).rows,
    settings: (await db.pool.query('SELECT name, value FROM c2_settings ORDER BY name')).rows,
  });

  /** A key file of a new random KEK, and its id. */
  async function keyFile(name: string): Promise<{ path: string; kekId: string }> {
    const path = join(dir, name);
    const key = randomBytes(32);
    await writeFile(path, key.toString('hex'), { mode: 0o600 });
    return { path, kekId: LocalKekProvider.fromKey(key).keyId };
  }

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'e4c2-node-kek-'));
  });

  beforeEach(async () => {
    db = await createTestSchema();
  });

  afterEach(() => db.drop());

  after(() => rm(dir, { recursive: true, force: true }));

  void it('refuses another key file, naming E4C2_KEK_FILE and both KEKs', async () => {
    const right = await keyFile('right.key');
    const wrong = await keyFile('wrong.key');
    await open({ kind: 'file', path: right.path });
    const stored = await state();
    const err = await c2Rejection(open({ kind: 'file', path: wrong.path }));
    assert.equal(err.code, 'C2_KEY_VAULT');
    assert.match(
      err.message,
      new RegExp(
        `^E4C2_KEK_FILE \\(kek\\.file\\): the configured KEK is local/${wrong.kekId}, but this database's data keys are wrapped by local/${right.kekId} \\(1 data key\\): .*npm run kek -- status`,
      ),
    );
    assert.deepEqual(await state(), stored);
  });

  void it('refuses a passphrase where the data keys are under a key file, without choosing a salt', async () => {
    const right = await keyFile('file.key');
    await open({ kind: 'file', path: right.path });
    const stored = await state();
    const err = await c2Rejection(open({ kind: 'passphrase', passphrase: new Secret(PASSPHRASE) }));
    assert.equal(err.code, 'C2_CONFIG');
    assert.match(
      err.message,
      new RegExp(
        `^E4C2_KEK_PASSPHRASE \\(kek\\.passphrase\\): this database has no passphrase salt: .*under local/${right.kekId}`,
      ),
    );
    assert.ok(!err.message.includes(PASSPHRASE));
    assert.deepEqual(await state(), stored);
  });

  void it('refuses to make a new KEK file in place of a lost one while data keys need the old', async () => {
    const path = join(dir, 'data', 'kek.key');
    const first = await open({ kind: 'generated-file', path });
    await rm(path);
    const stored = await state();
    const err = await c2Rejection(open({ kind: 'generated-file', path }));
    assert.equal(err.code, 'C2_KEY_VAULT');
    assert.match(
      err.message,
      new RegExp(
        `^E4C2_DATA_DIR \\(dataDir\\): KEK file .*kek\\.key does not exist, but this database's data keys are wrapped by KEK local/${first.currentKekId}: restore the file`,
      ),
    );
    await assert.rejects(access(path), 'no new KEK file');
    assert.deepEqual(await state(), stored);
  });

  void it('makes the KEK file, or the passphrase salt, on a database without data keys', async () => {
    const path = join(dir, 'fresh', 'kek.key');
    await open({ kind: 'generated-file', path });
    await access(path);
    await db.pool.query('DELETE FROM data_keys');
    const vault = await open({ kind: 'passphrase', passphrase: new Secret(PASSPHRASE) });
    const salt = await db.pool.query('SELECT value FROM c2_settings WHERE name = $1', [
      KEK_SALT_SETTING,
    ]);
    assert.equal(salt.rowCount, 1);
    // Started again, the same passphrase opens the data key it wrapped.
    assert.equal(
      (await open({ kind: 'passphrase', passphrase: new Secret(PASSPHRASE) })).currentDataKeyId,
      vault.currentDataKeyId,
    );
  });
});
