/**
 * Optional instrumentation of the node's delivery engine in `bench/fanout.ts` (`--profile`):
 * every call to the delivery repository (one SQL statement each), to the key vault (AES-GCM
 * unseal of stored keys) and to the MQTT publisher (until the PUBACK) is counted and timed.
 * Times are wall-clock durations of each call, summed: calls overlap (several batches, many
 * publishes in flight), so sums can exceed the step's duration; compare them with each other
 * and with the CPU figures, not with the wall clock.
 */

/** Count and summed duration of one kind of call. */
export type CallStats = {
  readonly calls: number;
  readonly totalMs: number;
  readonly meanMs: number;
};

/** Accumulates call timings by name. */
export class CallProfile {
  readonly #stats = new Map<string, { calls: number; totalMs: number }>();

  add(name: string, ms: number): void {
    const s = this.#stats.get(name);
    if (s === undefined) this.#stats.set(name, { calls: 1, totalMs: ms });
    else {
      s.calls++;
      s.totalMs += ms;
    }
  }

  reset(): void {
    this.#stats.clear();
  }

  /** The figures so far, by name (sorted by summed time, largest first). */
  snapshot(): Record<string, CallStats> {
    const entries = [...this.#stats].sort((a, b) => b[1].totalMs - a[1].totalMs);
    return Object.fromEntries(
      entries.map(([name, s]) => [
        name,
        {
          calls: s.calls,
          totalMs: Math.round(s.totalMs),
          meanMs: Math.round((s.totalMs / s.calls) * 1000) / 1000,
        },
      ]),
    );
  }
}

type AnyFunction = (...args: unknown[]) => unknown;

/**
 * Wraps `target` so that each method call is timed into `profile` as `<prefix>.<method>`
 * (asynchronous calls until they settle). Methods run on the real object, so private fields
 * keep working.
 */
export function timed<T extends object>(target: T, prefix: string, profile: CallProfile): T {
  return new Proxy(target, {
    get(object, property) {
      const value: unknown = Reflect.get(object, property, object);
      if (typeof value !== 'function') return value;
      const method = value as AnyFunction;
      const name = `${prefix}.${String(property)}`;
      return (...args: unknown[]): unknown => {
        const start = performance.now();
        const result = method.apply(object, args);
        if (result instanceof Promise) {
          return result.finally(() => {
            profile.add(name, performance.now() - start);
          });
        }
        profile.add(name, performance.now() - start);
        return result;
      };
    },
  });
}
