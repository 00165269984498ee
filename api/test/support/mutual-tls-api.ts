/** An API node that requires client certificates, for the mutual-TLS tests over HTTP/1.1 and 2. */
import { credentialAuthenticator, parseApiCredentials } from '../../auth/index.ts';
import { startApi, type ApiHarness } from './api-harness.ts';
import type { TestClientCa } from './client-ca.ts';

/**
 * Starts a node serving `cert`/`key` that requires a client certificate issued by `ca`, where
 * subject `automation` is an admin (the tests create topics, which operators may not) and
 * `auditor` is read-only; any other subject is unknown.
 */
export function startMutualTlsApi(
  tls: { readonly cert: string; readonly key: string },
  ca: TestClientCa,
): Promise<ApiHarness> {
  const creds = parseApiCredentials(
    JSON.stringify({
      certificates: [
        { subject: 'automation', role: 'admin' },
        { subject: 'auditor', role: 'read-only' },
      ],
    }),
  );
  return startApi({
    api: {
      tls: { cert: tls.cert, key: tls.key, clientCa: ca.caCert },
      authenticate: credentialAuthenticator(creds),
    },
  });
}
