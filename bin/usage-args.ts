/** Command-line helpers shared by the launchers (`npm run cluster`, `npm run chaos`). */

/** A command-line mistake: reported with the usage text and exit code 2. */
export class UsageError extends Error {}

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
  if (!/^\d+$/.test(value)) throw new UsageError(`${name} must be a whole number, not "${value}"`);
  const n = Number(value);
  if (n < min || n > max) throw new UsageError(`${name} must be between ${min} and ${max}`);
  return n;
}
