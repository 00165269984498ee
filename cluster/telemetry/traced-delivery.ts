/**
 * A {@link DeliveryRepository} whose calls are client spans (`db.transaction`, the call named by
 * `db.operation.name`, e.g. `delivery.claim`) when they run inside a traced operation, so a
 * delivery job's trace shows its claims, plan and bookkeeping: each call is one statement, its
 * own transaction. Statement text and parameters are never recorded (they name devices).
 */
import { context, SpanKind, trace, type Tracer } from '@opentelemetry/api';
import type { DeliveryRepository } from '../storage/index.ts';
import { inSpan } from './tracing.ts';

/**
 * Wraps every method of `delivery` (a proxy, so a method added to the port is traced without
 * being listed here).
 */
export function tracedDelivery(delivery: DeliveryRepository, tracer: Tracer): DeliveryRepository {
  return new Proxy(delivery, {
    get(target, property, receiver): unknown {
      const value: unknown = Reflect.get(target, property, receiver);
      if (typeof value !== 'function' || typeof property !== 'string') return value;
      const method = value as (...args: unknown[]) => Promise<unknown>;
      return (...args: unknown[]): Promise<unknown> => {
        // Background work (sweeps, receipts) has no parent: a root span per statement is noise.
        if (trace.getSpanContext(context.active()) === undefined) return method.apply(target, args);
        return inSpan(
          tracer,
          'db.transaction',
          {
            kind: SpanKind.CLIENT,
            attributes: {
              'db.system.name': 'postgresql',
              'db.operation.name': `delivery.${property}`,
            },
          },
          () => method.apply(target, args),
        );
      };
    },
  });
}
