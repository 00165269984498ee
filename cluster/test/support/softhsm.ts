/**
 * A throw-away SoftHSM2 token for tests of the PKCS#11 KEK provider: a private token directory
 * and configuration (SOFTHSM2_CONF is set for this process, so call {@link startSoftHsm} before
 * the module is first loaded), initialized with a label and PINs of the test's choosing.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import {
  loadPkcs11Binding,
  Pkcs11KekProvider,
  type Pkcs11Api,
  type Pkcs11KekOptions,
} from '../../keyvault/index.ts';

const run = promisify(execFile);

/** Where Debian's softhsm2 package puts the module and the tool. */
const MODULE_CANDIDATES = [
  '/usr/lib/softhsm/libsofthsm2.so',
  '/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so',
  '/usr/local/lib/softhsm/libsofthsm2.so',
];
const UTIL_CANDIDATES = ['/usr/bin/softhsm2-util', '/usr/local/bin/softhsm2-util'];

/**
 * What is missing for SoftHSM2 tests (the Debian package, or the optional npm binding), or
 * `undefined` when both are there.
 */
export async function softHsmMissing(): Promise<string | undefined> {
  if (softHsmModule() === undefined || UTIL_CANDIDATES.every((p) => !existsSync(p)))
    return 'SoftHSM2 is not installed (apt-get install softhsm2)';
  try {
    await loadPkcs11Binding();
  } catch {
    return 'the optional package pkcs11js is not installed or not built (npm install pkcs11js)';
  }
  return undefined;
}

function softHsmModule(): string | undefined {
  return MODULE_CANDIDATES.find((p) => existsSync(p));
}

/** The binding's handle with `C_SetPIN`, which the provider never calls. */
type AdminApi = Pkcs11Api & { C_SetPIN(session: Buffer, oldPin: string, newPin: string): void };

/** A running SoftHSM2 set-up. */
export interface SoftHsm {
  readonly modulePath: string;
  /** Where SoftHSM2 keeps the tokens' files (tests take it away, as an HSM that stops answering). */
  readonly tokenDir: string;
  /** Initializes a token in the next free slot. */
  initToken(label: string, pin: string): Promise<void>;
  /**
   * Changes a token's user PIN from a handle of its own on the module this process loaded, then
   * closes every session of the token, which logs this process's user out (as a token reset
   * does): a provider's next call must log in anew, and meets the new PIN.
   */
  changePinAndDropSessions(label: string, oldPin: string, newPin: string): Promise<void>;
  /** Removes the token directory. */
  remove(): Promise<void>;
}

/** Creates a private SoftHSM2 configuration and points this process at it. */
export async function startSoftHsm(): Promise<SoftHsm> {
  const modulePath = softHsmModule();
  const util = UTIL_CANDIDATES.find((p) => existsSync(p));
  if (modulePath === undefined || util === undefined)
    throw new Error('SoftHSM2 is not installed (apt-get install softhsm2)');
  const dir = await mkdtemp(join(tmpdir(), 'e4c2-softhsm-'));
  const tokens = join(dir, 'tokens');
  await mkdir(tokens);
  const conf = join(dir, 'softhsm2.conf');
  await writeFile(
    conf,
    `directories.tokendir = ${tokens}\nobjectstore.backend = file\nlog.level = ERROR\n`,
  );
  process.env['SOFTHSM2_CONF'] = conf;
  return {
    modulePath,
    tokenDir: tokens,
    async initToken(label, pin) {
      await run(
        util,
        ['--init-token', '--free', '--label', label, '--pin', pin, '--so-pin', `${pin}-so`],
        { env: { ...process.env, SOFTHSM2_CONF: conf } },
      );
    },
    async changePinAndDropSessions(label, oldPin, newPin) {
      const p = await loadPkcs11Binding();
      const admin = new p.PKCS11() as AdminApi;
      admin.load(modulePath);
      const slot = admin
        .C_GetSlotList(true)
        .find((s) => admin.C_GetTokenInfo(s).label.trim() === label);
      if (slot === undefined) throw new Error(`no token labelled ${label}`);
      const session = admin.C_OpenSession(slot, p.CKF_SERIAL_SESSION | p.CKF_RW_SESSION);
      try {
        admin.C_Login(session, p.CKU_USER, oldPin);
      } catch (err) {
        // Logins are per application: a provider may have logged the user in already.
        if (!String(err).includes('CKR_USER_ALREADY_LOGGED_IN')) throw err;
      }
      admin.C_SetPIN(session, oldPin, newPin);
      admin.C_CloseAllSessions(slot);
    },
    remove: () => rm(dir, { recursive: true, force: true }),
  };
}

/**
 * A SoftHSM2 set-up with one token holding one new KEK labelled `kek`, and the options that open
 * it (the provider that made the key is closed again).
 */
export async function softHsmWithKek(
  tokenLabel: string,
  pin: string,
): Promise<{ hsm: SoftHsm; options: Pkcs11KekOptions }> {
  const hsm = await startSoftHsm();
  await hsm.initToken(tokenLabel, pin);
  const options = { modulePath: hsm.modulePath, tokenLabel, keyLabel: 'kek', pin };
  (await Pkcs11KekProvider.generateKey(options)).close();
  return { hsm, options };
}
