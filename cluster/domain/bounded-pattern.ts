/**
 * Automation target patterns are regular expressions an admin writes, matched against every
 * client or topic name on the automation leader's event loop. A pattern with nested repetition,
 * such as `(q+)+z`, backtracks exponentially on a name like `qqq…q` (29 characters took seconds,
 * and a 40-character name hours, during which the node answered nothing). Matching therefore runs
 * with a time bound (V8 interrupts a regular expression that a `vm` timeout cuts short), and a
 * new pattern is first tried against names built to make such patterns backtrack.
 */
import { Script, createContext } from 'node:vm';
import { C2Error } from '../errors.ts';

/** Longest one call may match: a page of names or one event's name takes microseconds. */
export const PATTERN_BUDGET_MS = 250;
/** Names as long as names get (client names: 255 bytes); backtracking grows with length. */
const PROBE_LENGTH = 255;
/** Characters probed besides the pattern's own: what names are commonly made of. */
const COMMON_CHARACTERS = 'a0-_./';

// One context serves every pattern: a call runs to its end before another starts.
const sandbox = createContext({ re: /$^/u, names: [] as readonly string[] });
const filterScript = new Script('names.filter((name) => re.test(name))');

/** `names` that `re` matches, within {@link PATTERN_BUDGET_MS}. @throws C2Error when slower */
export function boundedFilter(re: RegExp, names: readonly string[], field: string): string[] {
  sandbox['re'] = re;
  sandbox['names'] = names;
  try {
    return filterScript.runInContext(sandbox, { timeout: PATTERN_BUDGET_MS }) as string[];
  } catch (err) {
    if ((err as { code?: unknown }).code !== 'ERR_SCRIPT_EXECUTION_TIMEOUT') throw err;
    throw tooSlow(field, `took more than ${PATTERN_BUDGET_MS} ms over ${names.length} name(s)`);
  } finally {
    sandbox['names'] = [];
  }
}

/**
 * Tries `re` on names of one repeated character (each of the pattern's own and some common
 * ones), and of each literal word of the pattern repeated, followed by one that no name
 * contains: the shape that makes nested repetition backtrack.
 * @throws C2Error `C2_VALIDATION` when the pattern exceeds the budget on them
 */
export function assertPatternIsFast(re: RegExp, field: string): void {
  // Code points: a probe repeats whole characters, whatever their UTF-16 length.
  const characters = new Set(Array.from(re.source + COMMON_CHARACTERS));
  const probes = [...characters].map((c) => `${c.repeat(PROBE_LENGTH - 1)}\u0001`);
  // And the pattern's literal words repeated: `(plant/|plant/.*)*z` backtracks on
  // `plant/plant/…`, never on one character repeated.
  for (const word of literalWords(re.source)) {
    const times = Math.floor((PROBE_LENGTH - 1) / Array.from(word).length);
    probes.push(`${word.repeat(times)}\u0001`);
  }
  try {
    boundedFilter(re, probes, field);
  } catch (err) {
    if (!(err instanceof C2Error)) throw err;
    throw tooSlow(field, 'backtracks for too long on long names');
  }
}

/** Characters with a meaning of their own in a regular expression's source. */
const SYNTAX = new Set(Array.from('^$.|?*+()[]{}'));

/**
 * The runs of literal characters (two or more) of a regular expression's source; an escaped
 * punctuation character (`\/`, `\.`) is literal, an escaped letter or digit (`\d`) is not.
 */
function literalWords(source: string): Set<string> {
  const words = new Set<string>();
  let word = '';
  const end = (): void => {
    if (Array.from(word).length >= 2) words.add(word);
    word = '';
  };
  const chars = Array.from(source);
  for (let i = 0; i < chars.length; i++) {
    const c = chars[i] ?? '';
    if (c === '\\') {
      const next = chars[++i] ?? '';
      if (/^[\p{L}\p{N}]$/u.test(next)) end();
      else word += next;
    } else if (SYNTAX.has(c)) end();
    else word += c;
  }
  end();
  return words;
}

function tooSlow(field: string, what: string): C2Error {
  return new C2Error(
    'C2_VALIDATION',
    `${field} ${what}: a pattern with nested repetition, such as (a+)+, takes exponential time; write it without`,
    { details: { field } },
  );
}
