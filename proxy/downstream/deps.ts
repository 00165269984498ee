/**
 * What a downstream connection needs from the proxy (its collaborators and limits), and the
 * default timing of those limits.
 */
import type { ProxyLogger } from '../logger.ts';
import type { ProxyMetrics } from '../metrics.ts';
import type { TopicPolicy } from '../policy.ts';
import type { RotationHold } from '../rotation-hold.ts';
import type { UpstreamConnector } from '../upstream.ts';
import type { Authenticator } from './authenticate.ts';

/** Limits of one connection. */
export interface ConnectionLimits {
  readonly maxPayloadBytes: number;
  /** A packet declaring a larger remaining length closes the connection before it is buffered. */
  readonly maxPacketBytes: number;
  /** Time allowed between the TCP connection and CONNECT. */
  readonly connectTimeoutMs: number;
  /** Time a client has to acknowledge a QoS 1/2 message before it is disconnected. */
  readonly ackTimeoutMs: number;
  /** Outbound messages awaiting the broker before the client's socket is paused. */
  readonly maxInflight: number;
}

/** Default {@link ConnectionLimits} apart from the sizes. */
export const DEFAULT_TIMING = {
  connectTimeoutMs: 10_000,
  ackTimeoutMs: 30_000,
  maxInflight: 1000,
} as const;

/** What a connection needs. */
export interface ConnectionDeps {
  readonly authenticate: Authenticator;
  readonly policy: TopicPolicy;
  readonly metrics: ProxyMetrics;
  readonly logger: ProxyLogger;
  readonly upstream: UpstreamConnector;
  readonly limits: ConnectionLimits;
  /** Prepended to the client id upstream. */
  readonly clientIdPrefix: string;
  /**
   * Client id of the proxy's control session: a client whose upstream client id would be this
   * one is refused (it would take the session over, and the C2's commands with it).
   */
  readonly controlClientId: string;
  /** Milliseconds (for classifying stale messages). */
  readonly now: () => number;
  /** Where inbound messages not authentic under any held key wait for a SetTopicKey. */
  readonly hold: RotationHold;
}
