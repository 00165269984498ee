/**
 * Reads the API's authentication material named by the configuration: the credentials file
 * (tokens and client certificates with roles) and the client CA for mutual TLS.
 */
import { X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type { Authenticate } from '../api/index.ts';
import { credentialAuthenticator, parseApiCredentials } from '../api/auth/index.ts';
import type { Config } from '../cluster/config/index.ts';
import { C2Error } from '../cluster/errors.ts';

/** What {@link ApiServer.start} needs for authentication, and a note for the operator. */
export interface ApiAuthMaterial {
  readonly authenticate?: Authenticate;
  readonly clientCa?: string;
  /** Said at start-up: how callers are authenticated. */
  readonly note: string;
}

async function readNamedFile(path: string, what: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (cause) {
    const reason = (cause as NodeJS.ErrnoException).code ?? 'unreadable';
    throw new C2Error('C2_CONFIG', `cannot read the ${what} ${path} (${reason})`, { cause });
  }
}

/**
 * The client CA file must hold at least one PEM certificate, each readable: a file without one
 * was accepted, and the node then refused every client's handshake for good.
 * @throws C2Error `C2_CONFIG` naming the setting and the file, never quoting it
 */
function checkClientCa(pem: string, path: string): string {
  const blocks = pem.match(/-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----/g) ?? [];
  const refuse = (why: string, cause?: unknown): C2Error =>
    new C2Error('C2_CONFIG', `the client CA ${path} (E4C2_TLS_CLIENT_CA) ${why}`, { cause });
  if (blocks.length === 0) throw refuse('holds no PEM certificate');
  for (const block of blocks) {
    try {
      new X509Certificate(block);
    } catch (cause) {
      throw refuse('holds a damaged PEM certificate', cause);
    }
  }
  return pem;
}

/**
 * @throws C2Error `C2_CONFIG` when a named file cannot be read or the credentials are malformed
 */
export async function apiAuthMaterial(config: Config): Promise<ApiAuthMaterial> {
  const { credentialsFile, clientCaFile } = config.api;
  const clientCa =
    clientCaFile === undefined
      ? undefined
      : checkClientCa(await readNamedFile(clientCaFile, 'client CA'), clientCaFile);
  const mutualTls =
    clientCa === undefined
      ? ''
      : '; mutual TLS required (a client certificate issued by E4C2_TLS_CLIENT_CA)';
  if (credentialsFile === undefined) {
    return {
      ...(clientCa === undefined ? {} : { clientCa }),
      note: `API authentication is off (no E4C2_API_CREDENTIALS_FILE): every caller is admin${mutualTls}`,
    };
  }
  const credentials = parseApiCredentials(
    await readNamedFile(credentialsFile, 'API credentials file'),
  );
  return {
    authenticate: credentialAuthenticator(credentials),
    ...(clientCa === undefined ? {} : { clientCa }),
    note:
      `API authentication on: ${credentials.tokens.length} token(s), ` +
      `${credentials.certificates.length} client certificate(s)${mutualTls}`,
  };
}
