/**
 * The self-signed TLS certificate of a single-node C2, generated once and kept in the data
 * directory so that clients that trust it keep trusting it across restarts.
 */
import { createPrivateKey, randomBytes, X509Certificate } from 'node:crypto';
import { chmod, mkdir, readFile, rename, stat, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { generate } from 'selfsigned';
import { C2Error } from '../errors.ts';

/** The certificate files and facts to print at start-up. */
export interface SelfSignedCert {
  /** PEM certificate; give it to clients as their CA (e.g. the Go CLI's `--cert`). */
  readonly certPath: string;
  /** PEM PKCS#8 private key, mode 0600. */
  readonly keyPath: string;
  /** True when this call generated the pair (first start, or the old one had expired). */
  readonly created: boolean;
  /** SHA-256 of the DER certificate, `AB:CD:...` (as `openssl x509 -fingerprint -sha256`). */
  readonly fingerprintSha256: string;
  /** End of validity. */
  readonly validTo: Date;
}

/** Options of {@link ensureSelfSignedCert}; the defaults fit `npm start`. */
export interface SelfSignedCertOptions {
  /** Validity of a new certificate in days. Default 825 (the longest browsers accept). */
  readonly validityDays?: number;
  /** A certificate that expires within this many days is replaced. Default 30. */
  readonly renewBeforeDays?: number;
  /** Clock, for tests. */
  readonly now?: () => Date;
}

/** File names inside the certificate directory. */
const CERT_FILE = 'cert.pem';
const KEY_FILE = 'key.pem';
const DAY_MS = 86_400_000;

/**
 * Returns the certificate in `dir` (`cert.pem`, `key.pem`), generating it first when missing,
 * incomplete or (nearly) expired. A new certificate is an ECDSA P-256 / SHA-256 self-signed
 * server certificate for DNS `localhost` and IPs `127.0.0.1` and `::1`: the subjectAltName
 * entries are what TLS clients (gRPC, the Go reference CLI) check the host name against.
 * A key file readable by others is tightened to 0600.
 * @throws C2Error `C2_CONFIG` when existing files cannot be read, are not PEM, or do not belong
 *   together; or when `dir` is not writable
 */
export async function ensureSelfSignedCert(
  dir: string,
  options: SelfSignedCertOptions = {},
): Promise<SelfSignedCert> {
  const certPath = join(dir, CERT_FILE);
  const keyPath = join(dir, KEY_FILE);
  const now = options.now?.() ?? new Date();
  const renewBefore = (options.renewBeforeDays ?? 30) * DAY_MS;

  const existing = await readExisting(certPath, keyPath);
  if (existing !== undefined && existing.validTo.getTime() - renewBefore > now.getTime()) {
    return { certPath, keyPath, created: false, ...existing };
  }

  try {
    await mkdir(dir, { recursive: true, mode: 0o700 });
    const pems = await generate([{ name: 'commonName', value: 'localhost' }], {
      keyType: 'ec',
      curve: 'P-256',
      // selfsigned signs with SHA-1 unless told otherwise, which Go's crypto/x509 rejects.
      algorithm: 'sha256',
      // An hour of slack so that a client whose clock is a little behind accepts it at once.
      notBeforeDate: new Date(now.getTime() - 3_600_000),
      notAfterDate: new Date(now.getTime() + (options.validityDays ?? 825) * DAY_MS),
      extensions: [
        { name: 'basicConstraints', cA: false, critical: true },
        { name: 'keyUsage', digitalSignature: true, critical: true },
        { name: 'extKeyUsage', serverAuth: true },
        {
          name: 'subjectAltName',
          altNames: [
            { type: 2, value: 'localhost' },
            { type: 7, ip: '127.0.0.1' },
            { type: 7, ip: '::1' },
          ],
        },
      ],
    });
    // The key first: a certificate on disk then always has its key next to it.
    await writeAtomically(keyPath, pems.private, 0o600);
    await writeAtomically(certPath, pems.cert, 0o644);
    const cert = new X509Certificate(pems.cert);
    return {
      certPath,
      keyPath,
      created: true,
      fingerprintSha256: cert.fingerprint256,
      validTo: new Date(cert.validTo),
    };
  } catch (cause) {
    throw new C2Error('C2_CONFIG', `cannot create a TLS certificate in ${dir}`, { cause });
  }
}

/** The existing pair's facts, or `undefined` when either file is missing. */
async function readExisting(
  certPath: string,
  keyPath: string,
): Promise<{ fingerprintSha256: string; validTo: Date } | undefined> {
  const [certPem, keyPem] = await Promise.all([readIfExists(certPath), readIfExists(keyPath)]);
  // Only a key (a crash between the two writes) or only a certificate (someone deleted the key):
  // neither is usable, so a new pair replaces it.
  if (certPem === undefined || keyPem === undefined) return undefined;
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(certPem);
    if (!cert.checkPrivateKey(createPrivateKey(keyPem))) throw new Error('key mismatch');
  } catch (cause) {
    throw new C2Error(
      'C2_CONFIG',
      `${certPath} and ${keyPath} are not a matching PEM certificate and key; delete both to ` +
        `get a new self-signed certificate`,
      { cause },
    );
  }
  if (((await stat(keyPath)).mode & 0o077) !== 0) await chmod(keyPath, 0o600);
  return { fingerprintSha256: cert.fingerprint256, validTo: new Date(cert.validTo) };
}

async function readIfExists(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new C2Error('C2_CONFIG', `cannot read ${path}`, { cause: err });
  }
}

/** Writes via a temporary file and a rename, so a crash never leaves a half-written file. */
async function writeAtomically(path: string, data: string, mode: number): Promise<void> {
  const tmp = `${path}.${randomBytes(6).toString('hex')}.tmp`;
  try {
    await writeFile(tmp, data, { flag: 'wx', mode });
    await rename(tmp, path);
  } catch (err) {
    await unlink(tmp).catch(() => undefined);
    throw err;
  }
}
