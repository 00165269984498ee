/**
 * Tells a stop signal (SIGINT, SIGTERM) asked for once from a second one meant to force the exit.
 * Under `npm start` and `npm run`, one Ctrl-C reaches the process twice: the terminal sends it to
 * the whole foreground group, and npm forwards its own copy. Read as two, it forced an exit that
 * skipped the orderly shutdown (nothing drained, the data directory's lock left behind).
 */

/** Copies of one signal within this are one. */
export const REPEATED_SIGNAL_MS = 500;

/** What a stop signal means, given the ones before it. */
export type StopSignalMeaning = 'first' | 'copy' | 'again';

/** The stop signals of one process (composition roots only). */
export class StopSignals {
  #firstAt: number | undefined;

  /** @param clock - milliseconds; a test's fake clock */
  constructor(private readonly clock: () => number = Date.now) {}

  /**
   * Counts one signal.
   * @returns `first` (stop in order), `copy` (the same request again: ignore it) or `again` (a
   *   second request, later: the caller may force the exit)
   */
  receive(): StopSignalMeaning {
    const now = this.clock();
    if (this.#firstAt === undefined) {
      this.#firstAt = now;
      return 'first';
    }
    return now - this.#firstAt < REPEATED_SIGNAL_MS ? 'copy' : 'again';
  }
}
