// A node whose KEK is a key inside an HSM (SoftHSM2 over PKCS#11): its data key is wrapped by the
// token, it seals and serves keys, it restarts on the same token, and a wrong PIN stops it at
// start-up with a message that does not quote the PIN.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { Pkcs11KekProvider } from '../../cluster/keyvault/index.ts';
import { eventually } from '../../cluster/test/support/eventually.ts';
import { createTestSchema, type TestSchema } from '../../cluster/test/support/postgres.ts';
import { softHsmMissing, startSoftHsm, type SoftHsm } from '../../cluster/test/support/softhsm.ts';
import { freePorts } from '../cluster.ts';
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

async function startNode(schema: string, hsm: SoftHsm, pin: string): Promise<NodeRun> {
  const [grpc, http, metrics] = (await freePorts('127.0.0.1', 3)) as [number, number, number];
  const env = testNodeEnv({
    schema,
    passphrase: 'unused',
    ports: { grpc, http, metrics },
    name: 'pkcs11',
    extra: {
      E4C2_KEK_PKCS11_MODULE: hsm.modulePath,
      E4C2_KEK_PKCS11_TOKEN: TOKEN,
      E4C2_KEK_PKCS11_PIN: pin,
      E4C2_LOG_LEVEL: 'info',
    },
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

void describe('a node with a PKCS#11 KEK', { skip: await softHsmMissing() }, () => {
  let hsm: SoftHsm;
  let db: TestSchema;
  let kekId: string;

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

  void it('wraps its data key in the token, serves keys, and starts again on the same key', async () => {
    const first = await startNode(db.schema, hsm, PIN);
    try {
      await eventually(async () => {
        assert.equal((await httpJson(first.http, 'GET', '/readyz')).status, 200);
      }, 60_000);
      const wrapped = await db.pool.query<{ kek_kind: string; kek_id: string }>(
        'SELECT kek_kind, kek_id FROM data_keys',
      );
      assert.deepEqual(wrapped.rows, [{ kek_kind: 'pkcs11', kek_id: kekId }]);
      assert.equal((await httpJson(first.http, 'POST', '/e4/topic/hsm%2Ft')).status, 200);
    } finally {
      assert.equal(await first.stop(), 0, first.output());
    }
    // The topic key sealed under the token's data key is read back by a new process.
    const second = await startNode(db.schema, hsm, PIN);
    try {
      const topic = await eventually(async () => {
        const answer = await httpJson(second.http, 'GET', '/v1/topics/hsm%2Ft');
        assert.equal(answer.status, 200);
        return answer.json;
      }, 60_000);
      assert.equal(topic['keyVersion'], 1);
      const check = await httpJson(second.http, 'POST', '/e4/protect-message', {
        body: { topic: 'hsm/t', binaryData: Buffer.from('hello').toString('base64') },
      });
      assert.equal(check.status, 200, JSON.stringify(check.json));
    } finally {
      assert.equal(await second.stop(), 0, second.output());
    }
  });

  void it('stops at start-up on a wrong PIN, without quoting it', async () => {
    const wrongPin = '000111';
    const node = await startNode(db.schema, hsm, wrongPin);
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
    assert.equal(code, 1);
    assert.match(node.output(), /PKCS#11 login to token "node-kek" failed: CKR_PIN_INCORRECT/);
    assert.ok(!node.output().includes(wrongPin));
  });
});
