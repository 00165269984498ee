/** Types of `console.js` (plain JavaScript so that browsers load it without a build step). */
export interface ConsoleEnvironment {
  readonly document: Document;
  readonly fetch: typeof fetch;
  readonly storage: Pick<Storage, 'getItem' | 'setItem' | 'removeItem'>;
  readonly confirm: (message: string) => boolean;
}

/** Starts the console; returns a function that stops its event stream, timers and loads. */
export declare function startConsole(environment: ConsoleEnvironment): () => void;
