/**
 * The {@link Authenticate} function of a node with an API credentials file: a bearer token
 * (`authorization: Bearer <token>`, HTTP header or gRPC metadata) or a verified client
 * certificate names the caller and its role; the role must allow the operation.
 */
import { C2Error } from '../../cluster/errors.ts';
import type {
  AuthenticatedCaller,
  AuthRequest,
  Authenticate,
  ClientCertificate,
} from '../api-types.ts';
import { tokenDigest, type ApiCredentials, type TokenCredential } from './credentials.ts';
import { isUnauthenticatedProbe, requiredRole, roleAllows } from './roles.ts';

/** Who called, once authenticated: the actor is `token:<name>` or `cert:<CN or fingerprint>`. */
type Caller = AuthenticatedCaller;

/** The caller of a liveness probe (it reads nothing and changes nothing). */
const PROBE_CALLER: Caller = { actor: 'probe', role: 'read-only' };

// The scheme is case-insensitive (RFC 9110 §11.1); the token is not.
const BEARER = /^Bearer +([A-Za-z0-9._~+/-]{16,512}=*)$/i;

function tokenCaller(
  header: string,
  byDigest: ReadonlyMap<string, TokenCredential>,
): Caller | undefined {
  const match = BEARER.exec(header);
  if (match?.[1] === undefined)
    throw new C2Error(
      'C2_UNAUTHENTICATED',
      'the authorization header must be "Bearer <token>" with a token of 16 to 512 characters',
    );
  // Looked up by digest: the lookup's timing depends on the token's hash, never on the token.
  const entry = byDigest.get(tokenDigest(match[1]));
  if (entry === undefined) return undefined;
  return { actor: `token:${entry.name}`, role: entry.role };
}

function certificateCaller(
  certificate: ClientCertificate,
  credentials: ApiCredentials,
): Caller | undefined {
  const entry =
    credentials.certificates.find((c) => c.fingerprint256 === certificate.fingerprint256) ??
    credentials.certificates.find(
      (c) => c.fingerprint256 === undefined && c.subject === certificate.subject,
    );
  if (entry === undefined) return undefined;
  return {
    actor: `cert:${certificate.subject ?? certificate.fingerprint256}`,
    role: entry.role,
  };
}

/**
 * Builds the authenticator. A bearer token, when sent, decides (a wrong token is refused even
 * if a certificate would have been accepted); otherwise the verified client certificate does.
 * @returns the caller: the actor recorded in the audit log and its role
 * @throws (from the returned function) C2Error `C2_UNAUTHENTICATED` without valid credentials,
 *   `C2_PERMISSION_DENIED` when the caller's role does not allow the operation
 */
export function credentialAuthenticator(credentials: ApiCredentials): Authenticate {
  const byDigest = new Map(credentials.tokens.map((t) => [t.sha256, t]));
  return (request: AuthRequest): AuthenticatedCaller => {
    // Like /healthz and grpc.health.v1, never refused (whatever credentials come with it).
    if (isUnauthenticatedProbe(request.operation)) return PROBE_CALLER;
    const header = request.header('authorization');
    let caller: Caller | undefined;
    if (header !== undefined) {
      caller = tokenCaller(header, byDigest);
      if (caller === undefined)
        throw new C2Error('C2_UNAUTHENTICATED', 'the bearer token is not valid');
    } else if (request.clientCertificate !== undefined) {
      caller = certificateCaller(request.clientCertificate, credentials);
      if (caller === undefined)
        throw new C2Error(
          'C2_UNAUTHENTICATED',
          'the client certificate is not listed in the API credentials',
        );
    } else {
      throw new C2Error(
        'C2_UNAUTHENTICATED',
        'this API needs credentials: send "authorization: Bearer <token>" or a client certificate',
      );
    }
    const needed = requiredRole(request.operation);
    if (!roleAllows(caller.role, needed))
      throw new C2Error(
        'C2_PERMISSION_DENIED',
        `${caller.actor} has role ${caller.role}; ${request.operation} needs ${needed}`,
        { details: { role: caller.role, required: needed } },
      );
    return caller;
  };
}
