/** A throw-away CA and client certificates for mutual-TLS tests, made with the openssl CLI. */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** PEM texts of a CA and a function issuing client certificates under it. */
export interface TestClientCa {
  readonly caCert: string;
  /** A client certificate with subject CN=`cn`, signed by this CA. */
  issue(cn: string): { readonly cert: string; readonly key: string };
  /** A client certificate with subject CN=`cn` that this CA did not sign. */
  selfSigned(cn: string): { readonly cert: string; readonly key: string };
  dispose(): void;
}

function openssl(args: readonly string[]): void {
  execFileSync('openssl', args, { stdio: 'pipe', timeout: 20_000 });
}

/** Creates the CA in a temporary directory (removed by `dispose`). */
export function createTestClientCa(): TestClientCa {
  const dir = mkdtempSync(join(tmpdir(), 'e4c2-client-ca-'));
  const path = (name: string): string => join(dir, name);
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  openssl(
    ['req', '-x509', ...ec, '-keyout', path('ca.key'), '-out', path('ca.crt')].concat([
      '-days',
      '2',
      '-subj',
      '/CN=e4c2-test-client-ca',
    ]),
  );
  let serial = 0;
  return {
    caCert: readFileSync(path('ca.crt'), 'utf8'),
    issue(cn) {
      serial += 1;
      const base = path(`client-${serial}`);
      openssl([
        'req',
        '-new',
        ...ec,
        '-keyout',
        `${base}.key`,
        '-out',
        `${base}.csr`,
        '-subj',
        `/CN=${cn}`,
      ]);
      openssl(
        [
          'x509',
          '-req',
          '-in',
          `${base}.csr`,
          '-CA',
          path('ca.crt'),
          '-CAkey',
          path('ca.key'),
        ].concat(['-set_serial', String(serial), '-days', '2', '-out', `${base}.crt`]),
      );
      return {
        cert: readFileSync(`${base}.crt`, 'utf8'),
        key: readFileSync(`${base}.key`, 'utf8'),
      };
    },
    selfSigned(cn) {
      serial += 1;
      const base = path(`rogue-${serial}`);
      openssl(
        ['req', '-x509', ...ec, '-keyout', `${base}.key`, '-out', `${base}.crt`].concat([
          '-days',
          '2',
          '-subj',
          `/CN=${cn}`,
        ]),
      );
      return {
        cert: readFileSync(`${base}.crt`, 'utf8'),
        key: readFileSync(`${base}.key`, 'utf8'),
      };
    },
    dispose() {
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
