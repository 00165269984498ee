/**
 * A downstream client's CONNECT: its protocol version, authentication, the client id upstream,
 * the will, the upstream session, and the CONNACK, with the MQTT 5 reason code or 3.1.1 return
 * code of a refusal.
 */
import { randomBytes } from 'node:crypto';
import type { IConnectPacket } from 'mqtt-packet';
import type { RejectReason } from '../metrics.ts';
import type { UpstreamLink } from '../upstream.ts';
import type { InboundPath } from './inbound.ts';
import type { OutboundPath } from './outbound.ts';
import { RC, V4_CONNACK } from './reason-codes.ts';
import { isClosed, type ConnectionShared } from './shared.ts';

/** Longest MQTT string, so the longest client id (MQTT 3.1.1 §1.5.3, 5 §1.5.4). */
const MAX_CLIENT_ID_BYTES = 65_535;

/** What the CONNECT handling needs of the connection beyond its shared state. */
export interface ConnectParts {
  /** Common name of the client certificate the listener verified. */
  readonly certCommonName: string | undefined;
  /** The negotiated version, called before anything is awaited: later packets are read by it. */
  readonly useVersion: (version: 4 | 5) => void;
  readonly inbound: InboundPath;
  readonly outbound: OutboundPath;
  /**
   * The session is open and the client has its CONNACK: runs at once (before any other message
   * of the broker's), with the client's keepalive in seconds.
   */
  readonly opened: (keepalive: number) => void;
}

/**
 * Handles CONNECT: the session opens (`state` open, `link` and `identity` set, CONNACK sent, then
 * `parts.opened`), or the client is refused (its CONNACK sent, then closed).
 */
export async function connect(
  packet: IConnectPacket,
  s: ConnectionShared,
  parts: ConnectParts,
): Promise<void> {
  s.state = 'connecting';
  // What the client claims, so that a refusal is logged with it.
  s.clientId = packet.clientId;
  s.username = packet.username;
  const version = packet.protocolVersion;
  if (version !== 4 && version !== 5) {
    s.send({ cmd: 'connack', returnCode: V4_CONNACK.badVersion, sessionPresent: false });
    s.reject('unsupported-version', `protocol version ${String(version)}`);
    return;
  }
  s.version = version;
  parts.useVersion(version);
  const refuse = (v4: number, v5: number, reason: RejectReason, detail: string): void => {
    s.send(
      version === 5
        ? { cmd: 'connack', reasonCode: v5, sessionPresent: false }
        : { cmd: 'connack', returnCode: v4, sessionPresent: false },
    );
    s.reject(reason, detail);
  };
  if (version === 5 && packet.properties?.authenticationMethod !== undefined) {
    refuse(V4_CONNACK.notAuthorized, RC.badAuthMethod, 'auth', 'enhanced authentication');
    return;
  }
  const clean = packet.clean !== false;
  if (packet.clientId === '' && !clean && version === 4) {
    refuse(V4_CONNACK.idRejected, RC.clientIdInvalid, 'protocol', 'empty client id, no clean');
    return;
  }
  const auth = await s.deps.authenticate({
    clientId: packet.clientId,
    username: packet.username,
    password: packet.password,
    certCommonName: parts.certCommonName,
  });
  if (isClosed(s)) return;
  if (!auth.ok) {
    const bad = auth.reason === 'bad-credentials';
    refuse(
      bad ? V4_CONNACK.badCredentials : V4_CONNACK.notAuthorized,
      bad ? RC.badCredentials : RC.notAuthorized,
      'auth',
      auth.reason,
    );
    return;
  }
  s.identity = auth.identity;
  const assigned = packet.clientId === '' ? `e4proxy-${randomBytes(6).toString('hex')}` : '';
  s.clientId = assigned === '' ? packet.clientId : assigned;
  // Gateway mode: tied to what accepted the client, so a client accepted as someone else never
  // shares a device's session by claiming its client id.
  const tag = auth.sessionTag === undefined ? '' : `${auth.sessionTag}-`;
  const upstreamClientId = `${s.deps.clientIdPrefix}${tag}${s.clientId}`;
  if (Buffer.byteLength(upstreamClientId) > MAX_CLIENT_ID_BYTES) {
    refuse(V4_CONNACK.idRejected, RC.clientIdInvalid, 'protocol', 'client id too long upstream');
    return;
  }
  if (upstreamClientId === s.deps.controlClientId) {
    refuse(
      V4_CONNACK.idRejected,
      RC.clientIdInvalid,
      'auth',
      'client id of the proxy control session',
    );
    return;
  }
  const will = parts.outbound.willOf(packet);
  const keepalive = packet.keepalive ?? 60;
  let opened: { link: UpstreamLink; sessionPresent: boolean };
  try {
    opened = await s.deps.upstream.connect(
      {
        clientId: upstreamClientId,
        protocolVersion: version,
        clean,
        keepalive: keepalive === 0 ? 60 : keepalive,
        ...(packet.properties?.sessionExpiryInterval === undefined
          ? {}
          : { sessionExpiryInterval: packet.properties.sessionExpiryInterval }),
        ...(will === undefined ? {} : { will }),
      },
      {
        onMessage: (message, done) => {
          parts.inbound.receive(message, done);
        },
        onClose: () => {
          s.link = undefined;
          s.reject('upstream-unavailable', 'the broker closed the session');
        },
      },
    );
  } catch (err) {
    if (isClosed(s)) return;
    // The broker's refusal of the protocol version is the device's to hear (it may retry with
    // another version); any other failure upstream is the proxy's, so the server is unavailable.
    const code = (err as { code?: unknown } | null)?.code;
    const badVersion = code === V4_CONNACK.badVersion || code === RC.unsupportedVersion;
    refuse(
      badVersion ? V4_CONNACK.badVersion : V4_CONNACK.unavailable,
      badVersion ? RC.unsupportedVersion : RC.serverUnavailable,
      'upstream-unavailable',
      err instanceof Error ? err.message : 'connect failed',
    );
    return;
  }
  if (isClosed(s)) {
    opened.link.close(false);
    return;
  }
  s.link = opened.link;
  s.state = 'open';
  s.send({
    cmd: 'connack',
    sessionPresent: opened.sessionPresent,
    ...(version === 5
      ? {
          reasonCode: RC.success,
          properties: {
            topicAliasMaximum: 0,
            maximumPacketSize: s.deps.limits.maxPacketBytes,
            ...(assigned === '' ? {} : { assignedClientIdentifier: assigned }),
          },
        }
      : { returnCode: 0 }),
  });
  s.deps.logger.info(
    { clientId: s.clientId, identity: auth.identity.name, version },
    'downstream client connected',
  );
  parts.opened(keepalive);
}
