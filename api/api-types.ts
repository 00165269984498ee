/** The small contracts the API layer shares between its surfaces and with its composition root. */
import type { C2Service } from '../cluster/domain/index.ts';
import type { EventWakeups } from '../cluster/events/index.ts';
import type { RpcTelemetry } from '../cluster/telemetry/index.ts';
import type { ApiRole } from './auth/roles.ts';

/** Any pino logger (or child) fits; tests can pass a silent one. */
export interface ApiLogger {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
  child?(bindings: Record<string, unknown>): ApiLogger;
}

/** One dependency's state in a {@link ReadinessReport}. */
export interface DependencyState {
  readonly ok: boolean;
  /** Why it is down (no secrets: it is shown on `/readyz`). */
  readonly message?: string;
}

/** What the readiness function reports: ready only when every dependency is. */
export interface ReadinessReport {
  readonly ready: boolean;
  /**
   * Per dependency, e.g. `{ postgres: { ok: true }, mqtt: { ok: false, message: '...' } }`; a
   * bare boolean is short for `{ ok }`. `/readyz` always shows the object form.
   */
  readonly checks: Readonly<Record<string, DependencyState | boolean>>;
}

/** A verified TLS client certificate (mutual TLS), as the transport reports it. */
export interface ClientCertificate {
  /** The subject's common name, when it has one. */
  readonly subject?: string;
  /** SHA-256 fingerprint, colon-separated upper-case hex. */
  readonly fingerprint256: string;
}

/** What an {@link Authenticate} function may look at. */
export interface AuthRequest {
  readonly transport: 'grpc' | 'http';
  /** The RPC asked for, e.g. `pb.C2/NewClient` (gRPC) or `NewClient` (its HTTP route). */
  readonly operation: string;
  /** The client certificate, only when the TLS layer verified it against the client CA. */
  readonly clientCertificate?: ClientCertificate;
  /** Remote address as the transport reports it (`127.0.0.1:53412`, `ipv4:...`), if known. */
  readonly peer: string | undefined;
  /** A request header (HTTP) or metadata entry (gRPC), lower-case name; first value only. */
  header(name: string): string | undefined;
}

/** An authenticated caller: the actor of the audit log and the role its credentials grant. */
export interface AuthenticatedCaller {
  readonly actor: string;
  readonly role: ApiRole;
}

/**
 * Turns a request into the actor recorded in the audit log, with its role when credentials grant
 * one (a bare actor is unrestricted). This is the seam for authentication: throw
 * `C2Error('C2_UNAUTHENTICATED')` or `C2Error('C2_PERMISSION_DENIED')` to refuse.
 */
export type Authenticate = (
  request: AuthRequest,
) => Promise<string | AuthenticatedCaller> | string | AuthenticatedCaller;

/** The caller an {@link Authenticate} answer names. */
export function callerOf(answer: string | AuthenticatedCaller): {
  readonly actor: string;
  readonly role?: ApiRole;
} {
  return typeof answer === 'string' ? { actor: answer } : answer;
}

/** The default {@link Authenticate}: no authentication yet, the actor is the peer address. */
export const anonymousAuthenticate: Authenticate = (request) => request.peer ?? 'anonymous';

/** What every operation receives besides its request message. */
export interface CallContext {
  /** Who asks (from {@link Authenticate}). */
  readonly actor: string;
  /** The caller's role; absent when nothing restricts it (no authentication). */
  readonly role?: ApiRole;
  /** Correlation id of this request in the logs and in internal-error messages. */
  readonly requestId: string;
  /** Idempotency key of a mutating call (metadata `idempotency-key`, header `Idempotency-Key`). */
  readonly idempotencyKey?: string;
  /** Whose idempotency keys these are, when keys are scoped per caller (see ApiDeps). */
  readonly idempotencyScope?: string;
}

/** What both surfaces are built from (assembled by `ApiServer`). */
export interface ApiDeps {
  readonly service: C2Service;
  readonly logger: ApiLogger;
  readonly authenticate: Authenticate;
  /** Idempotency keys per actor (authenticated callers) rather than one global space. */
  readonly idempotencyPerActor: boolean;
  /** Readiness including this node's own state (draining), never rejecting, bounded in time. */
  readonly readiness: () => Promise<ReadinessReport>;
  /** Pause between polls of the event journal by event streams (while nothing wakes them). */
  readonly eventPollIntervalMs: number;
  /** Cluster-wide wake-ups of event streams (Postgres LISTEN/NOTIFY); polling only without. */
  readonly eventWakeups?: EventWakeups;
  /** Spans and metrics of every call (absent: calls are not instrumented). */
  readonly telemetry?: RpcTelemetry;
}
