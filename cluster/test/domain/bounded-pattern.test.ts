/**
 * Automation target patterns cannot stall a node: a pattern that backtracks exponentially is
 * refused when the rule is written, and cut short by the time bound when it slips through.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { checkTarget, targetMatcher } from '../../domain/automation-rules.ts';
import { assertPatternIsFast, boundedFilter } from '../../domain/bounded-pattern.ts';
import { C2Error } from '../../errors.ts';

/** A pattern that backtracks exponentially on `q…q` followed by anything but `z`. */
const NESTED = '(q+)+z';

function validationField(err: unknown): unknown {
  assert.ok(err instanceof C2Error, `a C2Error, not ${String(err)}`);
  assert.equal(err.code, 'C2_VALIDATION');
  return err.details?.['field'];
}

void describe('bounded target patterns', () => {
  void it('select what the regular expression selects, anchored at both ends', () => {
    const matcher = targetMatcher({
      id: 'g1',
      kind: 'client',
      match: 'pattern',
      expr: 'dev-[0-9]+',
    });
    assert.deepEqual(matcher.filter(['dev-1', 'dev-x', 'xdev-2', 'dev-22', 'dev-3 ']), [
      'dev-1',
      'dev-22',
    ]);
  });

  void it('refuses a pattern with nested repetition when the rule is written', () => {
    assert.throws(
      () => checkTarget({ kind: 'client', match: 'pattern', expr: NESTED }, 'targets[0]'),
      (err: unknown) => {
        assert.equal(validationField(err), 'targets[0].expr');
        assert.match((err as Error).message, /nested repetition/);
        return true;
      },
    );
    assert.throws(() => checkTarget({ kind: 'topic', match: 'pattern', expr: '(\\d+)+$' }));
    assert.throws(() => checkTarget({ kind: 'topic', match: 'pattern', expr: '(a|a)*b' }));
    // Nested repetition over a word, not a character: backtracks on `plant/plant/…`.
    assert.throws(
      () => checkTarget({ kind: 'topic', match: 'pattern', expr: '(plant/|plant/.*)*zz' }),
      /nested repetition/,
    );
  });

  void it('accepts the patterns operators write', () => {
    for (const expr of ['dev-[0-9]+', 'plant/.*', '[a-z]+(-[a-z0-9]+)*', '(a|b)+c', 'x{1,64}']) {
      assert.equal(checkTarget({ kind: 'topic', match: 'pattern', expr }).expr, expr);
    }
  });

  void it('cuts short a slow match that slipped through, with a typed error', () => {
    // 28 characters: seconds of backtracking unbounded, cut at the budget here.
    const re = new RegExp(`^(?:${NESTED})$`, 'u');
    assert.throws(
      () => boundedFilter(re, ['dev-1', `${'q'.repeat(28)}!`], 'target g1 pattern'),
      (err: unknown) => {
        assert.equal(validationField(err), 'target g1 pattern');
        assert.match((err as Error).message, /took more than \d+ ms over 2 name/);
        return true;
      },
    );
    assert.deepEqual(boundedFilter(re, ['qqz', 'qz', 'z'], 'f'), ['qqz', 'qz'], 'still usable');
  });

  void it('probes with names as long as names get', () => {
    // Quadratic, not exponential: fine at name lengths.
    assert.doesNotThrow(() => {
      assertPatternIsFast(/^(?:a*a*b)$/u, 'f');
    });
  });
});
