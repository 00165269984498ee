/** Small helpers shared by the lock tests. */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import type { LockEvent } from '../../coordination/index.ts';
import { C2Error, type C2ErrorCode } from '../../errors.ts';

/** A resource name no other test uses. */
export function uniqueResource(label: string): string {
  return `${label}:${randomUUID().slice(0, 8)}`;
}

/** The element at `index`, which the test knows exists. */
export function nth<T>(items: readonly T[], index: number): T {
  const item = items[index];
  if (item === undefined) throw new Error(`no element ${index}`);
  return item;
}

/** Resolves after `ms`. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Blocks the event loop for `ms`, as a long GC pause or a CPU-bound handler would. */
export function stallEventLoop(ms: number): void {
  const end = performance.now() + ms;
  while (performance.now() < end) {
    // spin: nothing else may run, timers included
  }
}

/** Resolves when `signal` aborts, or after `timeoutMs` (so a test can never hang on it). */
export function abortedWithin(signal: AbortSignal, timeoutMs: number): Promise<boolean> {
  if (signal.aborted) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      resolve(false);
    }, timeoutMs);
    signal.addEventListener(
      'abort',
      () => {
        clearTimeout(timer);
        resolve(true);
      },
      { once: true },
    );
  });
}

/** A promise with its resolver, to hold a lock until the test says so. */
export function gate(): { readonly opened: Promise<void>; open(): void } {
  let open: () => void = () => undefined;
  const opened = new Promise<void>((resolve) => {
    open = resolve;
  });
  return { opened, open };
}

/** Records lock events; `of(resource)` filters them. */
export function eventRecorder(): {
  readonly events: LockEvent[];
  readonly onEvent: (e: LockEvent) => void;
  of(resource: string, type?: LockEvent['type']): LockEvent[];
} {
  const events: LockEvent[] = [];
  return {
    events,
    onEvent: (e) => events.push(e),
    of: (resource, type) =>
      events.filter((e) => e.resource === resource && (type === undefined || e.type === type)),
  };
}

/** Asserts that `fn` throws (or rejects with) a C2Error with one of `codes`; returns it. */
export async function expectC2Error(
  fn: () => unknown,
  codes: readonly C2ErrorCode[],
): Promise<C2Error> {
  try {
    await fn();
  } catch (err) {
    assert.ok(C2Error.is(err), `expected a C2Error, got ${String(err)}`);
    assert.ok(codes.includes(err.code), `unexpected code ${err.code}: ${err.message}`);
    return err;
  }
  assert.fail(`expected a C2Error with code ${codes.join(' or ')}`);
}
