/**
 * Turns delivery observations into metrics: every publish attempt (outcome, attempt number,
 * retransmissions), commands delivered (PUBACK), and deliveries abandoned at the retry cap.
 */
import type { C2Metrics } from '../telemetry/metrics.ts';
import type { DeliveryAttempt, SyncOutcome } from './device-sync.ts';
import { isPubackTimeout } from './mqtt-publisher.ts';

/** Records one attempt: `acked` is a delivered command. */
export function recordAttempt(metrics: C2Metrics, attempt: DeliveryAttempt): void {
  if (attempt.outcome === 'acked') {
    metrics.attempt('ok', attempt.attempt);
    metrics.deliveries('delivered');
  } else {
    metrics.attempt(isPubackTimeout(attempt.error ?? '') ? 'timeout' : 'error', attempt.attempt);
  }
}

/**
 * Records the devices of a batch whose delivery was abandoned, and those whose command was held
 * back because the broker connection was down (`deferred`: no attempt); one increment each per
 * batch.
 */
export function recordSyncOutcomes(metrics: C2Metrics, outcomes: Iterable<SyncOutcome>): void {
  let failed = 0;
  let deferred = 0;
  for (const outcome of outcomes) {
    if (outcome === 'failed') failed++;
    else if (outcome === 'deferred') deferred++;
  }
  metrics.deliveries('failed', failed);
  if (deferred > 0) metrics.deferred(deferred);
}
