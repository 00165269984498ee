// A stop signal and its copies: one Ctrl-C reaches a process started by npm twice.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { REPEATED_SIGNAL_MS, StopSignals } from '../stop-signals.ts';

void describe('StopSignals', () => {
  void it('reads a signal repeated at once as a copy, and one repeated later as a second request', () => {
    let now = 1000;
    const signals = new StopSignals(() => now);
    assert.equal(signals.receive(), 'first');
    now += 40;
    assert.equal(signals.receive(), 'copy');
    now += REPEATED_SIGNAL_MS;
    assert.equal(signals.receive(), 'again');
  });
});
