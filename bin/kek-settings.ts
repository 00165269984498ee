/**
 * The settings behind a configured KEK, named in the errors of a KEK that does not open: the
 * providers know their options (`pin`, `addr`), the operator knows `E4C2_KEK_PKCS11_PIN`.
 */
import { SETTINGS, type KekConfig, type SettingSpec } from '../cluster/config/index.ts';
import { C2Error } from '../cluster/errors.ts';

const S = SETTINGS;

/** `ENV (file key)`, as the configuration's own problems name a setting. */
const named = (...specs: readonly SettingSpec[]): string =>
  specs.map((s) => `${s.env} (${s.file})`).join(', ');

/** The settings of each provider option; the first entry names the KEK as a whole. */
function optionSettings(kek: KekConfig): Readonly<Record<string, string>> {
  switch (kek.kind) {
    case 'file':
      return { kek: named(S.kekFile) };
    case 'passphrase':
      return { kek: named(S.kekPassphrase) };
    case 'generated-file':
      // The embedded mode's KEK file, made in the data directory on first start.
      return { kek: named(S.dataDir) };
    case 'pkcs11':
      return {
        kek: named(S.kekPkcs11Token, S.kekPkcs11KeyLabel),
        modulePath: named(S.kekPkcs11Module),
        tokenLabel: named(S.kekPkcs11Token),
        keyLabel: named(S.kekPkcs11KeyLabel),
        pin: named(S.kekPkcs11Pin),
      };
    case 'vault-transit':
      return {
        kek: named(S.kekVaultAddr, S.kekVaultMount, S.kekVaultKey),
        addr: named(S.kekVaultAddr),
        mount: named(S.kekVaultMount),
        keyName: named(S.kekVaultKey),
        auth:
          kek.auth.kind === 'token'
            ? named(S.kekVaultToken)
            : named(S.kekVaultRoleId, S.kekVaultSecretId),
      };
  }
}

/**
 * The settings an error of the configured KEK is about: those of the provider option it names
 * (`details.option`, see `optionAtFault`), else those that name the KEK.
 */
export function kekSettingsOf(kek: KekConfig, err?: C2Error): string {
  const settings = optionSettings(kek);
  const option = err?.details?.['option'];
  return (typeof option === 'string' ? settings[option] : undefined) ?? (settings['kek'] as string);
}

/**
 * `err` (a KEK that did not open at start-up) with the settings it is about in front of its
 * message; code, details and cause are kept. Other errors are returned as they are.
 */
export function withKekSettings(kek: KekConfig, err: unknown): unknown {
  if (!C2Error.is(err)) return err;
  // The cause is the original's: its message is this one's, without the settings.
  return new C2Error(err.code, `${kekSettingsOf(kek, err)}: ${err.message}`, {
    ...(err.cause === undefined ? {} : { cause: err.cause }),
    ...(err.details === undefined ? {} : { details: err.details }),
  });
}
