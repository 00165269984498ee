/**
 * One downstream MQTT client (3.1.1 or 5) of the proxy: its packets are parsed with mqtt-packet,
 * and it is bridged to its own upstream session. Outbound PUBLISH on protected topics is
 * protected with the identity's topic key; inbound messages on protected topics are unprotected
 * before delivery; control topics never reach the client. Acknowledgements are end to end: the
 * client's PUBLISH is acknowledged once the broker acknowledged it, and the broker's message is
 * acknowledged once the client acknowledged it, so QoS and order survive the proxy.
 *
 * This file reads the packets, dispatches them, and owns the connection's lifecycle (timers,
 * socket, close); connect.ts handles CONNECT, inbound.ts the broker-to-client path, outbound.ts
 * the client-to-broker path, subscribe.ts SUBSCRIBE and UNSUBSCRIBE. They share the state in
 * shared.ts.
 *
 * Anything malformed, too large or out of protocol closes this connection (counted, logged);
 * nothing a client sends can throw out of this class.
 */
import type { Socket } from 'node:net';
import mqttPacket, { type IConnectPacket, type Packet } from 'mqtt-packet';
import type { RejectReason } from '../metrics.ts';
import { connect } from './connect.ts';
import type { ConnectionDeps } from './deps.ts';
import { InboundPath } from './inbound.ts';
import { OutboundPath } from './outbound.ts';
import { RC, V4_CONNACK } from './reason-codes.ts';
import { isClosed, type ConnectionShared } from './shared.ts';
import { strictUtf8Parser } from './strict-utf8-parser.ts';
import { subscribe, unsubscribe } from './subscribe.ts';

/**
 * The MQTT 5 DISCONNECT reason code a rejection sends by default (§4.13: a server that closes a
 * connection for a malformed packet or a protocol error may say so first).
 */
const DISCONNECT_CODES: Partial<Record<RejectReason, number>> = {
  protocol: RC.protocolError,
  malformed: RC.malformedPacket,
  'packet-too-large': RC.packetTooLarge,
};

/** Queue limit of packets received while the upstream session is being opened. */
const MAX_EARLY_PACKETS = 1000;

/** One downstream client. */
export class DownstreamConnection {
  readonly #s: ConnectionShared;
  readonly #inbound: InboundPath;
  readonly #outbound: OutboundPath;
  readonly #parser = strictUtf8Parser(4);
  readonly #early: Packet[] = [];
  #corked = false;
  #lastSeen = Date.now();
  #timer: NodeJS.Timeout | undefined;
  #closedListeners: Array<() => void> = [];

  constructor(
    private readonly socket: Socket,
    private readonly deps: ConnectionDeps,
    private readonly certCommonName: string | undefined,
  ) {
    this.#s = {
      deps,
      socket,
      state: 'new',
      version: 4,
      clientId: '',
      username: undefined,
      identity: undefined,
      link: undefined,
      send: (packet) => {
        this.#send(packet);
      },
      reject: (reason, detail, code) => {
        this.#reject(reason, detail, code);
      },
    };
    this.#inbound = new InboundPath(this.#s);
    this.#outbound = new OutboundPath(this.#s);
    deps.metrics.connections.inc();
    this.#parser.on('packet', (packet: Packet) => {
      this.#onPacket(packet);
    });
    this.#parser.on('error', (err: Error) => {
      this.#onParseError(err);
    });
    socket.on('data', (chunk: Buffer) => {
      this.#onData(chunk);
    });
    socket.on('error', (err) => {
      deps.logger.debug({ err: err.message }, 'downstream socket error');
    });
    socket.on('close', () => {
      this.#close(false);
    });
    this.#timer = setTimeout(() => {
      this.#reject('timeout', 'no CONNECT in time');
    }, deps.limits.connectTimeoutMs);
  }

  /** The client id (after CONNECT). */
  get clientId(): string {
    return this.#s.clientId;
  }

  /** True once closed. */
  get closed(): boolean {
    return isClosed(this.#s);
  }

  /** Runs `listener` when the connection closes. */
  onClosed(listener: () => void): void {
    if (isClosed(this.#s)) listener();
    else this.#closedListeners.push(listener);
  }

  /** Closes the connection (the upstream session with a DISCONNECT: no will). */
  close(): void {
    this.#close(true);
  }

  #onData(chunk: Buffer): void {
    if (isClosed(this.#s)) return;
    this.#lastSeen = Date.now();
    try {
      this.#parser.parse(chunk);
    } catch (err) {
      this.#reject('malformed', err instanceof Error ? err.message : 'unparseable');
      return;
    }
    if (isClosed(this.#s)) return;
    // The parser knows a packet's declared length once its fixed header is in: refuse it before
    // buffering the rest.
    const declared = (this.#parser as unknown as { packet: { length: number } }).packet.length;
    if (declared > this.deps.limits.maxPacketBytes) {
      this.#reject('packet-too-large', `declared ${declared} bytes`);
    }
  }

  #onParseError(err: Error): void {
    // MQTT 3.1.1 §3.1.2.2: a CONNECT of a protocol level the server does not support is answered
    // with CONNACK 0x01 (unacceptable protocol version), then closed. mqtt-packet refuses the
    // level while parsing (its message is the only sign), having read the level into its packet.
    if (this.#s.state === 'new' && err.message === 'Invalid protocol version') {
      const level = (this.#parser as unknown as { packet: { protocolVersion?: unknown } }).packet
        .protocolVersion;
      this.#send({ cmd: 'connack', returnCode: V4_CONNACK.badVersion, sessionPresent: false });
      this.#reject('unsupported-version', `protocol level ${String(level)}`);
      return;
    }
    this.#reject('malformed', err.message);
  }

  #onPacket(packet: Packet): void {
    if (isClosed(this.#s)) return;
    try {
      if (this.#s.state === 'new') {
        if (packet.cmd !== 'connect') {
          this.#reject('protocol', `first packet is ${packet.cmd}, not connect`);
          return;
        }
        void this.#onConnect(packet).catch((err: unknown) => {
          this.#reject('protocol', err instanceof Error ? err.message : 'connect failed');
        });
        return;
      }
      if (this.#s.state === 'connecting') {
        if (this.#early.length >= MAX_EARLY_PACKETS)
          this.#reject('protocol', 'flood before CONNACK');
        else this.#early.push(packet);
        return;
      }
      this.#handle(packet);
    } catch (err) {
      // Defensive: a bug must cost this connection, never the process.
      this.deps.logger.error(
        { err, clientId: this.#s.clientId },
        'downstream packet handling failed',
      );
      this.#reject('protocol', 'internal error', RC.unspecified); // ours, not the client's
    }
  }

  #handle(packet: Packet): void {
    switch (packet.cmd) {
      case 'publish':
        this.#outbound.publish(packet);
        return;
      case 'puback':
        this.#inbound.settle(packet.messageId, 'puback');
        return;
      case 'pubrec':
        this.#inbound.pubrec(packet);
        return;
      case 'pubcomp':
        this.#inbound.settle(packet.messageId, 'pubcomp');
        return;
      case 'pubrel':
        this.#outbound.release(packet.messageId);
        return;
      case 'subscribe':
        subscribe(this.#s, packet);
        return;
      case 'unsubscribe':
        unsubscribe(this.#s, packet);
        return;
      case 'pingreq':
        this.#send({ cmd: 'pingresp' });
        return;
      case 'disconnect':
        // MQTT 5 "disconnect with will message" (0x04) keeps the will.
        this.#close(packet.reasonCode !== 0x04);
        return;
      default:
        this.#reject('protocol', `unexpected ${packet.cmd} from a client`);
    }
  }

  #onConnect(packet: IConnectPacket): Promise<void> {
    return connect(packet, this.#s, {
      certCommonName: this.certCommonName,
      useVersion: (version) => {
        // mqtt-packet parses later packets by the negotiated version.
        (
          this.#parser as unknown as { settings: { protocolVersion: number } }
        ).settings.protocolVersion = version;
      },
      inbound: this.#inbound,
      outbound: this.#outbound,
      opened: (keepalive) => {
        clearTimeout(this.#timer);
        if (keepalive > 0) this.#watchKeepalive(keepalive);
        this.#inbound.deliverEarly();
        for (const early of this.#early.splice(0)) {
          if (isClosed(this.#s)) break;
          this.#handle(early);
        }
      },
    });
  }

  #watchKeepalive(seconds: number): void {
    const limitMs = seconds * 1500;
    this.#timer = setInterval(
      () => {
        if (Date.now() - this.#lastSeen > limitMs)
          this.#reject('timeout', 'keepalive expired', RC.keepAliveTimeout);
      },
      Math.max(250, Math.floor(limitMs / 3)),
    );
    this.#timer.unref();
  }

  #send(packet: Packet): void {
    if (this.#s.state === 'closed' || this.socket.destroyed) return;
    let bytes: Buffer;
    try {
      bytes = mqttPacket.generate(packet, { protocolVersion: this.#s.version });
    } catch (err) {
      this.deps.logger.error(
        { err: err instanceof Error ? err.message : String(err), cmd: packet.cmd },
        'cannot encode a packet for a downstream client',
      );
      this.#close(false);
      return;
    }
    // Everything sent in one turn of the event loop leaves in one write (acknowledgements of a
    // burst of messages would otherwise cost a system call each).
    if (!this.#corked) {
      this.#corked = true;
      this.socket.cork();
      setImmediate(() => {
        this.#corked = false;
        this.socket.uncork();
      });
    }
    this.socket.write(bytes);
  }

  #reject(reason: RejectReason, detail: string, code = DISCONNECT_CODES[reason]): void {
    if (isClosed(this.#s)) return;
    // Never before the CONNACK (MQTT 5 §3.14.0-1): a refused CONNECT has its CONNACK code.
    if (code !== undefined && this.#s.state === 'open' && this.#s.version === 5)
      this.#send({ cmd: 'disconnect', reasonCode: code });
    this.deps.metrics.rejected.inc({ reason });
    this.deps.logger.warn(
      {
        clientId: this.#s.clientId,
        username: this.#s.username,
        identity: this.#s.identity?.name,
        reason,
        detail,
      },
      'downstream connection closed by the proxy',
    );
    this.#close(false);
  }

  /**
   * Ends the connection. Unacknowledged inbound messages stay unacknowledged upstream, so the
   * broker keeps them for the client's next session; `graceful` decides whether the upstream
   * session ends with DISCONNECT (no will) or is cut (the broker publishes the will).
   */
  #close(graceful: boolean): void {
    if (isClosed(this.#s)) return;
    this.#s.state = 'closed';
    clearTimeout(this.#timer);
    clearInterval(this.#timer);
    // Held messages were acknowledged upstream: they end with the connection (one log line).
    this.#inbound.close();
    this.#s.link?.close(graceful);
    this.#s.link = undefined;
    if (this.#corked) {
      this.#corked = false;
      this.socket.uncork();
    }
    // End (flushing a final CONNACK or DISCONNECT), and cut a peer that does not close its side.
    if (!this.socket.destroyed) {
      this.socket.end();
      setTimeout(() => this.socket.destroy(), 1000).unref();
    }
    this.deps.metrics.connections.dec();
    for (const listener of this.#closedListeners.splice(0)) listener();
  }
}
