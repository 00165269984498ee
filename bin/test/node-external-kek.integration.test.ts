// Nodes whose KEK lives outside the C2: a key inside an HSM (SoftHSM2 over PKCS#11) and a Vault
// transit key (a stand-in Vault on loopback). The data key is wrapped there, the node seals and
// serves keys and restarts on the same KEK, and a wrong PIN or token stops it at start-up with a
// message that does not quote the secret.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { Pkcs11KekProvider } from '../../cluster/keyvault/index.ts';
import { startFakeVault, type FakeVault } from '../../cluster/test/support/fake-vault-transit.ts';
import { eventually } from '../../cluster/test/support/eventually.ts';
import { createTestSchema, type TestSchema } from '../../cluster/test/support/postgres.ts';
import { softHsmMissing, startSoftHsm, type SoftHsm } from '../../cluster/test/support/softhsm.ts';
import { freePorts } from '../free-ports.ts';
import { httpJson } from './support/http-json.ts';
import { testNodeEnv } from './support/node-env.ts';

const TOKEN = 'node-kek';
const PIN = '731904';

interface NodeRun {
  readonly http: string;
  readonly output: () => string;
  readonly stop: () => Promise<number | null>;
  readonly exited: Promise<number | null>;
}

async function startNode(schema: string, kek: Record<string, string>): Promise<NodeRun> {
  const [grpc, http, metrics] = (await freePorts('127.0.0.1', 3)) as [number, number, number];
  const env = testNodeEnv({
    schema,
    passphrase: 'unused',
    ports: { grpc, http, metrics },
    name: 'ext-kek',
    extra: { ...kek, E4C2_LOG_LEVEL: 'info' },
  });
  delete env['E4C2_KEK_PASSPHRASE'];
  const child = spawn(process.execPath, ['--import', 'tsx', 'bin/start.ts'], {
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let text = '';
  const collect = (chunk: Buffer): void => {
    text += chunk.toString();
  };
  child.stdout.on('data', collect);
  child.stderr.on('data', collect);
  const exited = new Promise<number | null>((resolve) => {
    child.once('exit', (code) => {
      resolve(code);
    });
  });
  return {
    http: `http://127.0.0.1:${http}`,
    output: () => text,
    exited,
    stop: () => {
      if (child.exitCode === null) child.kill('SIGTERM');
      return exited;
    },
  };
}

/**
 * Starts a node with `kek`, checks where its data key is wrapped, creates a topic, and starts a
 * second node process that reads the topic's key back (it can protect a message under it).
 */
async function servesAndRestarts(
  schema: TestSchema,
  kek: Record<string, string>,
  wrappedBy: { kek_kind: string; kek_id: string },
): Promise<void> {
  const first = await startNode(schema.schema, kek);
  try {
    await eventually(async () => {
      assert.equal((await httpJson(first.http, 'GET', '/readyz')).status, 200);
    }, 60_000);
    const wrapped = await schema.pool.query('SELECT kek_kind, kek_id FROM data_keys');
    assert.deepEqual(wrapped.rows, [wrappedBy]);
    assert.equal((await httpJson(first.http, 'POST', '/e4/topic/ext%2Ft')).status, 200);
  } finally {
    assert.equal(await first.stop(), 0, first.output());
  }
  const second = await startNode(schema.schema, kek);
  try {
    const topic = await eventually(async () => {
      const answer = await httpJson(second.http, 'GET', '/v1/topics/ext%2Ft');
      assert.equal(answer.status, 200);
      return answer.json;
    }, 60_000);
    assert.equal(topic['keyVersion'], 1);
    const check = await httpJson(second.http, 'POST', '/e4/protect-message', {
      body: { topic: 'ext/t', binaryData: Buffer.from('hello').toString('base64') },
    });
    assert.equal(check.status, 200, JSON.stringify(check.json));
  } finally {
    assert.equal(await second.stop(), 0, second.output());
  }
}

/** Starts a node with `kek` and expects it to stop at start-up with `message`, never `secret`. */
async function refusedAtStart(
  schema: TestSchema,
  kek: Record<string, string>,
  message: RegExp,
  secret: string,
): Promise<void> {
  const node = await startNode(schema.schema, kek);
  let timer: NodeJS.Timeout | undefined;
  const code = await Promise.race([
    node.exited,
    new Promise<'running'>((resolve) => {
      timer = setTimeout(() => {
        resolve('running');
      }, 60_000);
    }),
  ]);
  clearTimeout(timer);
  if (code === 'running') await node.stop();
  assert.equal(code, 1, node.output());
  assert.match(node.output(), message);
  assert.ok(!node.output().includes(secret));
  // An expected refusal says its stable code, and logs no stack trace.
  assert.match(node.output(), /^e4c2: .* \(C2_[A-Z_]+\)$/m);
  assert.doesNotMatch(node.output(), /"stack":/);
}

void describe('a node with a PKCS#11 KEK', { skip: await softHsmMissing() }, () => {
  let hsm: SoftHsm;
  let db: TestSchema;
  let kekId: string;
  const hsmKek = (pin: string): Record<string, string> => ({
    E4C2_KEK_PKCS11_MODULE: hsm.modulePath,
    E4C2_KEK_PKCS11_TOKEN: TOKEN,
    E4C2_KEK_PKCS11_PIN: pin,
  });

  before(async () => {
    hsm = await startSoftHsm();
    await hsm.initToken(TOKEN, PIN);
    const created = await Pkcs11KekProvider.generateKey({
      modulePath: hsm.modulePath,
      tokenLabel: TOKEN,
      keyLabel: 'e4c2-kek',
      pin: PIN,
    });
    kekId = created.keyId;
    created.close();
    db = await createTestSchema(false);
  });

  after(async () => {
    await db.drop();
    await hsm.remove();
  });

  void it('wraps its data key in the token, serves keys, and starts again on the same key', () =>
    servesAndRestarts(db, hsmKek(PIN), { kek_kind: 'pkcs11', kek_id: kekId }));

  void it('stops at start-up on a wrong PIN, naming the setting without quoting it', () =>
    refusedAtStart(
      db,
      hsmKek('000111'),
      /e4c2: E4C2_KEK_PKCS11_PIN \(kek\.pkcs11\.pin\): PKCS#11 login to token "node-kek" failed: CKR_PIN_INCORRECT/,
      '000111',
    ));
});

void describe('a node with a Vault transit KEK', () => {
  let vault: FakeVault;
  let db: TestSchema;
  const vaultKek = (token: string): Record<string, string> => ({
    E4C2_KEK_VAULT_ADDR: vault.addr,
    E4C2_KEK_VAULT_TOKEN: token,
  });

  before(async () => {
    vault = await startFakeVault();
    vault.createKey('e4c2-kek');
    db = await createTestSchema(false);
  });

  after(async () => {
    await db.drop();
    await vault.close();
  });

  void it('wraps its data key with Vault, serves keys, and starts again on the same key', () =>
    servesAndRestarts(db, vaultKek(vault.rootToken), {
      kek_kind: 'vault-transit',
      kek_id: 'transit/e4c2-kek',
    }));

  void it('stops at start-up on a token Vault refuses, naming the setting without quoting it', () =>
    refusedAtStart(
      db,
      vaultKek('hvs.not-a-valid-token'),
      /e4c2: E4C2_KEK_VAULT_TOKEN \(kek\.vault\.token\): Vault encrypt with transit key transit\/e4c2-kek was denied \(403: permission denied\)/,
      'hvs.not-a-valid-token',
    ));

  void it('stops at start-up on a Vault that does not answer, naming its address setting', async () => {
    const [closed] = (await freePorts('127.0.0.1', 1)) as [number];
    await refusedAtStart(
      db,
      { E4C2_KEK_VAULT_ADDR: `http://127.0.0.1:${closed}`, E4C2_KEK_VAULT_TOKEN: vault.rootToken },
      /e4c2: E4C2_KEK_VAULT_ADDR \(kek\.vault\.addr\): Vault at http:\/\/127\.0\.0\.1:\d+ is unavailable: .* \(C2_UNAVAILABLE\)/,
      vault.rootToken,
    );
  });
});
