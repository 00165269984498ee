/**
 * A protection proxy assembled from its configuration: local key, identities and their
 * encrypted stores, the control connection, the downstream listener, the status endpoint, and
 * (trust on first use) the registration of new identities with the C2.
 */
import { readCaFile, type ProxyConfig } from './config.ts';
import { settleControlClientId } from './control-client-id.ts';
import { ControlChannel } from './control-channel.ts';
import { recordSubscribedIdentities, subscribedIdentities } from './control-subscriptions.ts';
import {
  gatewayAuthenticator,
  localAuthenticator,
  type Authenticator,
} from './downstream/authenticate.ts';
import { markControlSession, pendingRotations, setPendingRotations } from './deferred-rotations.ts';
import { DEFAULT_TIMING } from './downstream/deps.ts';
import { DownstreamListener } from './downstream/listener.ts';
import { ProxyError, ProxyErrorCode } from './errors.ts';
import { KeyRing } from './key-ring.ts';
import { loadOrCreateLocalKey } from './local-key.ts';
import { refuseLostStores } from './lost-stores.ts';
import { silentLogger, type ProxyLogger } from './logger.ts';
import { ProxyMetrics } from './metrics.ts';
import { TopicPolicy } from './policy.ts';
import { C2Registrar, C2UnreachableError, newIdentityKeys } from './registration.ts';
import { RotationHold } from './rotation-hold.ts';
import { StateDirLock } from './state-dir-lock.ts';
import { StatusServer, type ProxyStatus } from './status-server.ts';
import { MqttUpstreamConnector, type BrokerSettings, type UpstreamConnector } from './upstream.ts';

/** Options beside the configuration. */
export interface ProxyStartOptions {
  readonly logger?: ProxyLogger;
  /** Replaces the mqtt.js upstream (tests). */
  readonly upstream?: UpstreamConnector;
  /** Acknowledgement timeout of downstream clients (default 30 s). */
  readonly ackTimeoutMs?: number;
  /**
   * Abandons the start (a stop requested during start-up): what was started is stopped and
   * `start` rejects.
   */
  readonly signal?: AbortSignal;
  /** `--new-local-key`: start over after a lost local key (see local-key.ts). */
  readonly newLocalKey?: boolean;
}

function hostPort(a: { host: string; port: number }): string {
  return a.host.includes(':') ? `[${a.host}]:${a.port}` : `${a.host}:${a.port}`;
}

/** A running proxy. */
export class ProtectionProxy {
  #closed = false;
  /**
   * The resync requests in progress: one at a time, since each rewrites the list of subscribed
   * identities (a session lost while the start resyncs would race it).
   */
  #recovery: Promise<void> = Promise.resolve();

  private constructor(
    readonly config: ProxyConfig,
    readonly ring: KeyRing,
    readonly metrics: ProxyMetrics,
    private readonly control: ControlChannel,
    private readonly listener: DownstreamListener,
    private readonly statusServer: StatusServer,
    private readonly logger: ProxyLogger,
    private readonly lock: StateDirLock,
  ) {}

  /**
   * Starts a proxy; whatever was started is stopped again when a later step fails.
   * @throws ProxyError `PROXY_STATE_IN_USE` (another proxy runs on the state directory: nothing
   *   was touched), `PROXY_KEY_STORE`, `PROXY_UPSTREAM`, `PROXY_REGISTRATION`; listen errors
   */
  static async start(
    configured: ProxyConfig,
    options: ProxyStartOptions = {},
  ): Promise<ProtectionProxy> {
    const logger = options.logger ?? silentLogger;
    // Before the stores and the broker: a second proxy on this state directory would take the
    // running one's control session (same client id) and its commands.
    const lock = await StateDirLock.acquire(configured.stateDir, logger);
    try {
      return await ProtectionProxy.#start(configured, options, logger, lock);
    } catch (err) {
      await lock.release();
      throw err;
    }
  }

  static async #start(
    configured: ProxyConfig,
    options: ProxyStartOptions,
    logger: ProxyLogger,
    lock: StateDirLock,
  ): Promise<ProtectionProxy> {
    const { signal } = options;
    const localKey = await loadOrCreateLocalKey(configured.localKeyFile, {
      stateDir: configured.stateDir,
      startOver: options.newLocalKey === true,
    });
    // Trust on first use registers the new key of such an identity and has it resynced.
    if (!configured.c2.tofu) await refuseLostStores(configured.stateDir, configured.identities);
    const ring = await KeyRing.open(
      configured.stateDir,
      localKey,
      configured.identities,
      newIdentityKeys(configured, signal),
    );
    const config: ProxyConfig = {
      ...configured,
      upstream: {
        ...configured.upstream,
        controlClientId: await settleControlClientId(
          configured.stateDir,
          configured.upstream,
          logger,
        ),
      },
    };
    const metrics = new ProxyMetrics();
    const hold = new RotationHold(config.policy.rotationHold, metrics);
    const broker: BrokerSettings = {
      url: config.upstream.url,
      username: config.upstream.username,
      password: config.upstream.password,
      ca:
        config.upstream.caFile === undefined
          ? undefined
          : readCaFile('upstream.caFile', config.upstream.caFile),
    };
    const cleanups: Array<() => Promise<void>> = [];
    // `ready` once the start checks `control.freshSession`: a session lost before that is
    // recovered by the start, one lost later by the control channel's callback.
    const holder: { proxy?: ProtectionProxy; ready?: boolean } = {};
    try {
      const control = await ControlChannel.start({
        broker,
        clientId: config.upstream.controlClientId,
        ring,
        metrics,
        logger,
        ...(signal === undefined ? {} : { signal }),
        onTopicKey: (identity, topicHash) => {
          hold.keyArrived(identity, topicHash);
        },
        onPubKey: (identity) => {
          hold.pubKeyArrived(identity);
        },
        onFreshSession: () => {
          const proxy = holder.proxy;
          if (holder.ready !== true || proxy === undefined || proxy.#closed) return;
          proxy.#recoverLostCommands(new Set(), true).catch((err: unknown) => {
            logger.error(
              { err: err instanceof Error ? err.message : String(err) },
              'new control session: resync failed; resync the identities at the C2',
            );
          });
        },
      });
      cleanups.push(() => control.close());
      signal?.throwIfAborted();
      await markControlSession(config.stateDir);
      let authenticate: Authenticator;
      if (config.mode === 'local') {
        const only = ring.all()[0];
        if (only === undefined) throw new ProxyError(ProxyErrorCode.Config, 'no identity');
        authenticate = localAuthenticator(only);
      } else {
        authenticate = gatewayAuthenticator(config.devices, ring, config.gatewayIdentity);
      }
      const listener = await DownstreamListener.start(
        config.listen.host,
        config.listen.port,
        config.listen.tls,
        {
          authenticate,
          policy: new TopicPolicy(config.policy.protect, config.policy.otherTopics),
          metrics,
          logger,
          upstream: options.upstream ?? new MqttUpstreamConnector(broker),
          limits: {
            maxPayloadBytes: config.policy.maxPayloadBytes,
            maxPacketBytes: config.policy.maxPacketBytes,
            ...DEFAULT_TIMING,
            ...(options.ackTimeoutMs === undefined ? {} : { ackTimeoutMs: options.ackTimeoutMs }),
          },
          clientIdPrefix: config.upstream.clientIdPrefix,
          controlClientId: config.upstream.controlClientId,
          now: Date.now,
          hold,
        },
      );
      cleanups.push(() => listener.close());
      const statusServer = await StatusServer.start(
        config.health.host,
        config.health.port,
        () => holder.proxy?.status() ?? starting(config),
        metrics,
      );
      cleanups.push(() => statusServer.close());
      const proxy = new ProtectionProxy(
        config,
        ring,
        metrics,
        control,
        listener,
        statusServer,
        logger,
        lock,
      );
      holder.proxy = proxy;
      signal?.throwIfAborted();
      // The C2 calls of the start end at once when it is abandoned (signal).
      const registered = config.c2.tofu ? await proxy.#trustOnFirstUse(signal) : new Set<string>();
      holder.ready = true;
      await proxy.#recoverLostCommands(registered, control.freshSession, signal);
      await proxy.#rotateDeferred(signal);
      signal?.throwIfAborted();
      logger.info(
        {
          mode: config.mode,
          listen: hostPort(listener.address),
          health: hostPort(statusServer.address),
          upstream: config.upstream.url,
          identities: ring.all().map((i) => i.name),
        },
        'protection proxy started',
      );
      return proxy;
    } catch (err) {
      for (const cleanup of cleanups.reverse()) await cleanup().catch(() => undefined);
      throw err;
    }
  }

  /**
   * Registers the identities the C2 does not know (created by this start, or by an earlier one
   * whose registration failed) and, in symmetric mode, has the C2 rotate their keys at once (the
   * locally drawn key then served only to receive that command). An identity the C2 knows but
   * this start created (its store lost) is registered with its new key and resynced. A public-key identity's private
   * key never leaves the proxy: registering its public key is all. A stored identity whose
   * registration cannot be checked because the C2 is unreachable is left as it is (warned); a new
   * one cannot do without the C2.
   * @param signal - abandons it (between identities, and any C2 call in flight)
   * @returns the names registered now
   */
  async #trustOnFirstUse(signal?: AbortSignal): Promise<Set<string>> {
    const registered = new Set<string>();
    const url = this.config.c2.url;
    if (url === undefined) return registered;
    const registrar = C2Registrar.of({ ...this.config.c2, url }, signal);
    const rotate = this.config.c2.mode === 'symmetric';
    for (const identity of this.ring.all()) {
      signal?.throwIfAborted();
      // Also an identity made by an earlier start whose registration failed (C2 unreachable):
      // its store exists, but the C2 never heard of it.
      let known: boolean;
      try {
        known = await registrar.isRegistered(identity.name);
      } catch (err) {
        // Its stored keys serve as they are; only an identity without any needs the C2 now.
        if (!(err instanceof C2UnreachableError) || identity.created) throw err;
        this.logger.warn(
          { identity: identity.name, err: err.message },
          'trust on first use: the C2 cannot be reached to check the registration; the identity is used as stored and checked again at the next start',
        );
        continue;
      }
      if (known && !identity.created) continue;
      await registrar.register(identity);
      registered.add(identity.name);
      if (known) {
        // A store lost (or a state directory replaced): the C2 takes the new key. A C2 of this
        // release then sends the identity everything again by itself; one of an earlier release
        // (or an old API node during a rolling upgrade) only records the key and holds the
        // topics delivered. The resync covers both, at the cost of one more send on a new C2.
        this.logger.warn(
          { identity: identity.name },
          'trust on first use: the C2 knows this identity but its key store was not found: registered with a new key, resync requested',
        );
        await registrar.resync(identity.name);
      }
      if (rotate) await registrar.rotateClient(identity.name);
      this.logger.info(
        { identity: identity.name },
        rotate
          ? 'registered (trust on first use), rotation requested'
          : 'registered (trust on first use)',
      );
    }
    return registered;
  }

  /**
   * Has the C2 send again what the broker dropped because no session of ours was subscribed to
   * an identity's control topic: every identity's when the session is new (`freshSession`: first
   * start, or a broker that lost it), else those of identities not recorded as subscribed (added
   * to the configuration since the last start; see control-subscriptions.ts). An identity
   * registered just now needs nothing. Identities whose resync was asked for (or, without
   * `c2.url`, that were warned about) are recorded; one whose request failed is asked for again
   * at the next start.
   * @param signal - abandons it (during the start)
   */
  #recoverLostCommands(
    registeredNow: ReadonlySet<string>,
    freshSession: boolean,
    signal?: AbortSignal,
  ): Promise<void> {
    const run = this.#recovery.then(() =>
      this.#resyncUnsubscribed(registeredNow, freshSession, signal),
    );
    this.#recovery = run.catch(() => undefined);
    return run;
  }

  async #resyncUnsubscribed(
    registeredNow: ReadonlySet<string>,
    freshSession: boolean,
    signal?: AbortSignal,
  ): Promise<void> {
    const stateDir = this.config.stateDir;
    const before = freshSession ? new Set<string>() : await subscribedIdentities(stateDir);
    const done = new Set<string>();
    const identities = [];
    for (const identity of this.ring.all()) {
      if (before.has(identity.name) || registeredNow.has(identity.name)) done.add(identity.name);
      else identities.push(identity);
    }
    const why = freshSession
      ? 'new control session'
      : 'control topic not subscribed before (identity added since the last start)';
    const url = this.config.c2.url;
    if (identities.length > 0 && url === undefined) {
      this.logger.warn(
        { identities: identities.map((i) => i.name) },
        `${why}: commands sent before it may be lost; set c2.url to have them sent again, or resync the identities at the C2`,
      );
      // Said once: the next start does not repeat it.
      for (const identity of identities) done.add(identity.name);
    } else if (identities.length > 0 && url !== undefined) {
      const registrar = C2Registrar.of({ ...this.config.c2, url }, signal);
      for (const identity of identities) {
        try {
          await registrar.resync(identity.name);
          done.add(identity.name);
          this.logger.info({ identity: identity.name }, `${why}: resync requested`);
        } catch (err) {
          signal?.throwIfAborted();
          this.logger.warn(
            { identity: identity.name, err: err instanceof Error ? err.message : String(err) },
            `${why}: resync request failed; asked again at the next start, or resync the identity at the C2`,
          );
        }
      }
    }
    // Only current identities: one removed from the configuration keeps its subscription at the
    // broker, but its commands are acknowledged and ignored, so if it comes back it needs a resync.
    await recordSubscribedIdentities(stateDir, done);
  }

  /**
   * Asks the C2 for the identity rotations `register --rotate` deferred to this first start, now
   * that the control topics are subscribed and the new keys can reach the proxy. A request that
   * fails stays pending for the next start (and is logged), as do those not asked for when the
   * start is abandoned (`signal`).
   */
  async #rotateDeferred(signal?: AbortSignal): Promise<void> {
    const pending = await pendingRotations(this.config.stateDir);
    if (pending.length === 0) return;
    const url = this.config.c2.url;
    if (url === undefined) {
      this.logger.warn({ identities: pending }, 'deferred rotations need c2.url; left pending');
      return;
    }
    const registrar = C2Registrar.of({ ...this.config.c2, url }, signal);
    const left: string[] = [];
    for (const [i, name] of pending.entries()) {
      if (signal?.aborted === true) {
        // Abandoned: what was not asked for stays pending (a request in flight too: asking twice
        // only rotates twice).
        await setPendingRotations(this.config.stateDir, [...left, ...pending.slice(i)]);
        signal.throwIfAborted();
      }
      try {
        await registrar.rotateClient(name);
        this.logger.info({ identity: name }, 'deferred rotation requested');
      } catch (err) {
        left.push(name);
        if (signal?.aborted === true) continue;
        this.logger.warn(
          { identity: name, err: err instanceof Error ? err.message : String(err) },
          'deferred rotation request failed; it is made again at the next start',
        );
      }
    }
    await setPendingRotations(this.config.stateDir, left);
  }

  /** Where downstream clients connect. */
  get listenAddress(): { host: string; port: number } {
    return this.listener.address;
  }

  /** Where `/healthz` and `/metrics` are served. */
  get statusAddress(): { host: string; port: number } {
    return this.statusServer.address;
  }

  /** The current status. */
  status(): ProxyStatus {
    const upstreamConnected = this.control.connected;
    return {
      status: upstreamConnected && !this.#closed ? 'ok' : 'degraded',
      mode: this.config.mode,
      upstreamConnected,
      identities: this.ring.all().length,
      downstreamConnections: this.listener.connections,
      listen: hostPort(this.listener.address),
    };
  }

  /** Stops everything; idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    try {
      await this.listener.close();
      await this.control.close();
      await this.statusServer.close();
    } finally {
      // Last: the state directory is free once nothing of this proxy runs.
      await this.lock.release();
    }
    this.logger.info({}, 'protection proxy stopped');
  }
}

function starting(config: ProxyConfig): ProxyStatus {
  return {
    status: 'degraded',
    mode: config.mode,
    upstreamConnected: false,
    identities: config.identities.length,
    downstreamConnections: 0,
    listen: '',
  };
}
