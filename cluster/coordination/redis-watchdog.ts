/**
 * Finds a Redis connection that went silent and makes it reconnect.
 *
 * When a Redis server fails over behind the same address, or a partition drops every packet,
 * the node's connection neither errors nor closes: its commands wait, TCP retransmits for about
 * 15 minutes before it gives up, and keep-alive never probes a connection with unacknowledged
 * data. A Redlock instance would stay out of the quorum that long, the queue connection would
 * hold the outbox relay and readiness would fail. The watchdog pings each connection it watches
 * at an interval; a ping without an answer in time while the connection counts as ready makes
 * the connection drop its socket and reconnect (ioredis then resends the commands that had no
 * answer, or fails them after its retry limit), so callers get an answer or an error.
 *
 * Never put a connection that runs blocking commands under a watchdog: its ping would queue
 * behind the blocking command. BullMQ runs those on a duplicate of its own.
 */
import { NO_ANSWER, settleWithin } from '../settle-within.ts';

/** What the watchdog needs of an ioredis connection. */
export interface WatchedRedis {
  /** ioredis' connection state; only a `ready` connection is pinged. */
  readonly status: string;
  ping(): Promise<unknown>;
  /** ioredis: `disconnect(true)` closes the socket and reconnects. */
  disconnect(reconnect?: boolean): void;
}

/** Options of {@link RedisWatchdog.start}. */
export interface RedisWatchdogOptions {
  /** Time between two pings (default 5 s). */
  readonly intervalMs?: number;
  /** How long a ping may go unanswered (default 5 s: far above any healthy answer). */
  readonly timeoutMs?: number;
  /** Told each time the connection is made to reconnect (to log it). */
  readonly onReset?: () => void;
}

/** Default time between pings and a ping's allowance. */
export const REDIS_WATCHDOG_DEFAULTS = { intervalMs: 5000, timeoutMs: 5000 } as const;

/** Pings one connection at an interval and resets it when it is silent. */
export class RedisWatchdog {
  #timer: NodeJS.Timeout | undefined;
  #stopped = false;

  private constructor(
    private readonly redis: WatchedRedis,
    private readonly intervalMs: number,
    private readonly timeoutMs: number,
    private readonly onReset: () => void,
  ) {}

  /** Starts watching `redis`; {@link stop} ends it. */
  static start(redis: WatchedRedis, options: RedisWatchdogOptions = {}): RedisWatchdog {
    const watchdog = new RedisWatchdog(
      redis,
      options.intervalMs ?? REDIS_WATCHDOG_DEFAULTS.intervalMs,
      options.timeoutMs ?? REDIS_WATCHDOG_DEFAULTS.timeoutMs,
      options.onReset ?? (() => undefined),
    );
    watchdog.#schedule();
    return watchdog;
  }

  #schedule(): void {
    if (this.#stopped) return;
    this.#timer = setTimeout(() => {
      void this.#check().finally(() => {
        this.#schedule();
      });
    }, this.intervalMs);
    // Watching must never keep a process alive.
    this.#timer.unref();
  }

  /** Whether the connection counts as connected (its status changes behind our back). */
  #ready(): boolean {
    return this.redis.status === 'ready';
  }

  /** One ping; a silent ready connection is reset. */
  async #check(): Promise<void> {
    // Connecting or reconnecting: ioredis is already at work; a ping would only wait for it.
    if (!this.#ready()) return;
    // An error is an answer too: the connection is alive, or ioredis has noticed it is not.
    const outcome = await settleWithin(this.redis.ping(), this.timeoutMs);
    // Still ready: ioredis has not noticed anything itself meanwhile.
    if (outcome === NO_ANSWER && !this.#stopped && this.#ready()) {
      this.redis.disconnect(true);
      this.onReset();
    }
  }

  /** Stops watching (a ping in flight is left to finish). Idempotent. */
  stop(): void {
    this.#stopped = true;
    clearTimeout(this.#timer);
  }
}
