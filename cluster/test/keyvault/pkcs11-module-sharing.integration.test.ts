// The PKCS#11 module is initialized once per process and shared by its providers: the last one to
// close finalizes it, and a provider opened while that happens initializes it anew instead of
// using a finalized module (a lone process: no other provider keeps the module open).
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Pkcs11KekProvider, type Pkcs11KekOptions } from '../../keyvault/index.ts';
import { softHsmMissing, startSoftHsm, type SoftHsm } from '../support/softhsm.ts';

void describe('PKCS#11 module sharing', { skip: await softHsmMissing() }, () => {
  let hsm: SoftHsm;
  let options: Pkcs11KekOptions;

  before(async () => {
    hsm = await startSoftHsm();
    await hsm.initToken('sharing', '112233');
    options = { modulePath: hsm.modulePath, tokenLabel: 'sharing', keyLabel: 'k', pin: '112233' };
    (await Pkcs11KekProvider.generateKey(options)).close(); // the module is finalized again
  });

  after(() => hsm.remove());

  void it('opens a provider while the last other one closes', async () => {
    const first = await Pkcs11KekProvider.open(options);
    const opening = Pkcs11KekProvider.open(options);
    first.close(); // before `opening` gets the module: it finalizes it
    const second = await opening;
    try {
      const wrapped = await second.wrap(Uint8Array.of(1, 2, 3));
      assert.deepEqual(await second.unwrap(wrapped), Uint8Array.of(1, 2, 3));
    } finally {
      second.close();
    }
  });

  void it('opens and closes in turn, each time on a fresh initialization', async () => {
    for (let i = 0; i < 3; i++) {
      const provider = await Pkcs11KekProvider.open(options);
      assert.equal((await provider.wrap(Uint8Array.of(i))).ciphertext.length, 12 + 1 + 16);
      provider.close();
    }
  });
});
