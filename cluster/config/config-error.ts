/** The error `loadConfig` throws. */
import { C2Error, C2ErrorCode } from '../errors.ts';

/**
 * Invalid configuration: a `C2_CONFIG` {@link C2Error} that lists every problem found, so an
 * operator fixes them all in one round instead of one per restart.
 *
 * The message is a header line followed by one problem per line; {@link ConfigError.problems}
 * holds the same lines for programs, and `details.problems` their count. No problem ever quotes
 * the value of a secret setting.
 */
export class ConfigError extends C2Error {
  override readonly name: string = 'ConfigError';

  /**
   * One human-readable line per problem: config file problems, then unknown variables, then the
   * settings in the order they are declared.
   */
  readonly problems: readonly string[];

  /** @param problems - at least one problem line, none containing a secret value */
  constructor(problems: readonly string[]) {
    const count = problems.length;
    super(
      C2ErrorCode.C2_CONFIG,
      [
        `invalid configuration (${count} problem${count === 1 ? '' : 's'}):`,
        ...problems.map((p) => `  - ${p}`),
      ].join('\n'),
      { details: { problems: count } },
    );
    this.problems = Object.freeze([...problems]);
  }
}
