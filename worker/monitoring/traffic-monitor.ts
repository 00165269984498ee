/**
 * The traffic monitor: subscribes to every protected topic (through a shared subscription, so
 * in a cluster each message is looked at by one process), classifies each message
 * ({@link classifyMessage}) and stores counters in batches. It learns which key versions devices
 * really use — per device in public-key mode, where messages are signed — and counts plaintext,
 * forged and stale traffic. It never stores or logs a payload.
 *
 * Best effort by design: a monitor that falls behind drops messages (counted) rather than
 * buffering without bound or slowing the node; it is never on the path of key delivery.
 */
import type { KeyObject } from 'node:crypto';
import { ed25519PublicKeyObject, AesSivKey, ID_LEN, TIMESTAMP_LEN, toHex } from '../../e4/index.ts';
import type { DeviceKeyUse, TrafficCount } from '../../cluster/storage/index.ts';
import { classifyMessage, type TrafficClass } from './traffic-classifier.ts';

/** What the monitor needs from the C2 (a `C2Service` fits). */
export interface TrafficSource {
  readonly mode: 'symkey' | 'pubkey';
  listTopics(
    cursor: string,
    limit: number,
  ): Promise<{ items: ReadonlyArray<{ name: string }>; nextCursor?: string | null | undefined }>;
  monitoringKeys(
    topic: string,
    versions: number,
  ): Promise<
    | {
        topicId: string;
        keys: ReadonlyArray<{ version: number; key: Uint8Array }>;
      }
    | undefined
  >;
  recordTraffic(counts: readonly TrafficCount[], uses: readonly DeviceKeyUse[]): Promise<void>;
  devicePublicKey(e4Id: Uint8Array): Promise<Uint8Array | undefined>;
}

/** The MQTT side: topic subscriptions and the messages they bring. */
export interface TrafficFeed {
  subscribe(topics: readonly string[]): Promise<void>;
  unsubscribe(topics: readonly string[]): Promise<void>;
  onMessage(handler: (topic: string, payload: Uint8Array) => void): void;
  close(): Promise<void>;
}

/** Options of {@link TrafficMonitor}. */
export interface TrafficMonitorOptions {
  readonly source: TrafficSource;
  readonly feed: TrafficFeed;
  readonly now?: () => number;
  /** How often the topic list is re-read (subscriptions follow it). Default 30 s. */
  readonly refreshMs?: number;
  /** How often counters are written. Default 5 s. */
  readonly flushMs?: number;
  /**
   * How long a topic's keys are cached. Default 5 s. A message that no cached key authenticates
   * makes the monitor re-read the keys at once (a rotation since), so this bounds only how long
   * messages under the replaced key still count as `current`.
   */
  readonly keyTtlMs?: number;
  /**
   * After a re-read for an unauthenticated message found no new key (real forgeries), no other
   * such re-read of that topic (public-key mode: of that signer) for this long: a flood of
   * forgeries costs at most one key read per topic and signer per interval. Also how long a
   * signer the C2 does not know is remembered as unknown (a device added since is recognised
   * after at most this long). Default 1 s.
   */
  readonly keyReloadMs?: number;
  /** Key versions tried per topic, newest first. Default 3. */
  readonly versions?: number;
  /** Messages waiting beyond this are dropped and counted. Default 10,000. */
  readonly maxQueued?: number;
  /**
   * Payload bytes waiting beyond this are dropped and counted: the count cap alone lets 10,000
   * messages of the broker's maximum size (256 MB in MQTT) pile up. Default 64 MiB.
   */
  readonly maxQueuedBytes?: number;
  /** Most topics monitored (subscriptions). Default 100,000. */
  readonly maxTopics?: number;
  /** Observes each verdict (metrics, tests). */
  readonly onClassified?: (verdict: TrafficClass) => void;
  /** Observes each message dropped, by the cap its queue was at (metrics, tests). */
  readonly onDropped?: (reason: MonitorDropReason) => void;
  readonly onError: (err: unknown, context: string) => void;
}

interface CachedKeys {
  /** Undefined: the topic is unknown (removed); cached too, so its traffic costs no reads. */
  readonly found:
    | {
        readonly topicId: string;
        /** Newest first. */
        readonly keys: ReadonlyArray<{ version: number; key: AesSivKey }>;
      }
    | undefined;
  /** When the read started: a key created later may be missing. */
  readonly loadedAt: number;
}

/**
 * Why a message was dropped: the cap its queue was at, named after its setting
 * ({@link TrafficMonitorOptions.maxQueued}, {@link TrafficMonitorOptions.maxQueuedBytes}).
 */
export type MonitorDropReason = 'max_queued' | 'max_queued_bytes';

/** Default of {@link TrafficMonitorOptions.maxQueuedBytes}. */
const DEFAULT_MAX_QUEUED_BYTES = 64 * 1024 * 1024;

/** MQTT wildcards cannot be part of a topic name the monitor subscribes to literally. */
const WILDCARD = /[+#]/;

/** The newest key version read (0: none). */
function newest(found: { readonly keys: ReadonlyArray<{ version: number }> }): number {
  return found.keys[0]?.version ?? 0;
}

/** Classifies traffic on every protected topic and stores the counts. */
export class TrafficMonitor {
  readonly #o: Required<
    Omit<
      TrafficMonitorOptions,
      'onClassified' | 'onDropped' | 'source' | 'feed' | 'onError' | 'now'
    >
  >;
  readonly #now: () => number;
  readonly #subscribed = new Set<string>();
  readonly #keys = new Map<string, Promise<CachedKeys>>();
  /** Per topic: no re-read for an unauthenticated message before this time. */
  readonly #reloadQuietUntil = new Map<string, number>();
  /** Signers' public keys (undefined: unknown to the C2) and when each was read. */
  readonly #pubKeys = new Map<string, { key: KeyObject | undefined; at: number }>();
  /** Per signer: no re-read for a message its cached key does not verify before this time. */
  readonly #signerQuietUntil = new Map<string, number>();
  readonly #counts = new Map<string, TrafficCount>();
  readonly #uses = new Map<string, DeviceKeyUse>();
  readonly #queue: Array<{ topic: string; payload: Uint8Array; at: number }> = [];
  /** Payload bytes in {@link #queue}. */
  #queuedBytes = 0;
  #draining = false;
  #timers: NodeJS.Timeout[] = [];
  #closed = false;

  constructor(private readonly options: TrafficMonitorOptions) {
    this.#o = {
      refreshMs: options.refreshMs ?? 30_000,
      flushMs: options.flushMs ?? 5000,
      keyTtlMs: options.keyTtlMs ?? 5000,
      keyReloadMs: options.keyReloadMs ?? 1000,
      versions: options.versions ?? 3,
      maxQueued: options.maxQueued ?? 10_000,
      maxQueuedBytes: options.maxQueuedBytes ?? DEFAULT_MAX_QUEUED_BYTES,
      maxTopics: options.maxTopics ?? 100_000,
    };
    this.#now = options.now ?? Date.now;
  }

  /** Subscribes to the current topics and starts the refresh and flush timers. */
  async start(): Promise<void> {
    this.options.feed.onMessage((topic, payload) => {
      this.#enqueue(topic, payload);
    });
    await this.refresh();
    const every = (ms: number, run: () => Promise<void>, context: string): void => {
      const timer = setInterval(() => {
        run().catch((err: unknown) => {
          this.options.onError(err, context);
        });
      }, ms);
      timer.unref();
      this.#timers.push(timer);
    };
    every(this.#o.refreshMs, () => this.refresh(), 'traffic monitor topic refresh');
    every(this.#o.flushMs, () => this.flush(), 'traffic monitor flush');
  }

  /** Re-reads the topic list: subscribes to new topics, unsubscribes from removed ones. */
  async refresh(): Promise<void> {
    const names = new Set<string>();
    let cursor = '';
    // Bounded: enough pages for maxTopics, whatever the cursor does. A limit of 0 asks for the
    // deployment's default page size, which its configured maximum always allows.
    for (let pages = 0; pages <= this.#o.maxTopics; pages++) {
      const page = await this.options.source.listTopics(cursor, 0);
      for (const { name } of page.items)
        if (!WILDCARD.test(name) && names.size < this.#o.maxTopics) names.add(name);
      if (page.nextCursor === undefined || page.nextCursor === null || page.nextCursor === '')
        break;
      cursor = page.nextCursor;
    }
    const added = [...names].filter((n) => !this.#subscribed.has(n));
    const removed = [...this.#subscribed].filter((n) => !names.has(n));
    for (let i = 0; i < added.length; i += 500) {
      const batch = added.slice(i, i + 500);
      await this.options.feed.subscribe(batch);
      for (const n of batch) this.#subscribed.add(n);
    }
    if (removed.length > 0) {
      await this.options.feed.unsubscribe(removed);
      for (const n of removed) {
        this.#subscribed.delete(n);
        this.#keys.delete(n);
        this.#reloadQuietUntil.delete(n);
      }
    }
  }

  /** Topics subscribed to now. */
  get topics(): number {
    return this.#subscribed.size;
  }

  #enqueue(topic: string, payload: Uint8Array): void {
    if (this.#closed) return;
    const full =
      this.#queue.length >= this.#o.maxQueued
        ? 'max_queued'
        : this.#queuedBytes + payload.length > this.#o.maxQueuedBytes
          ? 'max_queued_bytes'
          : undefined;
    if (full !== undefined) {
      this.options.onDropped?.(full);
      return;
    }
    this.#queue.push({ topic, payload, at: this.#now() });
    this.#queuedBytes += payload.length;
    if (!this.#draining) void this.#drain();
  }

  async #drain(): Promise<void> {
    this.#draining = true;
    try {
      for (let item = this.#queue.shift(); item !== undefined; item = this.#queue.shift()) {
        this.#queuedBytes -= item.payload.length;
        try {
          await this.#classify(item.topic, item.payload, item.at);
        } catch (err) {
          this.options.onError(err, 'traffic monitor classification');
        }
      }
    } finally {
      this.#draining = false;
    }
  }

  /** The topic's cached keys, read again when older than the TTL or when `reload` says so. */
  async #topicKeys(topic: string, reload = false): Promise<CachedKeys> {
    const cached = reload ? undefined : await this.#keys.get(topic);
    if (cached !== undefined && this.#now() - cached.loadedAt < this.#o.keyTtlMs) return cached;
    const loadedAt = this.#now();
    const loading = this.options.source
      .monitoringKeys(topic, this.#o.versions)
      .then((found): CachedKeys => {
        if (found === undefined) return { found: undefined, loadedAt };
        const keys = found.keys.map(({ version, key }) => {
          const siv = new AesSivKey(key);
          key.fill(0);
          return { version, key: siv };
        });
        return { found: { topicId: found.topicId, keys }, loadedAt };
      });
    this.#keys.set(topic, loading);
    try {
      return await loading;
    } catch (err) {
      this.#keys.delete(topic);
      throw err;
    }
  }

  /**
   * A signer's public key, cached: a known one for 12 key TTLs (a re-key is noticed by the
   * re-read in {@link #classify}), an unknown one only for `keyReloadMs`, so that a device added
   * since its first messages is recognised promptly.
   */
  async #publicKey(idHex: string, id: Uint8Array, reload = false): Promise<KeyObject | undefined> {
    const cached = this.#pubKeys.get(idHex);
    const ttl = cached?.key === undefined ? this.#o.keyReloadMs : this.#o.keyTtlMs * 12;
    if (!reload && cached !== undefined && this.#now() - cached.at < ttl) return cached.key;
    const at = this.#now();
    const raw = await this.options.source.devicePublicKey(id);
    let key: KeyObject | undefined;
    try {
      key = raw === undefined ? undefined : ed25519PublicKeyObject(raw);
    } catch {
      key = undefined;
    }
    if (this.#pubKeys.size > 100_000) {
      this.#pubKeys.clear();
      this.#signerQuietUntil.clear();
    }
    this.#pubKeys.set(idHex, { key, at });
    return key;
  }

  /**
   * Re-reads the public key of a known signer whose cached key did not verify a message received
   * at `at`: the device may have been given a new key pair since. Bounded like the topic keys'
   * re-read: one that finds no other key starts a quiet interval for that signer.
   * @returns the new key, or undefined when there is none to try
   */
  async #reloadedSigner(
    idHex: string,
    id: Uint8Array,
    signer: KeyObject,
    at: number,
  ): Promise<KeyObject | undefined> {
    const readAt = this.#pubKeys.get(idHex)?.at ?? 0;
    // A key read after the message arrived is the one its sender had.
    if (readAt > at || this.#now() < (this.#signerQuietUntil.get(idHex) ?? 0)) return undefined;
    let fresh: KeyObject | undefined;
    try {
      fresh = await this.#publicKey(idHex, id, true);
    } catch (err) {
      this.options.onError(err, 'traffic monitor signer reload');
    }
    if (fresh !== undefined && !fresh.equals(signer)) return fresh;
    this.#signerQuietUntil.set(idHex, this.#now() + this.#o.keyReloadMs);
    return undefined;
  }

  /**
   * Whether a message received at `at` that no cached key authenticates may be under a key the
   * cache lacks, and a re-read is allowed now. Only after a rotation can a re-read change the
   * verdict; one that finds nothing new starts a quiet interval (see `keyReloadMs`).
   */
  #mayReload(topic: string, cached: CachedKeys, at: number): boolean {
    // Keys read after the message arrived already hold every key its sender could have had.
    if (cached.loadedAt > at) return false;
    return this.#now() >= (this.#reloadQuietUntil.get(topic) ?? 0);
  }

  async #classify(topic: string, payload: Uint8Array, at: number): Promise<void> {
    const cached = await this.#topicKeys(topic);
    if (cached.found === undefined) return;
    let lookupPubKey: ((hex: string) => KeyObject | undefined) | undefined;
    // Public-key mode: without the signer's key no topic key can authenticate the message.
    let signerKnown = true;
    /** Public-key mode: tries a re-read signer key. @returns whether there was one to try */
    let retrySigner = (): Promise<boolean> => Promise.resolve(false);
    if (this.options.source.mode === 'pubkey' && payload.length >= TIMESTAMP_LEN + ID_LEN) {
      const id = payload.slice(TIMESTAMP_LEN, TIMESTAMP_LEN + ID_LEN);
      const idHex = toHex(id);
      let signer = await this.#publicKey(idHex, id);
      signerKnown = signer !== undefined;
      lookupPubKey = (hex) => (hex === idHex ? signer : undefined);
      retrySigner = async () => {
        const known = signer;
        const fresh =
          known === undefined ? undefined : await this.#reloadedSigner(idHex, id, known, at);
        if (fresh === undefined) return false;
        signer = fresh;
        return true;
      };
    } else if (this.options.source.mode === 'pubkey') {
      signerKnown = false;
      lookupPubKey = () => undefined;
    }
    const classify = (found: NonNullable<CachedKeys['found']>) =>
      classifyMessage({
        payload,
        keys: found.keys,
        now: () => at,
        ...(lookupPubKey === undefined ? {} : { lookupPubKey }),
      });
    let keys = cached.found;
    let verdict = classify(keys);
    // The signer may have a new key pair since its key was read (a client key rotation).
    if (verdict.class === 'forged' && signerKnown && (await retrySigner()))
      verdict = classify(keys);
    // The topic may have been rotated (or removed and created again) since the keys were read:
    // read them again once and classify again, rather than count its new key's traffic forged.
    if (verdict.class === 'forged' && signerKnown && this.#mayReload(topic, cached, at)) {
      let fresh: CachedKeys | undefined;
      try {
        fresh = await this.#topicKeys(topic, true);
      } catch (err) {
        // The verdict stands; a failing store is not asked again for each message.
        this.options.onError(err, 'traffic monitor key reload');
      }
      if (fresh !== undefined && fresh.found === undefined) return;
      const found = fresh?.found;
      if (found !== undefined && (found.topicId !== keys.topicId || newest(found) > newest(keys))) {
        keys = found;
        verdict = classify(keys);
      } else {
        // Nothing new: real forgeries (or a key older than the versions tried).
        this.#reloadQuietUntil.set(topic, this.#now() + this.#o.keyReloadMs);
      }
    }
    this.options.onClassified?.(verdict.class);
    const version = verdict.keyVersion ?? 0;
    const countKey = `${keys.topicId}|${version}|${verdict.class}`;
    const date = new Date(at);
    const count = this.#counts.get(countKey);
    this.#counts.set(countKey, {
      topicId: keys.topicId,
      keyVersion: version,
      class: verdict.class,
      messages: (count?.messages ?? 0) + 1,
      firstAt: count?.firstAt ?? date,
      lastAt: date,
    });
    // Only a fresh message tells the version a device uses: a stale one is a replay (or a
    // skewed clock), and would make a device that moved on look behind (and get resynced).
    const fresh = verdict.class === 'current' || verdict.class === 'previous_key';
    if (fresh && verdict.senderId !== undefined && verdict.keyVersion !== undefined) {
      const e4Id = payload.slice(TIMESTAMP_LEN, TIMESTAMP_LEN + ID_LEN);
      this.#uses.set(`${keys.topicId}|${verdict.senderId}`, {
        topicId: keys.topicId,
        e4Id,
        keyVersion: verdict.keyVersion,
        at: date,
      });
    }
  }

  /**
   * Writes the counters gathered since the last flush. When the write fails (the database is
   * briefly away) they are put back, merged with what was counted meanwhile, for the next flush:
   * only a node that dies loses its last interval. (A write that committed but whose answer was
   * lost is then counted twice: over-counting a flush is the lesser harm.)
   * @throws the store's error, after the counters are back
   */
  async flush(): Promise<void> {
    if (this.#counts.size === 0 && this.#uses.size === 0) return;
    const counts = new Map(this.#counts);
    const uses = new Map(this.#uses);
    this.#counts.clear();
    this.#uses.clear();
    try {
      await this.options.source.recordTraffic([...counts.values()], [...uses.values()]);
    } catch (err) {
      this.#putBack(counts, uses);
      throw err;
    }
  }

  /** Merges counters of a failed flush back into the current ones. */
  #putBack(counts: Map<string, TrafficCount>, uses: Map<string, DeviceKeyUse>): void {
    for (const [key, old] of counts) {
      const now = this.#counts.get(key);
      this.#counts.set(
        key,
        now === undefined
          ? old
          : { ...now, messages: now.messages + old.messages, firstAt: old.firstAt },
      );
    }
    // A use seen since the failed flush is newer than the one it held.
    for (const [key, old] of uses) if (!this.#uses.has(key)) this.#uses.set(key, old);
  }

  /** Messages waiting for classification. */
  get queued(): number {
    return this.#queue.length;
  }

  /** Payload bytes of the messages waiting for classification. */
  get queuedBytes(): number {
    return this.#queuedBytes;
  }

  /** Stops: no new messages, the queue is classified, counters flushed, the feed closed. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const t of this.#timers) clearInterval(t);
    await this.options.feed.close();
    while (this.#draining) await new Promise((resolve) => setTimeout(resolve, 10));
    await this.flush();
  }
}
