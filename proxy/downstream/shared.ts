/**
 * The state the parts of one downstream connection share (connection.ts owns it; connect.ts,
 * inbound.ts and outbound.ts work on it), and the connection's two ways out: send a packet to
 * the client, or close the connection with a reason.
 */
import type { Socket } from 'node:net';
import type { Packet } from 'mqtt-packet';
import type { HeldIdentity } from '../key-ring.ts';
import type { RejectReason } from '../metrics.ts';
import type { DropReason } from '../policy.ts';
import type { UpstreamLink } from '../upstream.ts';
import type { ConnectionDeps } from './deps.ts';

/** Before CONNECT, opening the upstream session, open, closed (for good). */
export type ConnectionState = 'new' | 'connecting' | 'open' | 'closed';

/**
 * One connection's shared state. Only connection.ts and the CONNECT handling write it; the
 * message paths get a read-only view.
 */
export interface ConnectionShared {
  readonly deps: ConnectionDeps;
  readonly socket: Socket;
  state: ConnectionState;
  /** The negotiated protocol version (4 until CONNECT): packets are encoded by it. */
  version: 4 | 5;
  /** The client id: the one the client gave, until one is assigned after authentication. */
  clientId: string;
  /** The user name the client gave (never its password), for the log. */
  username: string | undefined;
  /** Set once authenticated. */
  identity: HeldIdentity | undefined;
  /** The upstream session, while it is open. */
  link: UpstreamLink | undefined;
  /** Sends a packet to the client (nothing once closed). */
  readonly send: (packet: Packet) => void;
  /**
   * Counts and logs why, then closes the connection (nothing once closed). An MQTT 5 client
   * that had its CONNACK is told why first, in a DISCONNECT: `code`, or the reason's usual code
   * (`protocol` 0x82, `malformed` 0x81, `packet-too-large` 0x95); none for other reasons.
   */
  readonly reject: (reason: RejectReason, detail: string, code?: number) => void;
}

/**
 * True once closed. A function rather than a comparison in place: TypeScript keeps a narrowed
 * `state` across an await or a callback, where the connection may have closed meanwhile.
 */
export function isClosed(shared: Readonly<ConnectionShared>): boolean {
  return shared.state === 'closed';
}

/** Counts and logs a dropped message; `detail` says more (the rotation hold's part). */
export function dropped(
  shared: Readonly<ConnectionShared>,
  direction: 'inbound' | 'outbound',
  reason: DropReason,
  topic: string,
  detail = '',
): void {
  shared.deps.metrics.drop(direction, reason);
  shared.deps.logger.warn(
    {
      clientId: shared.clientId,
      identity: shared.identity?.name,
      direction,
      reason,
      topic: topic.length > 256 ? `${topic.slice(0, 256)}...` : topic,
      ...(detail === '' ? {} : { detail }),
    },
    'message dropped',
  );
}
