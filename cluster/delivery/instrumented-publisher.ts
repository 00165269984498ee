/**
 * A {@link CommandPublisher} that traces and times every publish: one `mqtt.publish` producer
 * span per attempt (a child of the job or batch that sends it) and the PUBACK latency histogram.
 * The span carries no topic (a control topic names its device) and no payload.
 */
import { SpanKind, type Tracer } from '@opentelemetry/api';
import type { C2Metrics } from '../telemetry/metrics.ts';
import { inSpan, noopTracer } from '../telemetry/tracing.ts';
import { isPubackTimeout } from './mqtt-publisher.ts';
import type { CommandPublisher } from './publisher.ts';

/** Wraps a publisher with tracing and metrics. */
export class InstrumentedPublisher implements CommandPublisher {
  constructor(
    private readonly inner: CommandPublisher,
    private readonly metrics: C2Metrics | undefined,
    private readonly tracer: Tracer = noopTracer,
  ) {}

  publish(topic: string, payload: Uint8Array): Promise<void> {
    const started = performance.now();
    return inSpan(
      this.tracer,
      'mqtt.publish',
      {
        kind: SpanKind.PRODUCER,
        attributes: {
          'messaging.system': 'mqtt',
          'messaging.operation.type': 'publish',
          'messaging.message.body.size': payload.length,
          'e4c2.qos': 1,
        },
      },
      async () => {
        try {
          await this.inner.publish(topic, payload);
          this.metrics?.publish('ok', (performance.now() - started) / 1000);
        } catch (err) {
          const outcome = isPubackTimeout(err) ? 'timeout' : 'error';
          this.metrics?.publish(outcome, (performance.now() - started) / 1000);
          throw err;
        }
      },
    );
  }
}
