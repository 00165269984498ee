// Pkcs11KekProvider when the token's user PIN changes while a node runs: the next re-login (after
// a lost session) is refused, and from then on no call logs in with that PIN again, since a real
// HSM locks the user PIN after a few wrong tries (SoftHSM2 never does, so logins are counted
// through the binding). A file of its own: the process remembers the refused PIN.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { C2Error } from '../../errors.ts';
import {
  loadPkcs11Binding,
  Pkcs11KekProvider,
  type Pkcs11Binding,
  type Pkcs11KekOptions,
} from '../../keyvault/index.ts';
import { c2Rejection } from '../support/c2-rejection.ts';
import { softHsmMissing, softHsmWithKek, type SoftHsm } from '../support/softhsm.ts';

const missing = await softHsmMissing();
const TOKEN = 'pin-token';
const OLD_PIN = '731904';
const NEW_PIN = '846215';

/**
 * Counts every `C_Login` of the handles the binding makes from now on (the provider makes its
 * own when it opens the module), until `restore`. The binding sets its methods on each instance.
 */
function countLogins(p: Pkcs11Binding): { count: () => number; restore: () => void } {
  const binding = p as { PKCS11: Pkcs11Binding['PKCS11'] };
  const Original = binding.PKCS11;
  let calls = 0;
  binding.PKCS11 = class extends Original {
    constructor() {
      super();
      const login = this.C_Login.bind(this);
      this.C_Login = (...args) => {
        calls += 1;
        login(...args);
      };
    }
  };
  return {
    count: () => calls,
    restore: () => {
      binding.PKCS11 = Original;
    },
  };
}

void describe(
  'Pkcs11KekProvider when the token refuses the PIN at run time',
  { skip: missing },
  () => {
    let hsm: SoftHsm;
    let options: Pkcs11KekOptions;

    before(async () => {
      ({ hsm, options } = await softHsmWithKek(TOKEN, OLD_PIN));
    });

    after(() => hsm.remove());

    void it('logs in once with the refused PIN, fails every call naming the setting, tells once', async () => {
      const p = await loadPkcs11Binding();
      const refusals: C2Error[] = [];
      const logins = countLogins(p);
      const provider = await Pkcs11KekProvider.open({
        ...options,
        onPinRefused: (err) => refusals.push(err),
      });
      const wrapped = await provider.wrap(Uint8Array.of(1, 2, 3));
      assert.equal(logins.count(), 1, 'the login at open');
      await hsm.changePinAndDropSessions(TOKEN, OLD_PIN, NEW_PIN);
      const changed = logins.count();
      try {
        const errors: C2Error[] = [];
        for (let i = 0; i < 3; i++) {
          errors.push(await c2Rejection(provider.unwrap(wrapped)));
          errors.push(await c2Rejection(provider.wrap(Uint8Array.of(i))));
        }
        // A node restarted with the same (old) PIN in this process does not try it either.
        errors.push(await c2Rejection(Pkcs11KekProvider.open(options)));
        assert.equal(logins.count() - changed, 1, 'one login with the refused PIN, then none');
        for (const err of errors) {
          assert.equal(err.code, 'C2_KEY_VAULT', err.message);
          assert.match(err.message, /PKCS#11 login to token "pin-token" .*CKR_PIN_INCORRECT/);
          assert.match(err.message, /E4C2_KEK_PKCS11_PIN/);
          assert.deepEqual(err.details?.['option'], 'pin');
          assert.ok(!err.message.includes(OLD_PIN) && !err.message.includes(NEW_PIN));
        }
        assert.equal(refusals.length, 1);
        assert.equal(refusals[0]?.message, errors[0]?.message);

        // The right PIN opens the token again (a restart with it), and the same key.
        const restarted = await Pkcs11KekProvider.open({ ...options, pin: NEW_PIN });
        try {
          assert.equal(restarted.keyId, provider.keyId);
          assert.deepEqual(await restarted.unwrap(wrapped), Uint8Array.of(1, 2, 3));
        } finally {
          restarted.close();
        }
        assert.equal(logins.count() - changed, 2);
      } finally {
        logins.restore();
        provider.close();
      }
    });
  },
);
