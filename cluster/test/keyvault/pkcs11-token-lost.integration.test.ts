// Pkcs11KekProvider when the token stops answering while a node runs (SoftHSM2 with its token
// files taken away): calls fail as unavailable, to be retried, not as keys that never open; the
// token's key is left as it was. A file of its own: SoftHSM2 stays broken in the process that
// saw its files go, so no other test may share that process's token.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readdir, readFile, rename } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Pkcs11KekProvider, type Pkcs11KekOptions } from '../../keyvault/index.ts';
import { c2Rejection } from '../support/c2-rejection.ts';
import { softHsmMissing, startSoftHsm, type SoftHsm } from '../support/softhsm.ts';

const missing = await softHsmMissing();
const PIN = '602418';

/** SHA-256 over every file of the token directory, by name. */
async function digest(dir: string): Promise<string> {
  const hash = createHash('sha256');
  const files = await readdir(dir, { recursive: true, withFileTypes: true });
  const names = files
    .filter((f) => f.isFile())
    .map((f) => join(f.parentPath, f.name))
    .sort();
  for (const name of names) hash.update(name).update(await readFile(name));
  return hash.digest('hex');
}

void describe('Pkcs11KekProvider with a token that stops answering', { skip: missing }, () => {
  let hsm: SoftHsm;
  let options: Pkcs11KekOptions;

  before(async () => {
    hsm = await startSoftHsm();
    await hsm.initToken('lost-token', PIN);
    options = { modulePath: hsm.modulePath, tokenLabel: 'lost-token', keyLabel: 'kek', pin: PIN };
    (await Pkcs11KekProvider.generateKey(options)).close();
  });

  after(() => hsm.remove());

  void it('reports C2_UNAVAILABLE for wraps and unwraps, and leaves the token as it was', async () => {
    const provider = await Pkcs11KekProvider.open(options);
    const wrapped = await provider.wrap(Uint8Array.of(1, 2, 3));
    const before = await digest(hsm.tokenDir);
    const away = `${hsm.tokenDir}.away`;
    await rename(hsm.tokenDir, away);
    try {
      const unwrap = await c2Rejection(provider.unwrap(wrapped));
      assert.equal(unwrap.code, 'C2_UNAVAILABLE', unwrap.message);
      assert.match(unwrap.message, new RegExp(`KEK pkcs11/${provider.keyId}`));
      // Later calls reconnect, and say the same while the token is away.
      const wrap = await c2Rejection(provider.wrap(Uint8Array.of(4)));
      assert.equal(wrap.code, 'C2_UNAVAILABLE', wrap.message);
      assert.ok(!`${unwrap.message} ${wrap.message}`.includes(PIN));
    } finally {
      await rename(away, hsm.tokenDir);
      provider.close();
    }
    assert.equal(await digest(hsm.tokenDir), before);
  });
});
