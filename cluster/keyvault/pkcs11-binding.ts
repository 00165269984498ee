/**
 * The part of the `pkcs11js` binding (PKCS#11 v2.40 for Node.js) that the PKCS#11 KEK provider
 * uses, declared here rather than imported: the package is an optional native dependency, and
 * the project must build, type-check and run without it wherever no HSM is configured.
 */
import { C2Error } from '../errors.ts';

/** A PKCS#11 handle (slot, session, object), as the binding represents it. */
export type Handle = Buffer;

/** One attribute of a template or of `C_GetAttributeValue`'s answer. */
export interface Pkcs11Attribute {
  readonly type: number;
  readonly value?: number | boolean | string | Buffer;
}

/** A mechanism and its parameter. */
export interface Pkcs11Mechanism {
  readonly mechanism: number;
  readonly parameter?: {
    readonly type: number;
    readonly iv?: Buffer;
    readonly aad?: Buffer;
    readonly ivBits?: number;
    readonly tagBits?: number;
  };
}

/** The calls used, with the binding's signatures (it throws on any CKR_ other than CKR_OK). */
export interface Pkcs11Api {
  load(path: string): void;
  close(): void;
  C_Initialize(): void;
  C_Finalize(): void;
  C_GetSlotList(tokenPresent: boolean): Handle[];
  C_GetTokenInfo(slot: Handle): { readonly label: string; readonly serialNumber: string };
  C_OpenSession(slot: Handle, flags: number): Handle;
  C_CloseSession(session: Handle): void;
  C_CloseAllSessions(slot: Handle): void;
  C_Login(session: Handle, userType: number, pin?: string): void;
  C_FindObjectsInit(session: Handle, template: readonly Pkcs11Attribute[]): void;
  C_FindObjects(session: Handle, maxObjectCount: number): Handle[];
  C_FindObjectsFinal(session: Handle): void;
  C_GetAttributeValue(
    session: Handle,
    object: Handle,
    template: readonly Pkcs11Attribute[],
  ): Pkcs11Attribute[];
  C_GenerateKey(
    session: Handle,
    mechanism: Pkcs11Mechanism,
    template: readonly Pkcs11Attribute[],
  ): Handle;
  C_EncryptInit(session: Handle, mechanism: Pkcs11Mechanism, key: Handle): void;
  C_Encrypt(session: Handle, inData: Buffer, outData: Buffer): Buffer;
  C_DecryptInit(session: Handle, mechanism: Pkcs11Mechanism, key: Handle): void;
  C_Decrypt(session: Handle, inData: Buffer, outData: Buffer): Buffer;
}

/** The module: the class and the PKCS#11 constants used. */
export interface Pkcs11Binding {
  readonly PKCS11: new () => Pkcs11Api;
  readonly CKF_SERIAL_SESSION: number;
  readonly CKF_RW_SESSION: number;
  readonly CKU_USER: number;
  readonly CKA_CLASS: number;
  readonly CKA_KEY_TYPE: number;
  readonly CKA_VALUE_LEN: number;
  readonly CKA_LABEL: number;
  readonly CKA_TOKEN: number;
  readonly CKA_PRIVATE: number;
  readonly CKA_SENSITIVE: number;
  readonly CKA_EXTRACTABLE: number;
  readonly CKA_ENCRYPT: number;
  readonly CKA_DECRYPT: number;
  readonly CKA_WRAP: number;
  readonly CKA_UNWRAP: number;
  readonly CKO_SECRET_KEY: number;
  readonly CKK_AES: number;
  readonly CKM_AES_KEY_GEN: number;
  readonly CKM_AES_GCM: number;
  readonly CK_PARAMS_AES_GCM: number;
}

/** The package's name, in a variable so that the compiler does not look for the module. */
const PACKAGE = 'pkcs11js';

let loading: Promise<Pkcs11Binding> | undefined;

/**
 * Loads the binding once.
 * @throws C2Error `C2_CONFIG` when the optional package is not installed or not built
 */
export function loadPkcs11Binding(): Promise<Pkcs11Binding> {
  loading ??= (import(PACKAGE) as Promise<{ default?: Pkcs11Binding } & Pkcs11Binding>).then(
    (m) => m.default ?? m,
    (err: unknown) => {
      loading = undefined;
      throw new C2Error(
        'C2_CONFIG',
        `the PKCS#11 KEK provider needs the optional package ${PACKAGE}, which is not installed or not built here (npm install ${PACKAGE}; it compiles with node-gyp)`,
        { cause: err },
      );
    },
  );
  return loading;
}
