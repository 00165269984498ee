/**
 * A {@link C2Store} whose transactions are spans (`db.transaction`) when they run inside a traced
 * operation, so a rotation's trace shows its commit. Statement text and parameters are never recorded: they may name devices or topics,
 * and sealed keys travel as parameters.
 */
import { context, SpanKind, trace, type Tracer } from '@opentelemetry/api';
import type { C2Repositories, C2Store } from '../storage/index.ts';
import { inSpan } from './tracing.ts';

/** Wraps `store` so every transaction runs in a client span. */
export function tracedStore(store: C2Store, tracer: Tracer): C2Store {
  return {
    read: store.read,
    transaction<T>(work: (tx: C2Repositories) => Promise<T>): Promise<T> {
      // Background work (relay polls, sweeps) has no parent: a root span per poll is noise.
      if (trace.getSpanContext(context.active()) === undefined) return store.transaction(work);
      return inSpan(
        tracer,
        'db.transaction',
        { kind: SpanKind.CLIENT, attributes: { 'db.system.name': 'postgresql' } },
        () => store.transaction(work),
      );
    },
  };
}
