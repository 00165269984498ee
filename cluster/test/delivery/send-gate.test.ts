// SendGate: closed while the publisher is disconnected and, after a reconnection, until the
// settling delay has passed (clean-session devices subscribe again meanwhile); open otherwise.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SendGate } from '../../delivery/index.ts';

void describe('SendGate', () => {
  void it('opens only when connected and settled after a reconnection', () => {
    const link = { connected: true, now: 1_000 };
    const gate = new SendGate(
      () => link.connected,
      () => link.now,
    );
    assert.equal(gate.open, true, 'the first connection needs no settling');
    link.connected = false;
    assert.equal(gate.open, false, 'disconnected');
    link.connected = true;
    gate.reconnected(5_000);
    assert.equal(gate.open, false, 'reconnected, not settled: a handed-back job must not send');
    link.now += 4_999;
    assert.equal(gate.open, false);
    link.now += 1;
    assert.equal(gate.open, true, 'settled: the reconnection sweep finds it open');
  });
});
