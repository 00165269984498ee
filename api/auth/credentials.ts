/**
 * The API credentials file: who may call the API and with which role. It holds no secret: bearer
 * tokens are stored as their SHA-256 (a token is 32 random bytes, so a hash is enough and
 * leaking the file does not leak a token); client certificates are named by subject CN or by
 * SHA-256 fingerprint.
 *
 *     { "tokens": [ { "name": "ops-alice", "role": "operator", "sha256": "<64 hex>" } ],
 *       "certificates": [ { "subject": "automation", "role": "admin" },
 *                         { "fingerprint256": "AB:CD:...", "role": "read-only" } ] }
 */
import { createHash, randomBytes } from 'node:crypto';
import { C2Error } from '../../cluster/errors.ts';
import { API_ROLES, isApiRole, type ApiRole } from './roles.ts';

/** A bearer token's entry. */
export interface TokenCredential {
  /** Who holds it: recorded as the actor `token:<name>` in the audit log. */
  readonly name: string;
  readonly role: ApiRole;
  /** Lower-case hex SHA-256 of the token's UTF-8 text. */
  readonly sha256: string;
}

/** A client certificate's entry (mutual TLS): matched by subject CN or by fingerprint. */
export interface CertificateCredential {
  readonly subject?: string;
  /** Colon-separated upper-case hex, as node:tls reports `fingerprint256`. */
  readonly fingerprint256?: string;
  readonly role: ApiRole;
}

/** The parsed credentials file. */
export interface ApiCredentials {
  readonly tokens: readonly TokenCredential[];
  readonly certificates: readonly CertificateCredential[];
}

const NAME = /^[A-Za-z0-9._@-]{1,64}$/;
const SHA256_HEX = /^[0-9a-f]{64}$/;
const FINGERPRINT = /^([0-9A-F]{2}:){31}[0-9A-F]{2}$/;

function problem(where: string, message: string): C2Error {
  return new C2Error('C2_CONFIG', `API credentials file, ${where}: ${message}`);
}

function record(value: unknown, where: string): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    throw problem(where, 'must be a JSON object');
  return value as Record<string, unknown>;
}

function checkKeys(
  entry: Record<string, unknown>,
  allowed: readonly string[],
  where: string,
): void {
  for (const key of Object.keys(entry))
    if (!allowed.includes(key))
      throw problem(where, `unknown field '${key}' (allowed: ${allowed.join(', ')})`);
}

function role(entry: Record<string, unknown>, where: string): ApiRole {
  if (!isApiRole(entry.role)) throw problem(where, `role must be one of ${API_ROLES.join(', ')}`);
  return entry.role;
}

function parseToken(value: unknown, where: string): TokenCredential {
  const entry = record(value, where);
  checkKeys(entry, ['name', 'role', 'sha256'], where);
  if (typeof entry.name !== 'string' || !NAME.test(entry.name))
    throw problem(where, 'name must be 1-64 characters of A-Z a-z 0-9 . _ @ -');
  if (typeof entry.sha256 !== 'string' || !SHA256_HEX.test(entry.sha256))
    throw problem(where, 'sha256 must be 64 lower-case hex digits (see `e4c2 token new`)');
  return { name: entry.name, role: role(entry, where), sha256: entry.sha256 };
}

function parseCertificate(value: unknown, where: string): CertificateCredential {
  const entry = record(value, where);
  checkKeys(entry, ['subject', 'fingerprint256', 'role'], where);
  const { subject, fingerprint256 } = entry;
  if (subject === undefined && fingerprint256 === undefined)
    throw problem(where, 'give subject (the certificate CN) or fingerprint256');
  if (subject !== undefined && (typeof subject !== 'string' || !NAME.test(subject)))
    throw problem(where, 'subject must be 1-64 characters of A-Z a-z 0-9 . _ @ -');
  if (
    fingerprint256 !== undefined &&
    (typeof fingerprint256 !== 'string' || !FINGERPRINT.test(fingerprint256))
  )
    throw problem(where, 'fingerprint256 must be 32 colon-separated upper-case hex bytes');
  return {
    ...(typeof subject === 'string' ? { subject } : {}),
    ...(typeof fingerprint256 === 'string' ? { fingerprint256 } : {}),
    role: role(entry, where),
  };
}

function list(value: unknown, where: string): readonly unknown[] {
  if (value === undefined) return [];
  if (!Array.isArray(value)) throw problem(where, 'must be a JSON array');
  return value;
}

/**
 * Parses and checks the credentials file's text.
 * @throws C2Error `C2_CONFIG` naming the first problem (never quoting a value)
 */
export function parseApiCredentials(text: string): ApiCredentials {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw problem('top level', 'is not valid JSON');
  }
  const top = record(json, 'top level');
  checkKeys(top, ['tokens', 'certificates'], 'top level');
  const tokens = list(top.tokens, 'tokens').map((t, i) => parseToken(t, `tokens[${i}]`));
  const certificates = list(top.certificates, 'certificates').map((c, i) =>
    parseCertificate(c, `certificates[${i}]`),
  );
  const names = new Set<string>();
  for (const [i, t] of tokens.entries()) {
    if (names.has(t.name)) throw problem(`tokens[${i}]`, `name '${t.name}' is used twice`);
    names.add(t.name);
  }
  if (tokens.length + certificates.length === 0)
    throw problem('top level', 'lists no token and no certificate: nobody could call the API');
  return { tokens, certificates };
}

/** The SHA-256 (lower-case hex) under which a token is stored. */
export function tokenDigest(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}

/** A new random bearer token (43 base64url characters, 256 bits) and its stored digest. */
export function newToken(): { readonly token: string; readonly sha256: string } {
  const token = randomBytes(32).toString('base64url');
  return { token, sha256: tokenDigest(token) };
}
