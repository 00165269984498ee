/**
 * Finding a key given twice in one JSON object. `JSON.parse` keeps the last one silently, while
 * another reader (a proxy, an audit tool, a WAF) may take the first: the same request would mean
 * two things. The scanner is iterative, so any nesting that `JSON.parse` accepts is scanned
 * without exhausting the stack.
 */

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COLON = 0x3a;
const COMMA = 0x2c;
const OPEN_OBJECT = 0x7b;
const CLOSE_OBJECT = 0x7d;
const OPEN_ARRAY = 0x5b;
const CLOSE_ARRAY = 0x5d;

type Frame =
  | { readonly kind: 'object'; readonly keys: Set<string>; key: string }
  | { readonly kind: 'array'; index: number };

/** The index of the quote that closes the string opening at `start`. */
function stringEnd(text: string, start: number): number {
  let i = start + 1;
  for (;;) {
    const c = text.charCodeAt(i);
    if (c === BACKSLASH) i += 2;
    else if (c === QUOTE || Number.isNaN(c)) return i;
    else i += 1;
  }
}

/** The first character after `from` that is not JSON white space (NaN at the end). */
function nextToken(text: string, from: number): number {
  let i = from;
  while (i < text.length && ' \t\n\r'.includes(text.charAt(i))) i += 1;
  return text.charCodeAt(i);
}

/** `a.b[2].c`: where a key of the innermost object sits. */
function pathOf(stack: readonly Frame[], key: string): string {
  let path = '';
  for (const frame of stack.slice(0, -1)) {
    if (frame.kind === 'array') path += `[${frame.index}]`;
    else path += path === '' ? frame.key : `.${frame.key}`;
  }
  return path === '' ? key : `${path}.${key}`;
}

/**
 * The path of the first key that appears twice in one object of `text` (compared after
 * unescaping, so `"a"` and `"\u0061"` are the same key), or undefined.
 * @param text - text that `JSON.parse` accepted (anything else gives no meaningful answer)
 */
export function firstDuplicateKey(text: string): string | undefined {
  const stack: Frame[] = [];
  for (let i = 0; i < text.length; i += 1) {
    const c = text.charCodeAt(i);
    if (c === QUOTE) {
      const end = stringEnd(text, i);
      const top = stack.at(-1);
      if (top?.kind === 'object' && nextToken(text, end + 1) === COLON) {
        const raw = text.slice(i, end + 1);
        const key = raw.includes('\\') ? (JSON.parse(raw) as string) : raw.slice(1, -1);
        if (top.keys.has(key)) return pathOf(stack, key);
        top.keys.add(key);
        top.key = key;
      }
      i = end;
    } else if (c === OPEN_OBJECT) stack.push({ kind: 'object', keys: new Set(), key: '' });
    else if (c === OPEN_ARRAY) stack.push({ kind: 'array', index: 0 });
    else if (c === CLOSE_OBJECT || c === CLOSE_ARRAY) stack.pop();
    else if (c === COMMA) {
      const top = stack.at(-1);
      if (top?.kind === 'array') top.index += 1;
    }
  }
  return undefined;
}
