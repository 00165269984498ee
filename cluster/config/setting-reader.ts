/**
 * Reads settings from the environment and the config file (environment first) and collects every
 * problem instead of stopping at the first, so `loadConfig` can report them all at once.
 */
import type { Parser } from './parse-values.ts';
import type { SettingSpec } from './settings.ts';

/** A raw value and where it came from. */
interface RawValue {
  readonly value: unknown;
  /** `E4C2_X` or `<file>: section.key`, used as the start of problem lines. */
  readonly source: string;
}

/** Longest quoted value in a problem line; longer values are cut. */
const MAX_QUOTED = 80;

/** Quotes a non-secret value for a problem line. */
function quote(value: unknown): string {
  const text = JSON.stringify(value) as string | undefined;
  if (text === undefined) return String(value);
  return text.length > MAX_QUOTED ? `${text.slice(0, MAX_QUOTED)}…` : text;
}

/** Settings access for one `loadConfig` call. */
export class SettingReader {
  readonly #env: Readonly<Record<string, string | undefined>>;
  readonly #file: ReadonlyMap<string, unknown>;
  readonly #fileLabel: string;
  readonly #problems: string[] = [];
  readonly #failed = new Set<SettingSpec>();

  /**
   * @param env - environment variables; an empty string counts as unset (`FOO=` in compose files)
   * @param file - config file values by dotted key
   * @param fileLabel - how problems name the file
   */
  constructor(
    env: Readonly<Record<string, string | undefined>>,
    file: ReadonlyMap<string, unknown>,
    fileLabel: string,
  ) {
    this.#env = env;
    this.#file = file;
    this.#fileLabel = fileLabel;
  }

  /** Problems recorded so far, in order. */
  get problems(): readonly string[] {
    return this.#problems;
  }

  /** Records a problem that is not about one value (a cross-setting rule). */
  problem(line: string): void {
    this.#problems.push(line);
  }

  /** Whether the setting has a value in the environment or the file. */
  isSet(spec: SettingSpec): boolean {
    return this.#raw(spec) !== undefined;
  }

  /** Whether the setting has a value that did not parse (its problem is already recorded). */
  failed(spec: SettingSpec): boolean {
    return this.#failed.has(spec);
  }

  /** `env (file key)`, for cross-setting problems that do not know where a value came from. */
  name(spec: SettingSpec): string {
    return `${spec.env} (${spec.file})`;
  }

  /**
   * The parsed value, or `undefined` when the setting is unset or invalid (then a problem is
   * recorded). The value is quoted in the problem unless the setting is secret or the parser
   * marked the failure sensitive.
   */
  optional<T>(spec: SettingSpec, parse: Parser<T>): T | undefined {
    const raw = this.#raw(spec);
    if (raw === undefined) return undefined;
    const parsed = parse(raw.value);
    if (parsed.ok) return parsed.value;
    this.#failed.add(spec);
    const hidden = spec.secret === true || parsed.sensitive === true;
    this.#problems.push(
      `${raw.source}: ${parsed.reason}${hidden ? '' : ` (got ${quote(raw.value)})`}`,
    );
    return undefined;
  }

  /** Like {@link SettingReader.optional}, with `fallback` when unset or invalid. */
  withDefault<T>(spec: SettingSpec, parse: Parser<T>, fallback: T): T {
    return this.optional(spec, parse) ?? fallback;
  }

  #raw(spec: SettingSpec): RawValue | undefined {
    const fromEnv = this.#env[spec.env];
    if (fromEnv !== undefined && fromEnv !== '') return { value: fromEnv, source: spec.env };
    if (this.#file.has(spec.file)) {
      return { value: this.#file.get(spec.file), source: `${this.#fileLabel}: ${spec.file}` };
    }
    return undefined;
  }
}
