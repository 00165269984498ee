/**
 * Where a node's spans go, from the standard OpenTelemetry variables through `loadConfig` and
 * `nodeTelemetry` (the set-up `npm start` runs) to a local OTLP/HTTP receiver: the base endpoint
 * gets `/v1/traces` appended, `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` is used as given and wins
 * (it was ignored: spans went to the base endpoint, or nowhere), and the spans name the node.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { loadConfig } from '../../cluster/config/index.ts';
import { Lifecycle } from '../../cluster/lifecycle.ts';
import { nodeTelemetry } from '../node-parts.ts';
import { requestSpans, startOtlpSink, type OtlpSink } from './support/otlp-sink.ts';

/** Exports one span named `span` as a node configured by `env` does; resolves once sent. */
async function exportOneSpan(env: Record<string, string>, span: string): Promise<void> {
  const config = loadConfig({
    E4C2_ROLE: 'api',
    E4C2_NODE_ID: 'api-7',
    REDIS_URL: 'redis://127.0.0.1:6379',
    DATABASE_URL: 'postgres://postgres@127.0.0.1:5432/test',
    E4C2_KEK_PASSPHRASE: 'not used: nothing is sealed here',
    ...env,
  });
  const lifecycle = new Lifecycle({ info: () => undefined, error: () => undefined });
  const { tracer } = nodeTelemetry(config, lifecycle);
  tracer.startSpan(span).end();
  // The last step of a node's shutdown: it flushes the batch to the exporter.
  assert.equal(await lifecycle.shutdown(10_000), true, 'the tracer flushed and stopped');
}

void describe('OTLP export of a node', () => {
  let sink: OtlpSink;
  before(async () => {
    sink = await startOtlpSink();
  });
  after(() => sink.close());

  /** The paths spans named `span` were POSTed to, with what each request said of its resource. */
  const arrivals = (span: string): Array<{ path: string; resource: Record<string, string> }> =>
    sink.requests.flatMap((r) =>
      requestSpans(r)
        .filter((e) => e.spanNames.includes(span))
        .map((e) => ({ path: r.path, resource: { ...e.resource } })),
    );

  void it('appends /v1/traces to the path of OTEL_EXPORTER_OTLP_ENDPOINT', async () => {
    await exportOneSpan({ OTEL_EXPORTER_OTLP_ENDPOINT: `${sink.url}/gateway` }, 'base-only');
    const [arrival, ...more] = arrivals('base-only');
    assert.equal(arrival?.path, '/gateway/v1/traces');
    assert.deepEqual(more, []);
    const request = sink.requests.find((r) => r.path === '/gateway/v1/traces');
    assert.equal(request?.method, 'POST');
    assert.equal(request.contentType, 'application/json', 'OTLP/HTTP JSON (http/json)');
    // A cluster process is named after its role, and told apart by its node id.
    assert.equal(arrival.resource['service.name'], 'e4c2-api');
    assert.equal(arrival.resource['service.instance.id'], 'api-7');
  });

  void it('sends to OTEL_EXPORTER_OTLP_TRACES_ENDPOINT as given, over the base one', async () => {
    await exportOneSpan({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: `${sink.url}/in/spans` }, 'alone');
    assert.deepEqual(
      arrivals('alone').map((a) => a.path),
      ['/in/spans'],
      'nothing appended to the signal-specific endpoint',
    );
    await exportOneSpan(
      {
        OTEL_EXPORTER_OTLP_ENDPOINT: `${sink.url}/base`,
        OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: `${sink.url}/collector/traces`,
      },
      'both',
    );
    assert.deepEqual(
      arrivals('both').map((a) => a.path),
      ['/collector/traces'],
      'the signal-specific endpoint wins',
    );
  });

  void it('sends protobuf bodies with OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf', async () => {
    await exportOneSpan(
      {
        OTEL_EXPORTER_OTLP_ENDPOINT: `${sink.url}/proto`,
        OTEL_EXPORTER_OTLP_PROTOCOL: 'http/protobuf',
      },
      'in-protobuf',
    );
    const [arrival, ...more] = arrivals('in-protobuf');
    assert.equal(arrival?.path, '/proto/v1/traces');
    assert.deepEqual(more, []);
    const request = sink.requests.find((r) => r.path === '/proto/v1/traces');
    assert.equal(request?.contentType, 'application/x-protobuf', 'OTLP/HTTP protobuf');
    assert.equal(request.body, undefined, 'not JSON');
    assert.equal(arrival.resource['service.name'], 'e4c2-api');
    assert.equal(arrival.resource['service.instance.id'], 'api-7');
  });

  void it('sends nothing with OTEL_TRACES_EXPORTER=none, whatever the endpoints', async () => {
    await exportOneSpan(
      {
        OTEL_TRACES_EXPORTER: 'none',
        OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: `${sink.url}/off`,
      },
      'off',
    );
    assert.deepEqual(arrivals('off'), []);
    assert.ok(!sink.requests.some((r) => r.path === '/off'));
  });
});
