/** API authentication and authorization: roles, the credentials file, the authenticator. */
export { credentialAuthenticator } from './credential-authenticator.ts';
export {
  newToken,
  parseApiCredentials,
  tokenDigest,
  type ApiCredentials,
  type CertificateCredential,
  type TokenCredential,
} from './credentials.ts';
export { API_ROLES, isApiRole, requiredRole, roleAllows, type ApiRole } from './roles.ts';
