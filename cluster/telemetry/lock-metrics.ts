/**
 * Lock events to metrics: acquire latency, contention (acquisitions that waited or retried),
 * give-ups by reason, and leases lost. Resource names stay out of labels (unbounded).
 */
import type { LockEvent } from '../coordination/index.ts';
import type { C2Metrics } from './metrics.ts';

/** Records one lock event. Cheap, never throws. */
export function recordLockEvent(metrics: C2Metrics, event: LockEvent): void {
  switch (event.type) {
    case 'acquired':
      metrics.lockAcquired(event.resource, event.waitMs, event.failedAttempts);
      break;
    case 'attempt-failed':
      // Nobody else holds it and too few instances granted it: the quorum is the problem.
      metrics.lockAttemptFailed(
        event.resource,
        event.heldElsewhere === 0 && !event.expiredOnArrival,
      );
      break;
    case 'acquire-timeout':
      metrics.lockTimedOut(event.resource, event.waitMs);
      break;
    case 'lost':
      metrics.leaseLost(event.reason);
      break;
    default:
      break;
  }
}
