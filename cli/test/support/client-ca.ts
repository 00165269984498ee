/**
 * A throwaway CA and client certificates for mutual-TLS tests, made with the openssl CLI in a
 * temporary directory: the files the CLI is given with --client-cert/--client-key, and the CA a
 * server trusts (E4C2_TLS_CLIENT_CA).
 */
import { execFile } from 'node:child_process';
import { chmod, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** A client certificate and its key, as files and as PEM text. */
export interface TestClientCert {
  readonly certFile: string;
  readonly keyFile: string;
  readonly cert: string;
  readonly key: string;
}

/** The CA, and what it (or nobody) issues. */
export interface TestClientCa {
  readonly caFile: string;
  readonly caCert: string;
  /** A certificate with subject CN=`cn`, signed by this CA. */
  issue(cn: string): Promise<TestClientCert>;
  /** A self-signed certificate with subject CN=`cn`: one this CA did not sign. */
  selfSigned(cn: string): Promise<TestClientCert>;
  /** Removes the directory. */
  dispose(): Promise<void>;
}

const EC_KEY = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

async function openssl(args: readonly string[]): Promise<void> {
  await run('openssl', args, { timeout: 20_000 });
}

/** Reads a certificate and key pair back; the key is made 0600, as a user would keep it. */
async function pair(base: string): Promise<TestClientCert> {
  const certFile = `${base}.crt`;
  const keyFile = `${base}.key`;
  await chmod(keyFile, 0o600);
  return {
    certFile,
    keyFile,
    cert: await readFile(certFile, 'utf8'),
    key: await readFile(keyFile, 'utf8'),
  };
}

/** Creates the CA (P-256, valid two days) in a new temporary directory. */
export async function createTestClientCa(): Promise<TestClientCa> {
  const dir = await mkdtemp(join(tmpdir(), 'e4c2-cli-client-ca-'));
  const caFile = join(dir, 'ca.crt');
  const caKey = join(dir, 'ca.key');
  await openssl(
    ['req', '-x509', ...EC_KEY, '-keyout', caKey, '-out', caFile, '-days', '2'].concat([
      '-subj',
      '/CN=e4c2-cli-test-client-ca',
    ]),
  );
  let serial = 0;
  return {
    caFile,
    caCert: await readFile(caFile, 'utf8'),
    async issue(cn) {
      serial += 1;
      const base = join(dir, `client-${serial}`);
      await openssl(
        ['req', '-new', ...EC_KEY, '-keyout', `${base}.key`, '-out', `${base}.csr`].concat([
          '-subj',
          `/CN=${cn}`,
        ]),
      );
      await openssl(
        ['x509', '-req', '-in', `${base}.csr`, '-CA', caFile, '-CAkey', caKey].concat([
          '-set_serial',
          String(serial),
          '-days',
          '2',
          '-out',
          `${base}.crt`,
        ]),
      );
      return pair(base);
    },
    async selfSigned(cn) {
      serial += 1;
      const base = join(dir, `rogue-${serial}`);
      await openssl(
        ['req', '-x509', ...EC_KEY, '-keyout', `${base}.key`, '-out', `${base}.crt`].concat([
          '-days',
          '2',
          '-subj',
          `/CN=${cn}`,
        ]),
      );
      return pair(base);
    },
    dispose: () => rm(dir, { recursive: true, force: true }),
  };
}
