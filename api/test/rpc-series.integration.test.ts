/**
 * The API servers declare the methods they answer: `c2_rpc_requests_total` has a series at 0 for
 * each, by success and internal-error status, before its first call. A series born at its first
 * call has no earlier sample, so Prometheus's rate() did not count that call, and
 * C2ApiErrorRatioHigh missed the first internal error of each method after each restart.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { C2Metrics, RpcTelemetry } from '../../cluster/telemetry/index.ts';
import { startApi, type ApiHarness } from './support/api-harness.ts';

/** `status -> value` of the c2_rpc_requests_total series of one transport and method. */
async function series(
  metrics: C2Metrics,
  transport: string,
  method: string,
): Promise<Record<string, number>> {
  const metric = metrics.registry.getSingleMetric('c2_rpc_requests_total');
  assert.ok(metric !== undefined);
  const { values } = await metric.get();
  return Object.fromEntries(
    values
      .filter((v) => v.labels['transport'] === transport && v.labels['method'] === method)
      .map((v) => [String(v.labels['status']), v.value]),
  );
}

void describe('API call series before the first call', () => {
  let a: ApiHarness;
  const metrics = new C2Metrics({ node: 'n1', role: 'api', version: '0', processMetrics: false });
  before(async () => {
    a = await startApi({ api: { telemetry: new RpcTelemetry(metrics) } });
  });
  after(async () => {
    await a.close();
  });

  void it('exist at 0 for every gRPC and HTTP method, success and internal errors', async () => {
    assert.deepEqual(await series(metrics, 'grpc', 'pb.C2/NewTopic'), {
      OK: 0,
      UNKNOWN: 0,
      INTERNAL: 0,
      DATA_LOSS: 0,
    });
    assert.deepEqual(await series(metrics, 'grpc', 'e4c2.v1.C2Admin/RotateTopicKey'), {
      OK: 0,
      UNKNOWN: 0,
      INTERNAL: 0,
      DATA_LOSS: 0,
    });
    assert.deepEqual(await series(metrics, 'http', 'pb.C2/NewTopic'), { '200': 0, '500': 0 });
    // Bounded: methods times a few statuses, nothing per request.
    const count = (await metrics.registry.getSingleMetric('c2_rpc_requests_total')?.get())?.values
      .length;
    assert.ok(count !== undefined && count > 100 && count < 2000, `${String(count)} series`);
  });

  void it('count a call from there', async () => {
    assert.equal((await a.http('POST', '/e4/topic/rpc-series')).status, 200);
    assert.deepEqual(await series(metrics, 'http', 'pb.C2/NewTopic'), { '200': 1, '500': 0 });
  });
});
