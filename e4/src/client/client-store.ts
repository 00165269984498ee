/** Where a client keeps its serialised state between runs. */

/**
 * Persistence port of {@link E4Client}. `save` must be durable when it resolves: the client
 * acknowledges a command only after its new state is saved, so an applied key update is never
 * lost. Implementations hold key material and must be protected accordingly.
 */
export interface ClientStore {
  /** The last saved state, or `undefined` when nothing was ever saved. */
  load(): Promise<string | undefined>;
  /** Replaces the saved state. */
  save(serialised: string): Promise<void>;
}

/** A store in process memory, for tests, simulators and short-lived clients. */
export class MemoryClientStore implements ClientStore {
  #value: string | undefined;

  /** @param initial - optional serialised state to start with */
  constructor(initial?: string) {
    this.#value = initial;
  }

  /** @inheritDoc */
  load(): Promise<string | undefined> {
    return Promise.resolve(this.#value);
  }

  /** @inheritDoc */
  save(serialised: string): Promise<void> {
    this.#value = serialised;
    return Promise.resolve();
  }
}
