// A node's PKCS#11 KEK whose PIN the token refuses while the node runs: the node logs it once at
// error level, naming the setting and never the PIN, however many calls fail afterwards. A file
// of its own: the process remembers the refused PIN.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Lifecycle } from '../../cluster/lifecycle.ts';
import type { Pkcs11KekOptions } from '../../cluster/keyvault/index.ts';
import { c2Rejection } from '../../cluster/test/support/c2-rejection.ts';
import {
  softHsmMissing,
  softHsmWithKek,
  type SoftHsm,
} from '../../cluster/test/support/softhsm.ts';
import { openPkcs11Kek } from '../kek-providers.ts';

const TOKEN = 'node-pin';
const OLD_PIN = '520741';
const NEW_PIN = '963018';

void describe(
  'a node whose HSM refuses the PIN at run time',
  { skip: await softHsmMissing() },
  () => {
    let hsm: SoftHsm;
    let options: Pkcs11KekOptions;

    before(async () => {
      ({ hsm, options } = await softHsmWithKek(TOKEN, OLD_PIN));
    });

    after(() => hsm.remove());

    void it('logs one error naming E4C2_KEK_PKCS11_PIN, without the PIN', async () => {
      const lines: { fields: object; message: string | undefined }[] = [];
      const logger = {
        info: () => undefined,
        error: (fields: object, message?: string) => lines.push({ fields, message }),
      };
      const lifecycle = new Lifecycle(logger);
      const provider = await openPkcs11Kek(options, lifecycle, logger);
      try {
        const wrapped = await provider.wrap(Uint8Array.of(9));
        await hsm.changePinAndDropSessions(TOKEN, OLD_PIN, NEW_PIN);
        for (let i = 0; i < 3; i++) {
          const err = await c2Rejection(provider.unwrap(wrapped));
          assert.equal(err.code, 'C2_KEY_VAULT', err.message);
        }
        assert.equal(lines.length, 1);
        const [line] = lines;
        assert.match(line?.message ?? '', /CKR_PIN_INCORRECT.*E4C2_KEK_PKCS11_PIN/);
        assert.deepEqual(line?.fields, {
          kek: `pkcs11/${provider.keyId}`,
          code: 'C2_KEY_VAULT',
          reason: 'CKR_PIN_INCORRECT',
        });
        const logged = JSON.stringify(line);
        assert.ok(!logged.includes(OLD_PIN) && !logged.includes(NEW_PIN));
      } finally {
        await lifecycle.shutdown(5000);
      }
    });
  },
);
