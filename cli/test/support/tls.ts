/** A throwaway self-signed server certificate, shaped like the one `npm start` generates. */
import { generate } from 'selfsigned';

/** PEM certificate and key. */
export interface TestCert {
  readonly cert: string;
  readonly key: string;
}

/** A P-256 certificate for DNS `localhost` and IPs 127.0.0.1 and ::1, valid for a day. */
export async function selfSignedCert(): Promise<TestCert> {
  const now = Date.now();
  const pems = await generate([{ name: 'commonName', value: 'localhost' }], {
    keyType: 'ec',
    curve: 'P-256',
    algorithm: 'sha256',
    notBeforeDate: new Date(now - 3_600_000),
    notAfterDate: new Date(now + 86_400_000),
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
  return { cert: pems.cert, key: pems.private };
}
