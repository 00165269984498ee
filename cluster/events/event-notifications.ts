/**
 * Wakes a node's event subscribers when events were positioned anywhere in the cluster: one
 * dedicated connection per node LISTENs on the event channel (the sequencer NOTIFYs it when its
 * transaction commits), and a short periodic tick runs the sequencer so events committed by any
 * process (API nodes, workers) get their positions promptly even when nobody is reading. While
 * the connection is down it reconnects with back-off and subscribers fall back to polling
 * ({@link EventWakeups.listening} is false); after a reconnect every subscriber is woken once,
 * since notifications sent meanwhile are lost. The connection is pinged at an interval and every
 * statement on it is bounded: one that a failover or a partition black-holed neither fails nor
 * closes (keep-alive never probes a connection with a statement waiting), and would otherwise
 * leave the node without wake-ups for good.
 */
import pg from 'pg';
import { NO_ANSWER, settleWithin } from '../settle-within.ts';
import { EVENT_CHANNEL, PG_KEEPALIVE } from '../storage/index.ts';

/** What event subscribers wait on. */
export interface EventWakeups {
  /** True while notifications arrive (subscribers may then poll rarely). */
  readonly listening: boolean;
  /** Calls `listener` on every wake-up; returns the unsubscribe function. */
  onWake(listener: () => void): () => void;
}

/** A connection that can LISTEN (a `pg.Client`). */
export type ListenConnection = Pick<pg.Client, 'query' | 'on' | 'removeAllListeners' | 'end'>;

/** Options of {@link PgEventNotifications.start}. */
export interface PgEventNotificationsOptions {
  /** Opens a dedicated connection with the C2's search_path (see {@link connectListener}). */
  readonly connect: () => Promise<ListenConnection>;
  /** Positions committed events (`C2Service.sequenceEvents`); notifies when it did. */
  readonly sequence: () => Promise<unknown>;
  /** Pause between sequencer runs. Default 100 ms. */
  readonly sequenceIntervalMs?: number;
  /** Pause between two pings of the connection. Default 10 s. */
  readonly pingIntervalMs?: number;
  /** How long a statement on the connection (LISTEN, a ping) may go unanswered. Default 5 s. */
  readonly answerTimeoutMs?: number;
  readonly onError: (err: unknown, context: string) => void;
}

/** Opens a dedicated LISTEN connection (the composition root calls this). */
export async function connectListener(options: {
  readonly url: string;
  readonly schema?: string;
  /**
   * How the connection names itself in `pg_stat_activity`. A node passes its pool's name
   * (`e4c2-<node id>`), so that `ops/backup/restore.sh`, which lists the C2 nodes connected, names
   * each node once and no phantom one. Default `e4c2-events`.
   */
  readonly applicationName?: string;
}): Promise<ListenConnection> {
  const client = new pg.Client({
    connectionString: options.url,
    connectionTimeoutMillis: 5000,
    application_name: options.applicationName ?? 'e4c2-events',
    // Mostly idle: keep-alive is what finds it dead when its server vanished without a word.
    ...PG_KEEPALIVE,
    ...(options.schema === undefined ? {} : { options: `-c search_path=${options.schema}` }),
  });
  try {
    await client.connect();
  } catch (err) {
    await client.end().catch(() => undefined);
    throw err;
  }
  return client;
}

/** {@link EventWakeups} over Postgres LISTEN/NOTIFY. */
export class PgEventNotifications implements EventWakeups {
  readonly #listeners = new Set<() => void>();
  #connection: ListenConnection | undefined;
  #schema = '';
  #closed = false;
  #failures = 0;
  #sequencing = false;
  #tick: NodeJS.Timeout | undefined;
  #ping: NodeJS.Timeout | undefined;
  #pinging = false;
  #retry: NodeJS.Timeout | undefined;

  private constructor(private readonly options: PgEventNotificationsOptions) {}

  /** Connects and starts listening; a failed first connection is retried in the background. */
  static async start(options: PgEventNotificationsOptions): Promise<PgEventNotifications> {
    const hub = new PgEventNotifications(options);
    await hub.#listen();
    const interval = options.sequenceIntervalMs ?? 100;
    hub.#tick = setInterval(() => {
      void hub.#sequence();
    }, interval);
    hub.#tick.unref();
    hub.#ping = setInterval(() => {
      void hub.#pingConnection();
    }, options.pingIntervalMs ?? 10_000);
    hub.#ping.unref();
    return hub;
  }

  get listening(): boolean {
    return this.#connection !== undefined;
  }

  onWake(listener: () => void): () => void {
    this.#listeners.add(listener);
    return () => {
      this.#listeners.delete(listener);
    };
  }

  /** Stops listening and ticking. Idempotent. */
  async close(): Promise<void> {
    this.#closed = true;
    clearInterval(this.#tick);
    clearInterval(this.#ping);
    clearTimeout(this.#retry);
    const connection = this.#connection;
    this.#connection = undefined;
    this.#listeners.clear();
    if (connection !== undefined) {
      connection.removeAllListeners();
      connection.on('error', () => undefined);
      // A silent connection's end never completes: do not wait for it beyond the bound.
      await settleWithin(connection.end(), this.#answerTimeoutMs());
    }
  }

  #answerTimeoutMs(): number {
    return this.options.answerTimeoutMs ?? 5000;
  }

  /** `sql` on `connection`, within the answer bound. @throws when refused or unanswered */
  async #ask<R extends pg.QueryResultRow>(
    connection: ListenConnection,
    sql: string,
  ): Promise<pg.QueryResult<R>> {
    const timeoutMs = this.#answerTimeoutMs();
    const outcome = await settleWithin(connection.query<R>(sql), timeoutMs);
    if (outcome === NO_ANSWER)
      throw new Error(`the event listener connection did not answer within ${timeoutMs} ms`);
    if (outcome.status === 'rejected') throw outcome.reason;
    return outcome.value;
  }

  /** Pings the connection; one that does not answer is given up (and replaced). */
  async #pingConnection(): Promise<void> {
    const connection = this.#connection;
    if (connection === undefined || this.#pinging || this.#closed) return;
    this.#pinging = true;
    try {
      await this.#ask(connection, 'SELECT 1');
    } catch (err) {
      this.#lost(connection, err instanceof Error ? err : new Error(String(err)));
    } finally {
      this.#pinging = false;
    }
  }

  /** Read through a method: the flag changes while awaiting, which narrowing does not see. */
  #isClosed(): boolean {
    return this.#closed;
  }

  #wake(): void {
    for (const listener of [...this.#listeners]) {
      try {
        listener();
      } catch (err) {
        this.options.onError(err, 'event wake-up listener');
      }
    }
  }

  async #sequence(): Promise<void> {
    if (this.#sequencing || this.#closed) return;
    this.#sequencing = true;
    try {
      await this.options.sequence();
    } catch (err) {
      this.options.onError(err, 'event sequencer');
    } finally {
      this.#sequencing = false;
    }
  }

  async #listen(): Promise<void> {
    if (this.#closed) return;
    let connection: ListenConnection | undefined;
    try {
      connection = await this.options.connect();
      const found = await this.#ask<{ schema: string }>(
        connection,
        'SELECT current_schema() AS schema',
      );
      this.#schema = found.rows[0]?.schema ?? '';
      connection.on('notification', (message: pg.Notification) => {
        if (message.channel === EVENT_CHANNEL && message.payload === this.#schema) this.#wake();
      });
      connection.on('error', (err: Error) => {
        this.#lost(connection, err);
      });
      connection.on('end', () => {
        this.#lost(connection, new Error('event listener connection ended'));
      });
      await this.#ask(connection, `LISTEN ${EVENT_CHANNEL}`);
      if (this.#isClosed()) {
        await settleWithin(connection.end(), this.#answerTimeoutMs());
        return;
      }
      this.#connection = connection;
      this.#failures = 0;
      // Notifications sent while we were not listening are lost: have everyone read once.
      this.#wake();
    } catch (err) {
      this.options.onError(err, 'event listener connect');
      if (connection !== undefined) {
        connection.removeAllListeners();
        connection.on('error', () => undefined);
        // Not awaited: a connection that did not answer may never finish ending either.
        void connection.end().catch(() => undefined);
      }
      this.#scheduleReconnect();
    }
  }

  #lost(connection: ListenConnection | undefined, err: Error): void {
    if (this.#closed || connection === undefined || this.#connection !== connection) return;
    this.#connection = undefined;
    this.options.onError(err, 'event listener connection');
    connection.removeAllListeners();
    connection.on('error', () => undefined);
    void connection.end().catch(() => undefined);
    this.#scheduleReconnect();
  }

  #scheduleReconnect(): void {
    if (this.#closed) return;
    this.#failures++;
    const delay = Math.min(5000, 100 * 2 ** Math.min(this.#failures, 6));
    this.#retry = setTimeout(() => {
      void this.#listen();
    }, delay);
    this.#retry.unref();
  }
}
