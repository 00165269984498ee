/**
 * A small PromQL checker for the expressions of our alert rules and dashboards: balanced
 * brackets, well-formed label matchers and range selectors, known functions and aggregations.
 * It returns the metric selectors an expression uses, with their label matchers, so tests can
 * compare them with what the code registers. Not a full PromQL parser: it accepts the subset
 * our operator files use and rejects what would be a typo there.
 */

/** A metric selector found in an expression. */
export interface Selector {
  readonly metric: string;
  readonly matchers: ReadonlyArray<{ readonly label: string; readonly value: string }>;
}

const FUNCTIONS = new Set([
  'abs',
  'absent',
  'avg_over_time',
  'ceil',
  'clamp_max',
  'clamp_min',
  'delta',
  'floor',
  'histogram_quantile',
  'increase',
  'irate',
  'max_over_time',
  'min_over_time',
  'rate',
  'round',
  'time',
  'vector',
]);
const AGGREGATIONS = new Set(['sum', 'min', 'max', 'avg', 'count', 'topk', 'bottomk', 'quantile']);
const KEYWORDS = new Set(['by', 'without', 'on', 'ignoring', 'group_left', 'group_right']);
const BINARY_WORDS = new Set(['and', 'or', 'unless', 'bool']);

type Token =
  | { readonly kind: 'ident'; readonly text: string }
  | { readonly kind: 'number' | 'string' | 'duration' | 'op'; readonly text: string }
  | { readonly kind: 'punct'; readonly text: string };

const TOKEN =
  /\s*(?:(?<duration>\[\d+[smhdwy]\])|(?<number>\d+(?:\.\d+)?(?:e[+-]?\d+)?)|(?<string>"(?:[^"\\]|\\.)*")|(?<ident>[a-zA-Z_:][a-zA-Z0-9_:]*)|(?<op>=~|!~|!=|==|>=|<=|[=<>+\-*/%^])|(?<punct>[(){},]))/y;

function tokenize(expr: string): Token[] {
  const tokens: Token[] = [];
  TOKEN.lastIndex = 0;
  for (;;) {
    if (/^\s*$/.test(expr.slice(TOKEN.lastIndex))) return tokens;
    const at = TOKEN.lastIndex;
    const m = TOKEN.exec(expr);
    if (m?.groups === undefined)
      throw new Error(`unexpected text at ${at}: ${expr.slice(at, at + 20)}`);
    const g = m.groups;
    if (g['duration'] !== undefined) tokens.push({ kind: 'duration', text: g['duration'] });
    else if (g['number'] !== undefined) tokens.push({ kind: 'number', text: g['number'] });
    else if (g['string'] !== undefined) tokens.push({ kind: 'string', text: g['string'] });
    else if (g['ident'] !== undefined) tokens.push({ kind: 'ident', text: g['ident'] });
    else if (g['op'] !== undefined) tokens.push({ kind: 'op', text: g['op'] });
    else tokens.push({ kind: 'punct', text: g['punct'] ?? '' });
  }
}

/**
 * Checks `expr` and returns its selectors.
 * @throws Error describing the first problem found
 */
export function checkPromql(expr: string): Selector[] {
  const tokens = tokenize(expr);
  const selectors: Selector[] = [];
  const stack: string[] = [];
  let i = 0;
  const peek = (k = 0): Token | undefined => tokens[i + k];
  while (i < tokens.length) {
    const t = tokens[i] as Token;
    if (t.kind === 'punct' && (t.text === '(' || t.text === '{')) {
      stack.push(t.text);
      i++;
      continue;
    }
    if (t.kind === 'punct' && (t.text === ')' || t.text === '}')) {
      const open = stack.pop();
      if (open !== (t.text === ')' ? '(' : '{')) throw new Error(`unbalanced ${t.text}`);
      i++;
      continue;
    }
    if (t.kind === 'duration') {
      const prev = tokens[i - 1];
      if (prev === undefined || !(prev.text === '}' || prev.kind === 'ident'))
        throw new Error(`range ${t.text} does not follow a selector`);
      i++;
      continue;
    }
    if (t.kind !== 'ident') {
      i++;
      continue;
    }
    const next = peek(1);
    if (KEYWORDS.has(t.text)) {
      if (next?.text !== '(') throw new Error(`${t.text} without a label list`);
      i += 2;
      while (peek()?.text !== ')') {
        const label = peek();
        if (label?.kind !== 'ident') throw new Error(`${t.text}: bad label list`);
        i++;
        if (peek()?.text === ',') i++;
      }
      i++; // ')'
      continue;
    }
    if (BINARY_WORDS.has(t.text)) {
      i++;
      continue;
    }
    if (AGGREGATIONS.has(t.text) && (next?.text === 'by' || next?.text === 'without')) {
      i++;
      continue;
    }
    if (next?.text === '(') {
      if (!FUNCTIONS.has(t.text) && !AGGREGATIONS.has(t.text))
        throw new Error(`unknown function ${t.text}`);
      i++;
      continue;
    }
    // A metric selector, with optional matchers.
    const matchers: Array<{ label: string; value: string }> = [];
    i++;
    if (peek()?.text === '{') {
      i++;
      while (peek()?.text !== '}') {
        const label = peek();
        const op = peek(1);
        const value = peek(2);
        if (
          label?.kind !== 'ident' ||
          op?.kind !== 'op' ||
          !['=', '!=', '=~', '!~'].includes(op.text) ||
          value?.kind !== 'string'
        )
          throw new Error(`bad label matcher in ${t.text}{...}`);
        matchers.push({ label: label.text, value: value.text.slice(1, -1) });
        i += 3;
        if (peek()?.text === ',') i++;
        else if (peek()?.text !== '}') throw new Error(`bad label matchers of ${t.text}`);
      }
      i++;
    }
    selectors.push({ metric: t.text, matchers });
  }
  if (stack.length > 0) throw new Error(`unclosed ${stack.join('')}`);
  return selectors;
}
