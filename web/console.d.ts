/** Types of `console.js` (plain JavaScript so that browsers load it without a build step). */

/**
 * How often the console polls, how long it gathers events before refreshing a row, and how long
 * it waits for an API call's answer (ms).
 */
export interface ConsoleTiming {
  /** Rows whose rollout is pending (or whose fetch failed) are fetched again this often: 2000. */
  readonly rowPollMs: number;
  /** The restore status is checked this often: 30000. */
  readonly restorePollMs: number;
  /** Events about one row within this time share one fetch: 400. */
  readonly coalesceMs: number;
  /** An API call without an answer after this long fails (the event stream excepted): 15000. */
  readonly callTimeoutMs: number;
  /** The event stream silent this long (no event, no heartbeat) is dropped and made again: 45000. */
  readonly streamIdleMs: number;
}
export interface ConsoleEnvironment {
  readonly document: Document;
  readonly fetch: typeof fetch;
  readonly storage: Pick<Storage, 'getItem' | 'setItem' | 'removeItem'>;
  readonly confirm: (message: string) => boolean;
  /** Defaults for what is not given (tests shorten them). */
  readonly timing?: Partial<ConsoleTiming>;
}

/** Starts the console; returns a function that stops its event stream, timers and loads. */
export declare function startConsole(environment: ConsoleEnvironment): () => void;

/** `text` with each invisible, control or direction character written as `⟨U+XXXX⟩`. */
export declare function visible(text: string): string;
