/**
 * Reads the text of the optional JSON config file into a flat map of dotted keys, reporting
 * malformed JSON and unknown keys. Pure: the caller reads the file.
 */
import { KNOWN_FILE_KEYS } from './settings.ts';
import { closestName } from './suggest.ts';

/** Values of the file by dotted key, plus the problems found. */
export interface ConfigFileContents {
  readonly values: ReadonlyMap<string, unknown>;
  readonly problems: readonly string[];
}

const isPlainObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

/** Every proper prefix of a known key (`database` for `database.poolMax`): the sections. */
const SECTIONS: ReadonlySet<string> = new Set(
  KNOWN_FILE_KEYS.flatMap((key) => {
    const parts = key.split('.');
    return parts.slice(1).map((_, i) => parts.slice(0, i + 1).join('.'));
  }),
);
const LEAVES: ReadonlySet<string> = new Set(KNOWN_FILE_KEYS);

/** Known key names directly below `prefix` (`''` for the top level), for suggestions. */
function childrenOf(prefix: string): string[] {
  const depth = prefix === '' ? 0 : prefix.split('.').length;
  return [...SECTIONS, ...LEAVES]
    .filter((k) => prefix === '' || k.startsWith(`${prefix}.`))
    .map((k) => k.split('.'))
    .filter((parts) => parts.length === depth + 1)
    .map((parts) => parts[depth] ?? '');
}

/**
 * Parses `text` as the JSON config file named `label`.
 *
 * JSON `null` counts as "not set", so a templated file can leave a value out. Problems quote key
 * names, never values (a value may be a secret).
 */
export function parseConfigFile(text: string, label: string): ConfigFileContents {
  const values = new Map<string, unknown>();
  const problems: string[] = [];
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    // V8's message quotes the surrounding text, which may contain a secret: keep the position only.
    const position = /position (\d+)/.exec(String(err))?.[1];
    problems.push(
      `${label}: not valid JSON${position === undefined ? '' : ` (at position ${position})`}`,
    );
    return { values, problems };
  }
  if (!isPlainObject(parsed)) {
    problems.push(`${label}: must hold a JSON object`);
    return { values, problems };
  }
  const walk = (object: Record<string, unknown>, prefix: string): void => {
    for (const [key, value] of Object.entries(object)) {
      const path = prefix === '' ? key : `${prefix}.${key}`;
      if (LEAVES.has(path)) {
        if (value !== null) values.set(path, value);
      } else if (SECTIONS.has(path)) {
        if (isPlainObject(value)) walk(value, path);
        else problems.push(`${label}: ${path} must be an object`);
      } else {
        const guess = closestName(key, childrenOf(prefix));
        const hint =
          guess === undefined
            ? ''
            : ` (did you mean ${prefix === '' ? '' : `${prefix}.`}${guess}?)`;
        problems.push(`${label}: unknown key ${path}${hint}`);
      }
    }
  };
  walk(parsed, '');
  return { values, problems };
}
