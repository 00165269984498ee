// C2Metrics and the observers that feed it: counters move with the events, labels stay bounded,
// lock give-ups are told apart by reason, scrape-time figures survive failures.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { recordAttempt, recordSyncOutcomes } from '../../delivery/index.ts';
import {
  attemptLabel,
  AUTOMATION_FIRING_OUTCOMES,
  C2Metrics,
  CALL_OUTCOMES,
  RECEIPT_OUTCOMES,
  ROTATION_KINDS,
  callOutcome,
  recordLockEvent,
  RpcTelemetry,
} from '../../telemetry/index.ts';

const newMetrics = (): C2Metrics =>
  new C2Metrics({ node: 'n1', role: 'worker', version: '1.2.3', processMetrics: false });

/** The value of one series, 0 when absent. */
async function value(
  metrics: C2Metrics,
  name: string,
  labels: Record<string, string> = {},
): Promise<number> {
  const metric = metrics.registry.getSingleMetric(name);
  assert.ok(metric !== undefined, `${name} is registered`);
  const { values } = await metric.get();
  const found = values.find(
    (v) =>
      Object.entries(labels).every(([k, want]) => String(v.labels[k]) === want) &&
      !('le' in v.labels && !('le' in labels)),
  );
  return found?.value ?? 0;
}

void describe('C2Metrics', () => {
  void it('labels the process and keeps registries apart', async () => {
    const a = newMetrics();
    const b = newMetrics();
    a.deliveries('delivered', 3);
    assert.equal(await value(a, 'c2_deliveries_total', { outcome: 'delivered' }), 3);
    assert.equal(await value(b, 'c2_deliveries_total', { outcome: 'delivered' }), 0);
    assert.equal(
      await value(a, 'c2_node_info', { node: 'n1', role: 'worker', version: '1.2.3' }),
      1,
    );
    const text = (await a.scrape()).body;
    assert.match(text, /^c2_deliveries_total\{outcome="failed"\} 0$/m, 'zero series exist');
    for (const verdict of ['forged', 'unencrypted'])
      assert.match(
        text,
        new RegExp(`^c2_monitored_messages_total\\{class="${verdict}"\\} 0$`, 'm'),
        `the first ${verdict} message is an increase`,
      );
  });

  void it('has a 0 series for every label value of the event counters before any event', async () => {
    const m = newMetrics();
    m.monitorStarted(['current', 'previous_key', 'stale', 'forged', 'unencrypted']);
    const { body } = await m.scrape();
    const zero = (series: string): void => {
      const escaped = series.replace(/[{}]/g, '\\$&');
      assert.match(body, new RegExp(`^${escaped} 0$`, 'm'), series);
    };
    for (const kind of ROTATION_KINDS)
      for (const outcome of CALL_OUTCOMES)
        zero(`c2_rotations_total{kind="${kind}",outcome="${outcome}"}`);
    assert.equal(ROTATION_KINDS.length * CALL_OUTCOMES.length, 15);
    for (const outcome of RECEIPT_OUTCOMES) zero(`c2_receipts_total{outcome="${outcome}"}`);
    for (const outcome of AUTOMATION_FIRING_OUTCOMES)
      zero(`c2_automation_firings_total{outcome="${outcome}"}`);
    for (const reason of ['expired', 'taken'])
      zero(`c2_lock_leases_lost_total{reason="${reason}"}`);
    for (const verdict of ['current', 'previous_key', 'stale', 'forged', 'unencrypted'])
      zero(`c2_monitored_messages_total{class="${verdict}"}`);
    for (const reason of ['max_queued', 'max_queued_bytes'])
      zero(`c2_monitored_messages_total{class="dropped",reason="${reason}"}`);
  });

  void it('counts dropped monitored messages by the cap that dropped them', async () => {
    const m = newMetrics();
    m.monitorDropped('max_queued_bytes');
    m.monitorDropped('max_queued_bytes');
    m.monitorDropped('max_queued');
    m.monitoredMessage('forged');
    const { body } = await m.scrape();
    assert.match(
      body,
      /^c2_monitored_messages_total\{class="dropped",reason="max_queued_bytes"\} 2$/m,
    );
    assert.match(body, /^c2_monitored_messages_total\{class="dropped",reason="max_queued"\} 1$/m);
    assert.match(body, /^c2_monitored_messages_total\{class="forged"\} 1$/m);
    assert.doesNotMatch(body, /class="dropped"\} /, 'no drop without its reason');
  });

  void it('counts attempts by outcome and bounded attempt number, and retransmissions', async () => {
    const m = newMetrics();
    for (const attempt of [1, 2, 3, 7, 12]) m.attempt('timeout', attempt);
    m.attempt('ok', 1);
    assert.equal(
      await value(m, 'c2_delivery_attempts_total', { outcome: 'timeout', attempt: '5+' }),
      2,
    );
    assert.equal(await value(m, 'c2_delivery_attempts_total', { outcome: 'ok', attempt: '1' }), 1);
    assert.equal(await value(m, 'c2_delivery_retransmissions_total'), 4);
    assert.deepEqual([0, 1, 4, 5, 99].map(attemptLabel), ['1', '1', '4', '5+', '5+']);
  });

  void it('has every attempt series at 0 before the first attempt (rate() sees the first)', async () => {
    const { body } = await newMetrics().scrape();
    for (const outcome of ['ok', 'error', 'timeout'])
      for (const attempt of ['1', '2', '3', '4', '5+'])
        assert.match(
          body,
          new RegExp(
            `^c2_delivery_attempts_total\\{outcome="${outcome}",attempt="${attempt.replace('+', '\\+')}"\\} 0$`,
            'm',
          ),
        );
  });

  void it('counts stalled publisher connections reset and batches whose claims lapsed', async () => {
    const m = newMetrics();
    assert.equal(await value(m, 'c2_mqtt_connection_resets_total'), 0, 'exported from the start');
    assert.equal(await value(m, 'c2_delivery_claims_lapsed_total'), 0);
    m.mqttConnectionReset();
    m.claimsLapsed();
    m.claimsLapsed();
    assert.equal(await value(m, 'c2_mqtt_connection_resets_total'), 1);
    assert.equal(await value(m, 'c2_delivery_claims_lapsed_total'), 2);
  });

  void it('turns delivery observations into deliveries and attempts', async () => {
    const m = newMetrics();
    const base = { clientId: '7', kind: 'SetTopicKey', describe: 'topic' } as const;
    recordAttempt(m, { ...base, attempt: 1, outcome: 'acked' });
    recordAttempt(m, { ...base, attempt: 1, outcome: 'failed', error: 'no PUBACK within 50 ms' });
    recordAttempt(m, {
      ...base,
      attempt: 2,
      outcome: 'failed',
      error: 'MQTT broker not connected',
    });
    recordSyncOutcomes(m, ['idle', 'failed', 'failed', 'removed', 'deferred', 'deferred']);
    // Held back (no broker connection): counted apart, not as attempts or failures.
    assert.equal(await value(m, 'c2_delivery_deferred_total'), 2);
    assert.equal(await value(m, 'c2_deliveries_total', { outcome: 'delivered' }), 1);
    assert.equal(await value(m, 'c2_deliveries_total', { outcome: 'failed' }), 2);
    assert.equal(await value(m, 'c2_delivery_attempts_total', { outcome: 'timeout' }), 1);
    assert.equal(
      await value(m, 'c2_delivery_attempts_total', { outcome: 'error', attempt: '2' }),
      1,
    );
  });

  void it('tells lock give-ups by reason and counts contention', async () => {
    const m = newMetrics();
    recordLockEvent(m, { type: 'acquired', resource: 'topic:a', waitMs: 3, failedAttempts: 0 });
    recordLockEvent(m, { type: 'acquired', resource: 'topic:a', waitMs: 80, failedAttempts: 2 });
    const failed = {
      type: 'attempt-failed',
      resource: 'topic:b',
      attempt: 1,
      failedInstances: [],
      timedOutInstances: [],
    } as const;
    // Nobody holds it, too few instances answered: the quorum is the problem.
    recordLockEvent(m, { ...failed, granted: 1, heldElsewhere: 0, expiredOnArrival: false });
    recordLockEvent(m, {
      type: 'acquire-timeout',
      resource: 'topic:b',
      waitMs: 5000,
      failedAttempts: 9,
    });
    // Held by someone else: a plain timeout.
    recordLockEvent(m, {
      ...failed,
      resource: 'topic:c',
      granted: 0,
      heldElsewhere: 3,
      expiredOnArrival: false,
    });
    recordLockEvent(m, {
      type: 'acquire-timeout',
      resource: 'topic:c',
      waitMs: 5000,
      failedAttempts: 9,
    });
    recordLockEvent(m, { type: 'lost', resource: 'topic:a', reason: 'expired', heldMs: 10 });
    assert.equal(await value(m, 'c2_lock_acquire_failures_total', { reason: 'no_quorum' }), 1);
    assert.equal(await value(m, 'c2_lock_acquire_failures_total', { reason: 'timeout' }), 1);
    // The retried acquisition and the plain timeout; a missing quorum is not contention.
    assert.equal(await value(m, 'c2_lock_contended_total'), 2);
    assert.equal(await value(m, 'c2_lock_leases_lost_total', { reason: 'expired' }), 1);
    const text = (await m.scrape()).body;
    assert.match(text, /^c2_lock_acquire_duration_seconds_count\{outcome="acquired"\} 2$/m);
    assert.doesNotMatch(text, /topic:/, 'lock resources never become labels');
  });

  void it('refreshes scrape-time figures, and keeps old values when a source fails', async () => {
    const m = newMetrics();
    let healthy = true;
    let depth = 5;
    m.onScrape('database', () => {
      if (!healthy) return Promise.reject(new Error('database down'));
      m.setPipelineStats({
        outboxDepth: depth,
        outboxOldestAgeSeconds: 2,
        convergenceLagSeconds: 9,
        devicesByState: { idle: 3, pending: 1, failed: 0, unreachable: 0 },
      });
      return Promise.resolve();
    });
    const first = (await m.scrape()).body;
    // Exported at 0 before any error: the alert's increase() then counts the first one.
    assert.match(first, /^c2_metrics_refresh_errors_total\{source="database"\} 0$/m);
    assert.equal(await value(m, 'c2_outbox_depth'), 5);
    assert.equal(await value(m, 'c2_devices', { state: 'pending' }), 1);
    healthy = false;
    depth = 50;
    const text = (await m.scrape()).body;
    assert.match(text, /^c2_outbox_depth 5$/m);
    assert.match(text, /^c2_metrics_refresh_errors_total\{source="database"\} 1$/m);
  });

  void it('gives up on a slow source within the refresh timeout', async () => {
    const m = new C2Metrics({
      node: 'n',
      role: 'api',
      version: '0',
      processMetrics: false,
      refreshTimeoutMs: 50,
    });
    m.onScrape('queue', () => new Promise(() => undefined));
    await m.scrape();
    assert.equal(await value(m, 'c2_metrics_refresh_errors_total', { source: 'queue' }), 1);
  });
});

void describe('RpcTelemetry', () => {
  void it('counts calls by method and status, and rotations by kind and outcome', async () => {
    const m = newMetrics();
    const rpc = new RpcTelemetry(m);
    await rpc.serve('grpc', 'grpc e4c2.v1.C2Admin/RotateTopicKey', () =>
      Promise.resolve({ method: 'e4c2.v1.C2Admin/RotateTopicKey', status: 'OK' }),
    );
    await rpc.serve('http', 'HTTP PATCH', () =>
      Promise.resolve({ method: 'NewClientKey', status: 409 }),
    );
    await rpc.serve('http', 'HTTP GET', () => Promise.resolve({ method: '/healthz', status: 200 }));
    await rpc.serve('grpc', 'grpc pb.C2/NewC2Key', () => Promise.reject(new Error('bug')));
    assert.equal(
      await value(m, 'c2_rpc_requests_total', {
        transport: 'grpc',
        method: 'e4c2.v1.C2Admin/RotateTopicKey',
        status: 'OK',
      }),
      1,
    );
    assert.equal(await value(m, 'c2_rotations_total', { kind: 'topic', outcome: 'ok' }), 1);
    assert.equal(await value(m, 'c2_rotations_total', { kind: 'client', outcome: 'conflict' }), 1);
    assert.equal(await value(m, 'c2_rpc_requests_total', { method: '/healthz', status: '200' }), 1);
    assert.equal(
      await value(m, 'c2_rpc_requests_total', { method: 'unknown', status: 'UNKNOWN' }),
      1,
    );
  });

  void it('reduces statuses to outcomes', () => {
    assert.equal(callOutcome('grpc', 'OK'), 'ok');
    assert.equal(callOutcome('grpc', 'ABORTED'), 'conflict');
    assert.equal(callOutcome('grpc', 'UNAVAILABLE'), 'unavailable');
    assert.equal(callOutcome('grpc', 'INVALID_ARGUMENT'), 'rejected');
    assert.equal(callOutcome('grpc', 'INTERNAL'), 'error');
    assert.equal(callOutcome('http', '200'), 'ok');
    assert.equal(callOutcome('http', '503'), 'unavailable');
    assert.equal(callOutcome('http', '404'), 'rejected');
    assert.equal(callOutcome('http', '500'), 'error');
  });
});
