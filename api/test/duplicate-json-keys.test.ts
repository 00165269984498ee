import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { C2Error } from '../../cluster/errors.ts';
import { firstDuplicateKey } from '../http/duplicate-json-keys.ts';
import { parseJsonBody } from '../http/http-io.ts';

/** A JSON value whose objects may repeat keys (which a JS object cannot hold). */
type Tree =
  | { readonly kind: 'object'; readonly entries: ReadonlyArray<readonly [string, Tree]> }
  | { readonly kind: 'array'; readonly items: readonly Tree[] }
  | { readonly kind: 'scalar'; readonly text: string };

/** A small deterministic generator (the cases are the same on every run). */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1_664_525) + 1_013_904_223) >>> 0;
    return s / 2 ** 32;
  };
}

const KEYS = ['a', 'b', 'topic', 'x"y', 'a\\b', 'ü', ''];
const SCALARS = ['1', '-2.5e3', 'true', 'null', '"{\\"a\\":1,\\"a\\":2}"', '"[,]"', '"\\\\"'];

function tree(random: () => number, depth: number): Tree {
  const pick = random();
  if (depth > 3 || pick < 0.3) {
    return { kind: 'scalar', text: SCALARS[Math.floor(random() * SCALARS.length)] ?? '0' };
  }
  const size = Math.floor(random() * 4);
  if (pick < 0.65) {
    return {
      kind: 'array',
      items: Array.from({ length: size }, () => tree(random, depth + 1)),
    };
  }
  return {
    kind: 'object',
    entries: Array.from(
      { length: size },
      () => [KEYS[Math.floor(random() * KEYS.length)] ?? 'k', tree(random, depth + 1)] as const,
    ),
  };
}

/** JSON text with random white space, keys escaped now and then (`"\u0061"` is `"a"`). */
function render(t: Tree, random: () => number): string {
  const ws = (): string => (random() < 0.3 ? ' \n\t'.charAt(Math.floor(random() * 3)) : '');
  if (t.kind === 'scalar') return t.text;
  if (t.kind === 'array')
    return `[${ws()}${t.items.map((i) => render(i, random)).join(`,${ws()}`)}]`;
  const key = (k: string): string =>
    random() < 0.2 && k.length > 0
      ? `"\\u${k.charCodeAt(0).toString(16).padStart(4, '0')}${JSON.stringify(k).slice(2)}`
      : JSON.stringify(k);
  return `{${t.entries.map(([k, v]) => `${ws()}${key(k)}${ws()}:${ws()}${render(v, random)}`).join(',')}}`;
}

/** The reference answer, by recursion over the tree in document order. */
function expected(t: Tree, path: string): string | undefined {
  if (t.kind === 'array') {
    for (const [i, item] of t.items.entries()) {
      const found = expected(item, `${path}[${i}]`);
      if (found !== undefined) return found;
    }
  }
  if (t.kind === 'object') {
    const seen = new Set<string>();
    for (const [k, v] of t.entries) {
      const here = path === '' ? k : `${path}.${k}`;
      if (seen.has(k)) return here;
      seen.add(k);
      const found = expected(v, here);
      if (found !== undefined) return found;
    }
  }
  return undefined;
}

void describe('duplicate JSON keys', () => {
  void it('names the first key given twice, with its path', () => {
    assert.equal(firstDuplicateKey('{"topic":"a/b","topic":"c"}'), 'topic');
    assert.equal(firstDuplicateKey('{"a":1,"\\u0061":2}'), 'a');
    assert.equal(
      firstDuplicateKey('{"rule":{"triggers":[{"kind":"x"},{"kind":"y","kind":"z"}]}}'),
      'rule.triggers[1].kind',
    );
    assert.equal(firstDuplicateKey('[{"a":1},{"a":2}]'), undefined, 'one key per object');
    assert.equal(firstDuplicateKey('{"a":"\\"a\\":1","b":{"a":2}}'), undefined);
  });

  void it('agrees with a reference on 5,000 generated documents', () => {
    const random = rng(20261127);
    let duplicates = 0;
    for (let n = 0; n < 5000; n++) {
      const t = tree(random, 0);
      const text = render(t, random);
      JSON.parse(text); // the scanner's precondition
      const want = expected(t, '');
      if (want !== undefined) duplicates += 1;
      assert.equal(firstDuplicateKey(text), want, text);
    }
    assert.ok(duplicates > 100, `the generator made duplicates (${duplicates})`);
  });

  void it('scans any nesting JSON.parse accepts without exhausting the stack', () => {
    const deep = `${'['.repeat(200_000)}{"a":1,"a":2}${']'.repeat(200_000)}`;
    JSON.parse(deep);
    assert.match(firstDuplicateKey(deep) ?? '', /^(\[0\])+\.a$/);
  });

  void it('a body that gives a key twice is C2_VALIDATION naming it', () => {
    assert.throws(
      () => parseJsonBody(Buffer.from('{"topic":"a/b/c","topic":"sensors/temp"}')),
      (err: unknown) =>
        C2Error.is(err, 'C2_VALIDATION') &&
        err.message === 'topic is given twice in the body' &&
        err.details?.['field'] === 'topic',
    );
    assert.deepEqual(parseJsonBody(Buffer.from('{"topic":"a/b/c"}')), { topic: 'a/b/c' });
  });
});
