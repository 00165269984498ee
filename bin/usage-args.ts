/** Command-line helpers shared by the launchers (`npm run cluster`, `npm run chaos`). */
import { parseArgs, type ParseArgsConfig } from 'node:util';

/** A command-line mistake: reported with the usage text and exit code 2. */
export class UsageError extends Error {}

/**
 * `argv` with `--flag VALUE` written `--flag=VALUE` where VALUE starts with one dash (`--seed -1`)
 * and `--flag` is one of `flags`: `parseArgs` takes such a value for an option and rejects the
 * pair as "ambiguous", where the option's own check says what is wrong (a negative number).
 */
export function attachDashValues(argv: readonly string[], flags: ReadonlySet<string>): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const word = argv[i] ?? '';
    const next = argv[i + 1];
    if (flags.has(word) && next !== undefined && /^-[^-]/.test(next)) {
      out.push(`${word}=${next}`);
      i++;
    } else out.push(word);
  }
  return out;
}

/**
 * A whole-number option within `[min, max]`, or `def` when absent.
 * @throws UsageError naming the option
 */
export function intArg(
  value: string | undefined,
  name: string,
  min: number,
  max: number,
  def: number,
): number {
  if (value === undefined) return def;
  // The valid range in every message: "not a whole number" alone leaves the user guessing.
  if (!/^\d+$/.test(value))
    throw new UsageError(`${name} must be a whole number from ${min} to ${max}, not "${value}"`);
  const n = Number(value);
  if (n < min || n > max)
    throw new UsageError(`${name} must be between ${min} and ${max}, not ${value}`);
  return n;
}

/**
 * `parseArgs` of a launcher's command line: strict, no positionals, a value with one dash taken
 * by the options in `numberFlags` ({@link attachDashValues}).
 * @throws UsageError with parseArgs' own message (an unknown option, a missing value)
 */
export function parseOptions<const O extends NonNullable<ParseArgsConfig['options']>>(
  argv: readonly string[],
  numberFlags: ReadonlySet<string>,
  options: O,
): ReturnType<
  typeof parseArgs<{ args: string[]; strict: true; allowPositionals: false; options: O }>
>['values'] {
  try {
    return parseArgs({
      args: attachDashValues(argv, numberFlags),
      strict: true,
      allowPositionals: false,
      options,
    }).values;
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}
