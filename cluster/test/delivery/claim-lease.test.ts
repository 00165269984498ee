/** The process's own view of its claims' lease (R5): when it may still publish. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ClaimLease } from '../../delivery/index.ts';

void describe('ClaimLease', () => {
  const clock = (): { now: () => number; advance: (ms: number) => void } => {
    let t = 1000;
    return {
      now: () => t,
      advance: (ms) => {
        t += ms;
      },
    };
  };

  void it('holds until the TTL less a margin (a tenth, at most 1 s) from the claim', () => {
    const c = clock();
    const lease = new ClaimLease(10_000, c.now);
    c.advance(8_999);
    assert.equal(lease.held, true);
    c.advance(1);
    assert.equal(lease.held, false, '10 s TTL, 1 s margin');
    const short = new ClaimLease(300, c.now);
    c.advance(269);
    assert.equal(short.held, true);
    c.advance(1);
    assert.equal(short.held, false, '300 ms TTL, 30 ms margin');
  });

  void it('a renewal extends it from the moment the renewal was sent', () => {
    const c = clock();
    const lease = new ClaimLease(10_000, c.now);
    c.advance(5_000);
    const sentAt = lease.now();
    c.advance(2_000); // the renewal took 2 s to come back
    lease.renewed(sentAt);
    c.advance(6_999); // 13,999 ms after the claim: 8,999 after the renewal was sent
    assert.equal(lease.held, true);
    c.advance(1);
    assert.equal(lease.held, false);
  });

  void it('once lapsed it stays lapsed, even if a renewal succeeds afterwards', () => {
    const c = clock();
    const lease = new ClaimLease(1_000, c.now);
    const sentAt = lease.now();
    c.advance(5_000); // paused: the renewal comes back long after the lease ended
    lease.renewed(sentAt + 4_900);
    assert.equal(lease.held, false);
    c.advance(1);
    lease.renewed(lease.now());
    assert.equal(lease.held, false, 'another node may have taken devices in between');
  });

  void it('a renewal never shortens it', () => {
    const c = clock();
    const lease = new ClaimLease(1_000, c.now);
    lease.renewed(c.now() - 500); // an old renewal that came back late, while the lease holds
    c.advance(899);
    assert.equal(lease.held, true);
  });
});
