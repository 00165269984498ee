// The local cluster's KEK: the environment's own (file, passphrase, PKCS#11 or Vault key) goes to
// every node as is; only without one does the launcher make a shared passphrase file. A PKCS#11
// KEK once got a passphrase added too, and every node refused two KEK settings.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { explicitKek } from '../cluster-kek.ts';

void describe('npm run cluster: the KEK', () => {
  void it("keeps the environment's KEK, whichever kind", () => {
    assert.equal(explicitKek({ E4C2_KEK_FILE: '/k' }), 'E4C2_KEK_FILE (/k)');
    assert.equal(
      explicitKek({ E4C2_KEK_PASSPHRASE: 'a passphrase long enough' }),
      'E4C2_KEK_PASSPHRASE (from the environment)',
    );
    assert.equal(
      explicitKek({
        E4C2_KEK_PKCS11_MODULE: '/usr/lib/softhsm/libsofthsm2.so',
        E4C2_KEK_PKCS11_TOKEN: 'c2',
        E4C2_KEK_PKCS11_PIN: '1234',
      }),
      'PKCS#11 key on token "c2" (E4C2_KEK_PKCS11_MODULE /usr/lib/softhsm/libsofthsm2.so)',
    );
    assert.equal(
      explicitKek({ E4C2_KEK_VAULT_ADDR: 'https://vault:8200', E4C2_KEK_VAULT_TOKEN: 't' }),
      'Vault transit key "e4c2-kek" at https://vault:8200',
    );
  });

  void it('makes one only when none is set (empty values count as unset)', () => {
    assert.equal(explicitKek({}), undefined);
    assert.equal(explicitKek({ E4C2_KEK_FILE: '', E4C2_KEK_PKCS11_MODULE: '' }), undefined);
  });
});
