/**
 * One downstream MQTT client (3.1.1 or 5) of the proxy: its packets are parsed with mqtt-packet,
 * and it is bridged to its own upstream session. Outbound PUBLISH on protected topics is
 * protected with the identity's topic key; inbound messages on protected topics are unprotected
 * before delivery; control topics never reach the client. Acknowledgements are end to end: the
 * client's PUBLISH is acknowledged once the broker acknowledged it, and the broker's message is
 * acknowledged once the client acknowledged it, so QoS and order survive the proxy.
 *
 * Anything malformed, too large or out of protocol closes this connection (counted, logged);
 * nothing a client sends can throw out of this class.
 */
import { randomBytes } from 'node:crypto';
import type { Socket } from 'node:net';
import mqttPacket, {
  type IConnectPacket,
  type IPublishPacket,
  type ISubscribePacket,
  type IUnsubscribePacket,
  type Packet,
} from 'mqtt-packet';
import type { HeldIdentity } from '../key-ring.ts';
import type { ProxyLogger } from '../logger.ts';
import type { ProxyMetrics, RejectReason } from '../metrics.ts';
import {
  awaitedKey,
  unprotectDropReason,
  type AwaitedKey,
  type DropReason,
  type TopicPolicy,
} from '../policy.ts';
import type { HeldMessages, RetryOutcome, RotationHold } from '../rotation-hold.ts';
import { isValidTopicFilter, isValidTopicName } from '../topic-filter.ts';
import {
  publishProperties,
  type InboundMessage,
  type OutboundMessage,
  type SubscriptionRequest,
  type UpstreamConnector,
  type UpstreamLink,
} from '../upstream.ts';
import type { Authenticator } from './authenticate.ts';
import { strictUtf8Parser } from './strict-utf8-parser.ts';

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

/** MQTT reason codes used here (MQTT 5 §2.4); 3.1.1 CONNACK return codes beside them. */
const RC = {
  success: 0x00,
  unspecified: 0x80,
  notAuthorized: 0x87,
  topicFilterInvalid: 0x8f,
  badCredentials: 0x86,
  serverUnavailable: 0x88,
  badAuthMethod: 0x8c,
  packetTooLarge: 0x95,
  unsupportedVersion: 0x84,
  clientIdInvalid: 0x85,
  protocolError: 0x82,
} as const;
const V4_CONNACK = {
  badVersion: 1,
  idRejected: 2,
  unavailable: 3,
  badCredentials: 4,
  notAuthorized: 5,
} as const;

/** Longest MQTT string, so the longest client id (MQTT 3.1.1 §1.5.3, 5 §1.5.4). */
const MAX_CLIENT_ID_BYTES = 65_535;

/** Queue limit of packets received while the upstream session is being opened. */
const MAX_EARLY_PACKETS = 1000;

type State = 'new' | 'connecting' | 'open' | 'closed';

interface Awaiting {
  kind: 'puback' | 'pubrec' | 'pubcomp';
  readonly done: () => void;
  readonly timer: NodeJS.Timeout;
}

/** One downstream client. */
export class DownstreamConnection {
  #state: State = 'new';
  #version: 4 | 5 = 4;
  readonly #parser = strictUtf8Parser(4);
  readonly #early: Packet[] = [];
  /**
   * Messages the broker delivered while the session was being opened (a persistent session's
   * queued messages come right after the upstream CONNACK): delivered after the downstream
   * CONNACK, in order. Unacknowledged upstream until then, so the broker sends nothing more.
   */
  readonly #earlyInbound: Array<{ message: InboundMessage; done: () => void }> = [];
  #link: UpstreamLink | undefined;
  #identity: HeldIdentity | undefined;
  /** Messages waiting for their topic key (made at the first one). */
  #held: HeldMessages | undefined;
  /** The client id: the one the client gave, until one is assigned after authentication. */
  #clientId = '';
  /** The user name the client gave (never its password), for the log. */
  #username: string | undefined;
  #nextId = 1;
  readonly #awaiting = new Map<number, Awaiting>();
  /** QoS 2 PUBLISHes from the client: forwarding, or forwarded and PUBREC sent. */
  readonly #qos2In = new Map<number, 'forwarding' | 'received'>();
  #inflight = 0;
  #paused = false;
  #corked = false;
  #lastSeen = Date.now();
  #timer: NodeJS.Timeout | undefined;
  #closedListeners: Array<() => void> = [];

  constructor(
    private readonly socket: Socket,
    private readonly deps: ConnectionDeps,
    private readonly certCommonName: string | undefined,
  ) {
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
    return this.#clientId;
  }

  /** True once closed. */
  get closed(): boolean {
    return this.#state === 'closed';
  }

  #isClosed(): boolean {
    return this.#state === 'closed';
  }

  /** Runs `listener` when the connection closes. */
  onClosed(listener: () => void): void {
    if (this.#isClosed()) listener();
    else this.#closedListeners.push(listener);
  }

  /** Closes the connection (the upstream session with a DISCONNECT: no will). */
  close(): void {
    this.#close(true);
  }

  #onData(chunk: Buffer): void {
    if (this.#isClosed()) return;
    this.#lastSeen = Date.now();
    try {
      this.#parser.parse(chunk);
    } catch (err) {
      this.#reject('malformed', err instanceof Error ? err.message : 'unparseable');
      return;
    }
    if (this.#isClosed()) return;
    // The parser knows a packet's declared length once its fixed header is in: refuse it before
    // buffering the rest.
    const declared = (this.#parser as unknown as { packet: { length: number } }).packet.length;
    if (declared > this.deps.limits.maxPacketBytes) {
      if (this.#state === 'open' && this.#version === 5) {
        this.#send({ cmd: 'disconnect', reasonCode: RC.packetTooLarge });
      }
      this.#reject('packet-too-large', `declared ${declared} bytes`);
    }
  }

  #onParseError(err: Error): void {
    // MQTT 3.1.1 §3.1.2.2: a CONNECT of a protocol level the server does not support is answered
    // with CONNACK 0x01 (unacceptable protocol version), then closed. mqtt-packet refuses the
    // level while parsing (its message is the only sign), having read the level into its packet.
    if (this.#state === 'new' && err.message === 'Invalid protocol version') {
      const level = (this.#parser as unknown as { packet: { protocolVersion?: unknown } }).packet
        .protocolVersion;
      this.#send({ cmd: 'connack', returnCode: V4_CONNACK.badVersion, sessionPresent: false });
      this.#reject('unsupported-version', `protocol level ${String(level)}`);
      return;
    }
    this.#reject('malformed', err.message);
  }

  #onPacket(packet: Packet): void {
    if (this.#isClosed()) return;
    try {
      if (this.#state === 'new') {
        if (packet.cmd !== 'connect') {
          this.#reject('protocol', `first packet is ${packet.cmd}, not connect`);
          return;
        }
        void this.#onConnect(packet).catch((err: unknown) => {
          this.#reject('protocol', err instanceof Error ? err.message : 'connect failed');
        });
        return;
      }
      if (this.#state === 'connecting') {
        if (this.#early.length >= MAX_EARLY_PACKETS)
          this.#reject('protocol', 'flood before CONNACK');
        else this.#early.push(packet);
        return;
      }
      this.#handle(packet);
    } catch (err) {
      // Defensive: a bug must cost this connection, never the process.
      this.deps.logger.error(
        { err, clientId: this.#clientId },
        'downstream packet handling failed',
      );
      this.#reject('protocol', 'internal error');
    }
  }

  #handle(packet: Packet): void {
    switch (packet.cmd) {
      case 'publish':
        this.#onPublish(packet);
        return;
      case 'puback':
        this.#settle(packet.messageId, 'puback');
        return;
      case 'pubrec': {
        const id = packet.messageId ?? 0;
        const waiting = this.#awaiting.get(id);
        if (waiting?.kind === 'pubrec') {
          if ((packet.reasonCode ?? 0) >= 0x80) {
            this.#settle(id, 'pubrec');
            return;
          }
          waiting.kind = 'pubcomp';
          this.#send({ cmd: 'pubrel', messageId: id });
        }
        return;
      }
      case 'pubcomp':
        this.#settle(packet.messageId, 'pubcomp');
        return;
      case 'pubrel': {
        const id = packet.messageId ?? 0;
        this.#qos2In.delete(id);
        this.#send({ cmd: 'pubcomp', messageId: id });
        return;
      }
      case 'subscribe':
        this.#onSubscribe(packet);
        return;
      case 'unsubscribe':
        this.#onUnsubscribe(packet);
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

  async #onConnect(packet: IConnectPacket): Promise<void> {
    this.#state = 'connecting';
    // What the client claims, so that a refusal is logged with it.
    this.#clientId = packet.clientId;
    this.#username = packet.username;
    const version = packet.protocolVersion;
    if (version !== 4 && version !== 5) {
      this.#send({ cmd: 'connack', returnCode: V4_CONNACK.badVersion, sessionPresent: false });
      this.#reject('unsupported-version', `protocol version ${String(version)}`);
      return;
    }
    this.#version = version;
    // mqtt-packet parses later packets by the negotiated version.
    (
      this.#parser as unknown as { settings: { protocolVersion: number } }
    ).settings.protocolVersion = version;
    const refuse = (v4: number, v5: number, reason: RejectReason, detail: string): void => {
      this.#send(
        version === 5
          ? { cmd: 'connack', reasonCode: v5, sessionPresent: false }
          : { cmd: 'connack', returnCode: v4, sessionPresent: false },
      );
      this.#reject(reason, detail);
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
    const auth = await this.deps.authenticate({
      clientId: packet.clientId,
      username: packet.username,
      password: packet.password,
      certCommonName: this.certCommonName,
    });
    if (this.#isClosed()) return;
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
    this.#identity = auth.identity;
    const assigned = packet.clientId === '' ? `e4proxy-${randomBytes(6).toString('hex')}` : '';
    this.#clientId = assigned === '' ? packet.clientId : assigned;
    // Gateway mode: tied to what accepted the client, so a client accepted as someone else never
    // shares a device's session by claiming its client id.
    const tag = auth.sessionTag === undefined ? '' : `${auth.sessionTag}-`;
    const upstreamClientId = `${this.deps.clientIdPrefix}${tag}${this.#clientId}`;
    if (Buffer.byteLength(upstreamClientId) > MAX_CLIENT_ID_BYTES) {
      refuse(V4_CONNACK.idRejected, RC.clientIdInvalid, 'protocol', 'client id too long upstream');
      return;
    }
    if (upstreamClientId === this.deps.controlClientId) {
      refuse(
        V4_CONNACK.idRejected,
        RC.clientIdInvalid,
        'auth',
        'client id of the proxy control session',
      );
      return;
    }
    const will = this.#willOf(packet);
    const keepalive = packet.keepalive ?? 60;
    let opened: { link: UpstreamLink; sessionPresent: boolean };
    try {
      opened = await this.deps.upstream.connect(
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
            this.#onInbound(message, done);
          },
          onClose: () => {
            this.#link = undefined;
            this.#reject('upstream-unavailable', 'the broker closed the session');
          },
        },
      );
    } catch (err) {
      if (this.#isClosed()) return;
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
    if (this.#isClosed()) {
      opened.link.close(false);
      return;
    }
    this.#link = opened.link;
    this.#state = 'open';
    this.#send({
      cmd: 'connack',
      sessionPresent: opened.sessionPresent,
      ...(version === 5
        ? {
            reasonCode: RC.success,
            properties: {
              topicAliasMaximum: 0,
              maximumPacketSize: this.deps.limits.maxPacketBytes,
              ...(assigned === '' ? {} : { assignedClientIdentifier: assigned }),
            },
          }
        : { returnCode: 0 }),
    });
    clearTimeout(this.#timer);
    if (keepalive > 0) this.#watchKeepalive(keepalive);
    this.deps.logger.info(
      { clientId: this.#clientId, identity: auth.identity.name, version },
      'downstream client connected',
    );
    for (const held of this.#earlyInbound.splice(0)) {
      if (this.#isClosed()) break;
      this.#onInbound(held.message, held.done);
    }
    for (const early of this.#early.splice(0)) {
      if (this.#isClosed()) break;
      this.#handle(early);
    }
  }

  /** The will to register upstream: protected on a protected topic, dropped if it cannot be. */
  #willOf(packet: IConnectPacket): OutboundMessage | undefined {
    const will = packet.will;
    if (will === undefined) return undefined;
    const payload = typeof will.payload === 'string' ? Buffer.from(will.payload) : will.payload;
    const message = {
      topic: will.topic,
      payload,
      qos: will.qos ?? 0,
      retain: will.retain ?? false,
    };
    const out = this.#outbound(message);
    if (!('drop' in out)) return out;
    // Counted and logged like any dropped message: the will would never fire.
    this.#dropped('outbound', out.drop, will.topic);
    return undefined;
  }

  #watchKeepalive(seconds: number): void {
    const limitMs = seconds * 1500;
    this.#timer = setInterval(
      () => {
        if (Date.now() - this.#lastSeen > limitMs) this.#reject('timeout', 'keepalive expired');
      },
      Math.max(250, Math.floor(limitMs / 3)),
    );
    this.#timer.unref();
  }

  /**
   * Applies the policy to a message from the client: the message to publish upstream, or why it
   * is dropped.
   */
  #outbound(
    message: OutboundMessage,
  ): OutboundMessage | { readonly drop: DropReason; readonly code: number } {
    if (message.payload.length > this.deps.limits.maxPayloadBytes) {
      return { drop: 'oversized', code: RC.unspecified };
    }
    switch (this.deps.policy.classify(message.topic)) {
      case 'control':
        return { drop: 'control-topic', code: RC.notAuthorized };
      case 'drop':
        return { drop: 'unknown-topic', code: RC.notAuthorized };
      case 'forward':
        return message;
      case 'protect': {
        // An empty retained message deletes the retained message (MQTT): it carries no data.
        if (message.retain && message.payload.length === 0) return message;
        const identity = this.#identity;
        if (identity === undefined) return { drop: 'no-key', code: RC.unspecified };
        try {
          const sealed = identity.client.protectMessage(message.payload, message.topic);
          return {
            ...message,
            payload: Buffer.from(sealed.buffer, sealed.byteOffset, sealed.length),
          };
        } catch {
          return { drop: 'no-key', code: RC.unspecified };
        }
      }
    }
  }

  #onPublish(packet: IPublishPacket): void {
    const id = packet.messageId ?? 0;
    const qos = packet.qos;
    if (packet.properties?.topicAlias !== undefined) {
      this.#reject('protocol', 'topic alias (maximum is 0)');
      return;
    }
    if (!isValidTopicName(packet.topic)) {
      this.#reject('protocol', 'invalid topic name in PUBLISH');
      return;
    }
    if (qos === 2) {
      const seen = this.#qos2In.get(id);
      if (seen === 'received') this.#send({ cmd: 'pubrec', messageId: id });
      if (seen !== undefined) return;
    }
    const ack = (code: number): void => {
      if (qos === 0) return;
      if (qos === 2) this.#qos2In.set(id, 'received');
      this.#send({
        cmd: qos === 1 ? 'puback' : 'pubrec',
        messageId: id,
        ...(this.#version === 5 ? { reasonCode: code } : {}),
      });
    };
    const payload =
      typeof packet.payload === 'string' ? Buffer.from(packet.payload) : packet.payload;
    const properties = this.#version === 5 ? publishProperties(packet) : undefined;
    const out = this.#outbound({
      topic: packet.topic,
      payload,
      qos,
      retain: packet.retain,
      ...(properties === undefined ? {} : { properties }),
    });
    if ('drop' in out) {
      this.#dropped('outbound', out.drop, packet.topic);
      ack(out.code);
      return;
    }
    const link = this.#link;
    if (link === undefined) return;
    if (qos === 2) this.#qos2In.set(id, 'forwarding');
    const wasProtected = out.payload !== payload;
    this.#inflight++;
    if (this.#inflight >= this.deps.limits.maxInflight && !this.#paused) {
      this.#paused = true;
      this.socket.pause();
    }
    link.publish(out, (err) => {
      this.#inflight--;
      if (this.#paused && this.#inflight <= this.deps.limits.maxInflight / 2) {
        this.#paused = false;
        this.socket.resume();
      }
      if (this.#isClosed()) return;
      if (err !== undefined) {
        this.#dropped('outbound', 'upstream-error', packet.topic);
        // Not acknowledged: the client resends it on its next connection.
        if (qos > 0) this.#reject('upstream-unavailable', err.message);
        return;
      }
      if (wasProtected) this.deps.metrics.protected.inc();
      else this.deps.metrics.forwarded.inc({ direction: 'outbound' });
      ack(RC.success);
    });
  }

  #onSubscribe(packet: ISubscribePacket): void {
    const granted: number[] = packet.subscriptions.map((s) =>
      isValidTopicFilter(s.topic) ? -1 : this.#version === 5 ? RC.topicFilterInvalid : 0x80,
    );
    const valid: SubscriptionRequest[] = packet.subscriptions
      .filter((_s, i) => granted[i] === -1)
      .map((s) => ({
        topic: s.topic,
        qos: s.qos,
        ...(s.nl === undefined ? {} : { nl: s.nl }),
        ...(s.rap === undefined ? {} : { rap: s.rap }),
        ...(s.rh === undefined ? {} : { rh: s.rh }),
      }));
    const answer = (upstreamGranted: readonly number[]): void => {
      let next = 0;
      const codes = granted.map((g) => (g === -1 ? (upstreamGranted[next++] ?? 0x80) : g));
      this.#send({ cmd: 'suback', messageId: packet.messageId ?? 0, granted: codes });
    };
    const link = this.#link;
    if (valid.length === 0 || link === undefined) {
      answer([]);
      return;
    }
    link.subscribe(valid, answer);
  }

  #onUnsubscribe(packet: IUnsubscribePacket): void {
    const answer = (): void => {
      this.#send({
        cmd: 'unsuback',
        messageId: packet.messageId ?? 0,
        granted: packet.unsubscriptions.map(() => 0),
      });
    };
    const link = this.#link;
    const valid = packet.unsubscriptions.filter(isValidTopicFilter);
    if (link === undefined || valid.length === 0) answer();
    else link.unsubscribe(valid, answer);
  }

  /** A message from the broker: policy, unprotect, deliver; `done` acknowledges it upstream. */
  #onInbound(message: InboundMessage, done: () => void): void {
    if (this.#state === 'connecting') {
      // Handled once the client has its CONNACK; `done` waits, and so does the broker.
      this.#earlyInbound.push({ message, done });
      return;
    }
    // Closed: left unacknowledged, so the broker keeps it for the client's next session.
    if (this.#state !== 'open') return;
    const action = this.deps.policy.classify(message.topic);
    if (action === 'control' || action === 'drop') {
      this.#dropped(
        'inbound',
        action === 'control' ? 'control-topic' : 'unknown-topic',
        message.topic,
      );
      done();
      return;
    }
    if (action === 'forward') {
      this.deps.metrics.forwarded.inc({ direction: 'inbound' });
      this.#deliver(message, message.payload, done);
      return;
    }
    const opened = this.#unprotect(message);
    if ('drop' in opened) {
      // Protected under a key this proxy does not hold yet (a rotation in flight, a topic's
      // first key, a new sender's public key): held for that key rather than dropped.
      // Acknowledged upstream now: the broker hands over the next message only then (see
      // rotation-hold.ts).
      if (opened.waitFor !== undefined && this.#holdForKey(message)) {
        done();
        return;
      }
      this.#dropped(
        'inbound',
        opened.drop,
        message.topic,
        opened.waitFor === undefined ? '' : 'hold full',
      );
      done();
      return;
    }
    this.deps.metrics.unprotected.inc();
    this.#deliver(message, opened.payload, done);
  }

  /**
   * Unprotects a message on a protected topic: its payload, or why it is dropped and which key
   * may still be on its way (`waitFor`).
   */
  #unprotect(
    message: InboundMessage,
  ):
    | { readonly payload: Buffer }
    | { readonly drop: DropReason; readonly waitFor: AwaitedKey | undefined } {
    try {
      const opened = (this.#identity as HeldIdentity).client.unprotectMessage(
        message.payload,
        message.topic,
      );
      return { payload: Buffer.from(opened.buffer, opened.byteOffset, opened.length) };
    } catch (err) {
      return {
        drop: unprotectDropReason(err, message.payload, this.deps.now()),
        waitFor: awaitedKey(err),
      };
    }
  }

  /**
   * Why a held message is dropped now, and which key it waited for (it may have moved on: a
   * message held for its topic key may wait for its sender's public key once that came).
   */
  #heldDrop(message: InboundMessage): { reason: DropReason; detail: string } {
    const opened = this.#unprotect(message);
    // Authentic now (a key came that no retry ran for: never expected): lost all the same, as
    // the hold's contract says.
    const [reason, waitFor] =
      'drop' in opened ? [opened.drop, opened.waitFor] : (['not-authentic', 'topic'] as const);
    return {
      reason,
      detail: `${waitFor === 'sender' ? "its sender's public key" : 'its topic key'} did not arrive`,
    };
  }

  #holdForKey(message: InboundMessage): boolean {
    this.#held ??= this.deps.hold.connection(
      (this.#identity as HeldIdentity).name,
      (expired) => {
        const { reason, detail } = this.#heldDrop(expired);
        this.#dropped(
          'inbound',
          reason,
          expired.topic,
          `held ${this.deps.hold.limits.ms} ms, ${detail}`,
        );
      },
      (topic) => {
        this.#retryHeld(topic);
      },
    );
    const held = this.#held.hold(message);
    if (held) {
      this.deps.logger.debug(
        { clientId: this.#clientId, identity: this.#identity?.name, topic: message.topic },
        'message held for its key',
      );
    }
    return held;
  }

  /**
   * A key that held messages of `topic` may wait for arrived (its SetTopicKey, or a sender's
   * SetPubKey): delivers those that are now authentic.
   */
  #retryHeld(topic: string): void {
    let delivered = 0;
    this.#held?.retry(topic, (message): RetryOutcome => {
      if (this.#state !== 'open') return 'keep';
      const opened = this.#unprotect(message);
      if ('drop' in opened) {
        if (opened.waitFor !== undefined) return 'keep';
        this.#dropped('inbound', opened.drop, topic, 'held for its key');
        return 'dropped';
      }
      this.deps.metrics.unprotected.inc();
      // Acknowledged upstream when it was held: nothing more to acknowledge.
      this.#deliver(message, opened.payload, () => undefined);
      delivered++;
      return 'delivered';
    });
    if (delivered > 0) {
      this.deps.logger.info(
        { clientId: this.#clientId, identity: this.#identity?.name, topic, delivered },
        'held messages delivered: their key arrived',
      );
    }
  }

  /** Sends a message to the client; `done` runs once the client acknowledged it. */
  #deliver(message: InboundMessage, payload: Buffer, done: () => void): void {
    const base = {
      cmd: 'publish' as const,
      topic: message.topic,
      payload,
      retain: message.retain,
      dup: false,
      ...(this.#version === 5 && message.properties !== undefined
        ? { properties: message.properties }
        : {}),
    };
    if (message.qos === 0) {
      this.#send({ ...base, qos: 0 });
      done();
      return;
    }
    const id = this.#allocateId();
    if (id === undefined) {
      this.#reject('protocol', 'no free packet identifier');
      return;
    }
    const timer = setTimeout(() => {
      this.#reject('timeout', `no acknowledgement of message ${id}`);
    }, this.deps.limits.ackTimeoutMs);
    this.#awaiting.set(id, { kind: message.qos === 1 ? 'puback' : 'pubrec', done, timer });
    this.#send({ ...base, qos: message.qos, messageId: id });
  }

  #allocateId(): number | undefined {
    for (let i = 0; i < 65_535; i++) {
      const id = this.#nextId;
      this.#nextId = id >= 65_535 ? 1 : id + 1;
      if (!this.#awaiting.has(id)) return id;
    }
    return undefined;
  }

  #settle(messageId: number | undefined, kind: Awaiting['kind']): void {
    const id = messageId ?? 0;
    const waiting = this.#awaiting.get(id);
    if (waiting === undefined || waiting.kind !== kind) return;
    clearTimeout(waiting.timer);
    this.#awaiting.delete(id);
    waiting.done();
  }

  /** Counts and logs a dropped message; `detail` says more (the rotation hold's part). */
  #dropped(
    direction: 'inbound' | 'outbound',
    reason: DropReason,
    topic: string,
    detail = '',
  ): void {
    this.deps.metrics.drop(direction, reason);
    this.deps.logger.warn(
      {
        clientId: this.#clientId,
        identity: this.#identity?.name,
        direction,
        reason,
        topic: topic.length > 256 ? `${topic.slice(0, 256)}...` : topic,
        ...(detail === '' ? {} : { detail }),
      },
      'message dropped',
    );
  }

  #send(packet: Packet): void {
    if (this.#state === 'closed' || this.socket.destroyed) return;
    let bytes: Buffer;
    try {
      bytes = mqttPacket.generate(packet, { protocolVersion: this.#version });
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

  #reject(reason: RejectReason, detail: string): void {
    if (this.#isClosed()) return;
    this.deps.metrics.rejected.inc({ reason });
    this.deps.logger.warn(
      {
        clientId: this.#clientId,
        username: this.#username,
        identity: this.#identity?.name,
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
    if (this.#isClosed()) return;
    this.#state = 'closed';
    clearTimeout(this.#timer);
    clearInterval(this.#timer);
    for (const waiting of this.#awaiting.values()) clearTimeout(waiting.timer);
    this.#awaiting.clear();
    this.#earlyInbound.length = 0;
    // Held messages were acknowledged upstream: they end with the connection (one log line).
    const discarded: Partial<Record<DropReason, number>> = {};
    for (const message of this.#held?.close() ?? []) {
      const { reason } = this.#heldDrop(message);
      this.deps.metrics.drop('inbound', reason);
      discarded[reason] = (discarded[reason] ?? 0) + 1;
    }
    if (Object.keys(discarded).length > 0) {
      this.deps.logger.warn(
        { clientId: this.#clientId, identity: this.#identity?.name, discarded },
        'held messages dropped: the connection closed before their key arrived',
      );
    }
    this.#link?.close(graceful);
    this.#link = undefined;
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
