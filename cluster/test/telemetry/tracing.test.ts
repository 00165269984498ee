// Tracing helpers and logs: the traceparent that crosses the queue, spans of the instrumented
// publisher and store, and log lines that carry trace ids but never key fields.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { PassThrough } from 'node:stream';
import { describe, it } from 'node:test';
import { context, SpanKind, trace } from '@opentelemetry/api';
import { InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-node';
import {
  BrokerUnavailableError,
  InstrumentedPublisher,
  PubackTimeoutError,
} from '../../delivery/index.ts';
import { InProcessLockService } from '../../coordination/index.ts';
import type { C2Store, DeliveryRepository } from '../../storage/index.ts';
import {
  C2Metrics,
  contextFromTraceparent,
  createLogger,
  currentTraceparent,
  defaultServiceName,
  inSpan,
  RpcTelemetry,
  startTracing,
  tracedDelivery,
  tracedLocks,
  tracedStore,
} from '../../telemetry/index.ts';

const exporter = new InMemorySpanExporter();
const { tracer } = startTracing({
  exporter: 'none',
  serviceName: 'test',
  sampleRatio: 1,
  nodeId: 'n1',
  role: 'all',
  version: '0',
  spanProcessors: [new SimpleSpanProcessor(exporter)],
});

void describe('traceparent', () => {
  void it('carries the active span across a queue and back', async () => {
    exporter.reset();
    let carried: string | undefined;
    await inSpan(tracer, 'producer', {}, () => {
      carried = currentTraceparent();
      return Promise.resolve();
    });
    assert.match(carried ?? '', /^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
    await inSpan(tracer, 'consumer', {}, () => Promise.resolve(), contextFromTraceparent(carried));
    const [producer, consumer] = exporter.getFinishedSpans();
    assert.equal(consumer?.spanContext().traceId, producer?.spanContext().traceId);
    assert.equal(consumer?.parentSpanContext?.spanId, producer?.spanContext().spanId);
  });

  void it('is absent outside a span, and malformed input starts a new trace', () => {
    assert.equal(currentTraceparent(context.active()), undefined);
    for (const bad of [undefined, '', '01-abc', `00-${'0'.repeat(32)}-${'1'.repeat(16)}-01x`])
      assert.equal(trace.getSpanContext(contextFromTraceparent(bad)), undefined);
  });
});

void describe('instrumented delivery and storage', () => {
  void it('makes one producer span per publish and times it by outcome', async () => {
    exporter.reset();
    const metrics = new C2Metrics({
      node: 'n',
      role: 'worker',
      version: '0',
      processMetrics: false,
    });
    let fail = false;
    const publisher = new InstrumentedPublisher(
      {
        publish: () => (fail ? Promise.reject(new PubackTimeoutError(10)) : Promise.resolve()),
      },
      metrics,
      tracer,
    );
    const payload = new Uint8Array(randomBytes(48));
    await publisher.publish('e4/0123456789abcdef0123456789abcdef', payload);
    fail = true;
    await assert.rejects(publisher.publish('e4/0123456789abcdef0123456789abcdef', payload));
    const spans = exporter.getFinishedSpans();
    assert.deepEqual(
      spans.map((s) => [s.name, s.kind]),
      [
        ['mqtt.publish', SpanKind.PRODUCER],
        ['mqtt.publish', SpanKind.PRODUCER],
      ],
    );
    assert.equal(spans[1]?.attributes['error.type'], 'PubackTimeoutError');
    const text = JSON.stringify(spans.map((s) => s.attributes));
    assert.doesNotMatch(text, /0123456789abcdef/, 'the topic names the device: not recorded');
    const body = (await metrics.scrape()).body;
    assert.match(body, /^c2_mqtt_publish_duration_seconds_count\{outcome="ok"\} 1$/m);
    assert.match(body, /^c2_mqtt_publish_duration_seconds_count\{outcome="timeout"\} 1$/m);
  });

  void it('wraps transactions in client spans and lets their errors through', async () => {
    exporter.reset();
    const inner = {
      read: {},
      transaction: (work: (tx: never) => Promise<unknown>) => work({} as never),
    } as unknown as C2Store;
    const store = tracedStore(inner, tracer);
    assert.equal(await store.transaction(() => Promise.resolve(1)), 1);
    assert.equal(exporter.getFinishedSpans().length, 0, 'no span without a traced operation');
    await inSpan(tracer, 'operation', {}, async () => {
      assert.equal(await store.transaction(() => Promise.resolve(7)), 7);
      await assert.rejects(
        store.transaction(() =>
          Promise.reject(Object.assign(new Error('x'), { code: 'C2_CONFLICT' })),
        ),
      );
    });
    const spans = exporter.getFinishedSpans();
    assert.deepEqual(
      spans.map((s) => [s.name, s.kind, s.status.code]),
      [
        ['db.transaction', SpanKind.CLIENT, 0],
        ['db.transaction', SpanKind.CLIENT, 2],
        ['operation', SpanKind.INTERNAL, 0],
      ],
    );
    assert.equal(spans[1]?.status.message, 'C2_CONFLICT');
  });

  void it('wraps the delivery bookkeeping of a traced job in client spans named by call', async () => {
    exporter.reset();
    // Private fields, as PgDelivery has: the proxy must call the methods on the real object.
    class FakeDelivery {
      readonly #claimed = ['c1'];
      claim(ids: readonly string[]): Promise<string[]> {
        return Promise.resolve(this.#claimed.filter((id) => ids.includes(id)));
      }
      release(): Promise<void> {
        return Promise.reject(Object.assign(new Error('x'), { code: 'C2_UNAVAILABLE' }));
      }
    }
    const inner = new FakeDelivery() as unknown as DeliveryRepository;
    const delivery = tracedDelivery(inner, tracer);
    assert.deepEqual(await delivery.claim(['c1', 'c2'], 'o', 1000), ['c1']);
    assert.equal(exporter.getFinishedSpans().length, 0, 'no span without a traced operation');
    await inSpan(tracer, 'queue.process', {}, async () => {
      assert.deepEqual(await delivery.claim(['c1'], 'o', 1000), ['c1'], 'its own this');
      await assert.rejects(delivery.release(['c1'], 'o'));
    });
    const spans = exporter.getFinishedSpans();
    assert.deepEqual(
      spans.map((s) => [s.name, s.kind, s.attributes['db.operation.name'], s.status.code]),
      [
        ['db.transaction', SpanKind.CLIENT, 'delivery.claim', 0],
        ['db.transaction', SpanKind.CLIENT, 'delivery.release', 2],
        ['queue.process', SpanKind.INTERNAL, undefined, 0],
      ],
    );
    const job = spans[2]?.spanContext().spanId;
    assert.ok(spans.slice(0, 2).every((s) => s.parentSpanContext?.spanId === job));
  });
});

void describe('lock spans', () => {
  void it('time the wait for a lock, name no resource, and fail when the lock is not had', async () => {
    exporter.reset();
    const locks = tracedLocks(new InProcessLockService({ acquireTimeoutMs: 50 }), tracer);
    assert.equal(await locks.withLock('topic:t', 1000, () => Promise.resolve(1)), 1);
    assert.equal(exporter.getFinishedSpans().length, 0, 'no span without a traced operation');
    await inSpan(tracer, 'rotation', {}, async () => {
      await locks.withLock('topic:secret/name', 1000, () =>
        inSpan(tracer, 'db.transaction', {}, async () => {
          // Held meanwhile: the second acquisition gives up after 50 ms.
          await assert.rejects(
            locks.withLock('topic:secret/name', 1000, () => Promise.resolve()),
            { code: 'C2_UNAVAILABLE' },
          );
        }),
      );
      // The work's own error leaves the acquisition span as it was.
      await assert.rejects(
        locks.withLock('client:c', 1000, () => Promise.reject(new Error('work'))),
      );
    });
    const spans = exporter.getFinishedSpans();
    const root = spans.find((s) => s.name === 'rotation');
    const acquisitions = spans.filter((s) => s.name === 'lock.acquire');
    assert.deepEqual(
      acquisitions.map((s) => [s.status.code, s.attributes['e4c2.lock.resource_kind']]),
      [
        [0, 'topic'],
        [2, 'topic'],
        [0, 'client'],
      ],
    );
    const tx = spans.find((s) => s.name === 'db.transaction');
    assert.equal(tx?.parentSpanContext?.spanId, root?.spanContext().spanId, 'a sibling');
    assert.ok(!JSON.stringify(spans.map((s) => s.attributes)).includes('secret/name'));
  });
});

void describe('API server spans', () => {
  void it('carry the status code as an integer, as the OpenTelemetry conventions define it', async () => {
    exporter.reset();
    const rpc = new RpcTelemetry(undefined, tracer);
    await rpc.serve('grpc', 'grpc pb.C2/NewTopic', () =>
      Promise.resolve({ method: 'pb.C2/NewTopic', status: 'OK' }),
    );
    await rpc.serve('grpc', 'grpc pb.C2/NewTopic', () =>
      Promise.resolve({ method: 'pb.C2/NewTopic', status: 'NOT_FOUND' }),
    );
    await rpc.serve('http', 'HTTP POST', () =>
      Promise.resolve({ method: 'NewTopic', status: 409 }),
    );
    const codes = exporter
      .getFinishedSpans()
      .map(
        (s) => s.attributes['rpc.grpc.status_code'] ?? s.attributes['http.response.status_code'],
      );
    assert.deepEqual(codes, [0, 5, 409]);
  });

  void it('are failed when the call failed on the server side, so error traces are kept', async () => {
    exporter.reset();
    const rpc = new RpcTelemetry(undefined, tracer);
    const calls: Array<['grpc' | 'http', string | number, string?]> = [
      ['grpc', 'INTERNAL'],
      ['grpc', 'UNAVAILABLE'],
      ['grpc', 'NOT_FOUND'],
      ['grpc', 'OK'],
      ['http', 500],
      ['http', 503],
      ['http', 409],
      ['http', 200],
      // A node not ready answers its probes 503: an answer, not a failure.
      ['http', 503, '/readyz'],
    ];
    for (const [transport, status, method = 'm'] of calls)
      await rpc.serve(transport, 'call', () => Promise.resolve({ method, status }));
    const spans = exporter.getFinishedSpans();
    assert.deepEqual(
      spans.map((s) => [s.status.code, s.status.message, s.attributes['error.type']]),
      [
        [2, 'INTERNAL', 'INTERNAL'],
        [2, 'UNAVAILABLE', 'UNAVAILABLE'],
        [0, undefined, undefined],
        [0, undefined, undefined],
        [2, '500', '500'],
        [2, '503', '503'],
        [0, undefined, undefined],
        [0, undefined, undefined],
        [0, undefined, undefined],
      ],
    );
  });

  void it('label a failed publish the broker connection could not carry by a stable name', async () => {
    exporter.reset();
    const publisher = new InstrumentedPublisher(
      { publish: () => Promise.reject(new BrokerUnavailableError('MQTT broker not connected')) },
      undefined,
      tracer,
    );
    await assert.rejects(publisher.publish('e4/x', new Uint8Array(1)));
    const [span] = exporter.getFinishedSpans();
    assert.equal(span?.attributes['error.type'], 'BrokerUnavailableError');
  });
});

void describe('logger', () => {
  void it('writes JSON lines with node and trace ids, and redacts key fields', async () => {
    const out = new PassThrough();
    const chunks: string[] = [];
    out.on('data', (c: Buffer) => chunks.push(c.toString('utf8')));
    const logger = createLogger({ level: 'info', nodeId: 'node-7', destination: out });
    const key = randomBytes(32);
    await inSpan(tracer, 'call', {}, () => {
      logger.info(
        {
          requestId: 'r1',
          key: key.toString('hex'),
          nested: { commandKey: key.toString('base64') },
        },
        'event',
      );
      return Promise.resolve();
    });
    logger.info({ payload: key.toString('base64') }, 'outside');
    await new Promise((r) => setImmediate(r));
    const lines = chunks
      .join('')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.equal(lines.length, 2);
    const inside = lines[0] ?? {};
    const outside = lines[1] ?? {};
    assert.equal(inside['node'], 'node-7');
    assert.match(String(inside['trace_id']), /^[0-9a-f]{32}$/);
    assert.match(String(inside['span_id']), /^[0-9a-f]{16}$/);
    assert.equal(inside['requestId'], 'r1');
    assert.equal(inside['key'], '[redacted]');
    assert.equal(outside['trace_id'], undefined);
    const all = chunks.join('');
    assert.ok(!all.includes(key.toString('hex')) && !all.includes(key.toString('base64')));
  });
});

/** The resource of a span of a tracer set up with `options`, under `OTEL_RESOURCE_ATTRIBUTES`. */
function resourceOf(
  options: { serviceName?: string; role: string },
  resourceAttributes: string | undefined,
): Record<string, unknown> {
  const saved = process.env['OTEL_RESOURCE_ATTRIBUTES'];
  if (resourceAttributes === undefined) delete process.env['OTEL_RESOURCE_ATTRIBUTES'];
  else process.env['OTEL_RESOURCE_ATTRIBUTES'] = resourceAttributes;
  const spans = new InMemorySpanExporter();
  try {
    const tracing = startTracing({
      exporter: 'none',
      ...options,
      sampleRatio: 1,
      nodeId: 'n2',
      version: '0',
      spanProcessors: [new SimpleSpanProcessor(spans)],
    });
    tracing.tracer.startSpan('probe').end();
    const [span] = spans.getFinishedSpans();
    assert.ok(span !== undefined);
    return { ...span.resource.attributes };
  } finally {
    if (saved === undefined) delete process.env['OTEL_RESOURCE_ATTRIBUTES'];
    else process.env['OTEL_RESOURCE_ATTRIBUTES'] = saved;
  }
}

void describe('the resource of spans', () => {
  void it('adds OTEL_RESOURCE_ATTRIBUTES, and the node own attributes win over them', () => {
    const attributes = resourceOf(
      { serviceName: 'test', role: 'api' },
      'e4c2.site=a,service.instance.id=from-env,e4c2.role=from-env',
    );
    assert.equal(attributes['e4c2.site'], 'a', 'the site from the environment');
    assert.equal(attributes['service.instance.id'], 'n2', 'the node id, not the variable');
    assert.equal(attributes['e4c2.role'], 'api');
    assert.equal(attributes['service.name'], 'test');
  });

  void it('names the service after the role unless OTEL_SERVICE_NAME or the resource does', () => {
    // Every node of `npm run cluster` was `e4c2`: API nodes and workers in one service.
    assert.equal(resourceOf({ role: 'api' }, undefined)['service.name'], 'e4c2-api');
    assert.equal(resourceOf({ role: 'worker' }, undefined)['service.name'], 'e4c2-worker');
    assert.equal(resourceOf({ role: 'all' }, undefined)['service.name'], 'e4c2');
    assert.equal(defaultServiceName('worker'), 'e4c2-worker');
    // The specification's order: OTEL_SERVICE_NAME, then service.name of the resource variable;
    // the role's name only when neither says.
    const named = 'service.name=fleet-c2,e4c2.site=b';
    assert.equal(resourceOf({ role: 'worker' }, named)['service.name'], 'fleet-c2');
    assert.equal(
      resourceOf({ role: 'worker', serviceName: 'c2-eu' }, named)['service.name'],
      'c2-eu',
    );
  });
});
