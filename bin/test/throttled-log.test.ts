import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { throttledErrorLog } from '../throttled-log.ts';

void describe('throttledErrorLog', () => {
  void it('logs the first error, then one per interval with the count left out', () => {
    const lines: Array<Record<string, unknown>> = [];
    let now = 0;
    const log = throttledErrorLog(
      (fields, message) => {
        lines.push({ ...fields, message });
      },
      'queue down',
      60_000,
      () => now,
    );
    const err = new Error('connect ECONNREFUSED');
    log(err);
    for (let i = 1; i <= 30; i++) {
      now = i * 1000;
      log(err);
    }
    now = 60_000;
    log(err);
    assert.deepEqual(lines, [
      { err, message: 'queue down' },
      { err, leftOut: 30, message: 'queue down' },
    ]);
  });
});
