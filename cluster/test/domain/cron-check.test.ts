/** Cron triggers are checked when a rule is written, and a refusal says what is wrong. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { checkCron } from '../../domain/automation-rules.ts';
import { C2Error } from '../../errors.ts';

void describe('cron triggers', () => {
  void it('accepts 5 and 6 fields, and a date that exists only in leap years', () => {
    assert.equal(checkCron('0 3 * * *', 'Europe/Berlin'), '0 3 * * *');
    assert.equal(checkCron('*/10 * * * * *', 'UTC'), '*/10 * * * * *');
    assert.equal(checkCron('0 0 29 2 *', 'UTC'), '0 0 29 2 *');
  });

  void it('names the field at fault and says why a date or value is impossible', () => {
    for (const [expr, why] of [
      ['0 0 30 2 *', /day of month/],
      ['61 * * * *', /got value 61 expected range 0-59/],
    ] as const) {
      assert.throws(
        () => checkCron(expr, 'UTC', 'triggers[0].expr'),
        (err: unknown) => {
          assert.ok(C2Error.is(err, 'C2_VALIDATION'), String(err));
          assert.equal(err.details?.['field'], 'triggers[0].expr');
          assert.match(err.message, /^triggers\[0\]\.expr is not a valid cron expression \(/);
          assert.match(err.message, why);
          return true;
        },
      );
    }
  });
});
