/** The publisher's keep-alive follows the claim TTL, so a dead node's late bytes are refused. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { publisherKeepaliveSeconds } from '../../delivery/index.ts';

void describe('publisherKeepaliveSeconds', () => {
  void it('keeps 1.5 x keep-alive under two thirds of the claim TTL, within 5..60 s', () => {
    for (const ttlMs of [15_000, 30_000, 60_000, 135_000]) {
      const keepalive = publisherKeepaliveSeconds(ttlMs);
      assert.ok(1.5 * keepalive * 1000 <= (2 / 3) * ttlMs, `TTL ${ttlMs} ms: ${keepalive} s`);
    }
    assert.equal(publisherKeepaliveSeconds(15_000), 6, 'the default TTL');
    assert.equal(publisherKeepaliveSeconds(4_000), 5, 'never below 5 s');
    assert.equal(publisherKeepaliveSeconds(600_000), 60, "never above mqtt.js's default");
  });
});
