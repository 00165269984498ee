/**
 * A {@link LockService} whose acquisitions are spans (`lock.acquire`) inside a traced operation,
 * so a rotation's trace shows how long it waited for its lock (what alert C2LockWaitSlow is about).
 * The span ends once the lock is held: the critical section's transaction is its sibling, not its
 * child. Only the kind of resource (`topic`, `client`) is recorded, never its name.
 */
import { context, SpanKind, trace, type Tracer } from '@opentelemetry/api';
import type { Lease, LockService } from '../coordination/index.ts';
import { failSpan } from './tracing.ts';

/** Resource kinds recorded as they are; anything else is `other` (a bounded attribute). */
const KINDS = new Set(['topic', 'client']);

/** `topic` for `topic:<name>`: the part before the name. */
function resourceKind(resource: string): string {
  const kind = resource.slice(0, resource.indexOf(':'));
  return KINDS.has(kind) ? kind : 'other';
}

/** Wraps `locks` so each acquisition in a traced operation is a span. */
export function tracedLocks(locks: LockService, tracer: Tracer): LockService {
  return {
    async withLock<T>(
      resource: string,
      ttlMs: number,
      work: (lease: Lease) => Promise<T>,
    ): Promise<T> {
      const parent = context.active();
      if (trace.getSpanContext(parent) === undefined) return locks.withLock(resource, ttlMs, work);
      const span = tracer.startSpan(
        'lock.acquire',
        {
          kind: SpanKind.INTERNAL,
          attributes: { 'e4c2.lock.resource_kind': resourceKind(resource) },
        },
        parent,
      );
      // Set from the callback: an object, so the compiler does not narrow it to its start value.
      const acquisition = { waiting: true };
      try {
        return await locks.withLock(resource, ttlMs, (lease) => {
          acquisition.waiting = false;
          span.end();
          return work(lease);
        });
      } catch (err) {
        // Gave up (held elsewhere, no quorum): the span says why; errors of the work are its own.
        if (acquisition.waiting) {
          failSpan(span, err);
          span.end();
        }
        throw err;
      }
    },
  };
}
