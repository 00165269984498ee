/** The client certificate of a mutual-TLS connection, in the shape {@link AuthRequest} carries. */
import type { PeerCertificate } from 'node:tls';
import type { ClientCertificate } from '../api-types.ts';

/**
 * The facts of a peer certificate, or undefined when there is none. Callers pass only
 * certificates the TLS layer verified (grpc-js reports one only for an authorized socket; the
 * HTTP server checks `socket.authorized`).
 */
export function verifiedCertificate(
  certificate: PeerCertificate | undefined,
): ClientCertificate | undefined {
  if (certificate === undefined || typeof certificate.fingerprint256 !== 'string') return undefined;
  if (certificate.fingerprint256 === '') return undefined;
  const cn: unknown = certificate.subject.CN;
  const subject = typeof cn === 'string' ? cn : Array.isArray(cn) ? (cn[0] as unknown) : undefined;
  return {
    fingerprint256: certificate.fingerprint256,
    ...(typeof subject === 'string' ? { subject } : {}),
  };
}
